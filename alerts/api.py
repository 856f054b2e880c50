"""The alerts process' HTTP API (port 8007): health, metrics, alerts, acks, silences, budget
history and delivery tests. Reads are open like the engine's; every change and every debug view
needs the admin key (X-Admin-Key, compared in constant time).

Errors answer `{"error", "message", "errors": [{"field", "reason"}]}` like the engine.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from alerts import __version__
from alerts.delivery.links import console_alert_url, rewrite_annotations
from alerts.delivery.message import delivery_test_message
from alerts.delivery.outbox import attempt
from alerts.delivery.store import DeliveryRecord as Delivery
from alerts.observability.metrics import failure_reason
from alerts.process import AlertsProcess
from alerts.rules.files import RuleFileError, parse_duration
from alerts.rules.gofmt import format_v
from alerts.rules.model import Alert
from alerts.silences.rules import (
    Matcher,
    MatchOp,
    Silence,
    SilenceError,
    parse_matcher,
    silenced_by,
    validate_silence,
)
from billing_core.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from billing_core.http import error_body, install_error_handlers
from billing_core.sql import utc_or_none

log = logging.getLogger("alerts.api")
RECENT = timedelta(hours=24)


# -- request bodies ------------------------------------------------------------------------------


class MatcherIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    value: str = Field(max_length=1000)
    op: Literal["=", "!=", "=~", "!~"] = "="


class SilenceIn(BaseModel):
    matchers: list[MatcherIn | str] = Field(min_length=1, max_length=20)
    expires_at: datetime | None = None
    duration: str | None = Field(default=None, description="instead of expires_at: 30m, 2h, 1d")
    starts_at: datetime | None = None
    comment: str = Field(min_length=1, max_length=2000)
    created_by: str = Field(min_length=1, max_length=200)


class AckIn(BaseModel):
    by: str = Field(default="api", min_length=1, max_length=200)


class TestEmailIn(BaseModel):
    to: str | None = Field(default=None, max_length=320)
    requested_by: str = Field(default="api", max_length=200)


class TestSlackIn(BaseModel):
    receiver: str | None = Field(default=None, max_length=100)
    requested_by: str = Field(default="api", max_length=200)


# -- views ---------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _number(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def delivery_view(d: Delivery) -> dict[str, Any]:
    return {"receiver": d.receiver, "channel": d.channel, "state": d.state,
            "repeat_bucket": d.repeat_bucket, "status": d.status, "attempts": d.attempts,
            "queued_at": _iso(d.created_at), "sent_at": _iso(d.sent_at),
            "last_reason": d.last_reason, "last_detail": d.last_detail}


def alert_view(alert: Alert, deliveries: list[Delivery], silences: list[Silence],
               process: AlertsProcess, now: datetime) -> dict[str, Any]:
    annotations = rewrite_annotations(alert.annotations, links=process.links)
    latest: dict[str, dict[str, Any]] = {}
    for d in deliveries:  # oldest first: the last one per channel wins
        latest[d.channel] = {"status": d.status, "state": d.state, "receiver": d.receiver,
                             "sent_at": _iso(d.sent_at), "last_reason": d.last_reason}
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "state": alert.status.value,
        "severity": alert.severity,
        "labels": dict(alert.labels),
        "annotations": annotations,
        "activeAt": _iso(alert.active_at),
        "fired_at": _iso(alert.fired_at),
        "resolved_at": _iso(alert.resolved_at),
        "last_evaluated_at": _iso(alert.last_evaluated_at),
        "value": _number(alert.value),
        "value_text": format_v(alert.value) if alert.value is not None else None,
        "acked": alert.acked_at is not None,
        "acked_at": _iso(alert.acked_at),
        "acked_by": alert.acked_by,
        "silenced_by": list(silenced_by(alert.labels, silences, now)),
        "runbook_url": annotations.get("runbook_url", ""),
        "dashboard_url": annotations.get("dashboard_url", ""),
        "console_url": console_alert_url(alert.fingerprint, console_url=process.links.console_url),
        "delivery": latest,
        "deliveries": [delivery_view(d) for d in deliveries],
    }


def silence_view(silence: Silence, now: datetime) -> dict[str, Any]:
    state = "active" if silence.is_active(now) else (
        "pending" if now < silence.starts_at else "expired")
    return {
        "id": silence.id,
        "matchers": [{"name": m.name, "op": m.op.value, "value": m.value}
                     for m in silence.matchers],
        "starts_at": _iso(silence.starts_at),
        "expires_at": _iso(silence.expires_at),
        "comment": silence.comment,
        "created_by": silence.created_by,
        "created_at": _iso(silence.created_at),
        "state": state,
    }


def build_silence(body: SilenceIn, now: datetime) -> tuple[tuple[Matcher, ...], datetime, datetime]:
    matchers: list[Matcher] = []
    for index, raw in enumerate(body.matchers):
        try:
            if isinstance(raw, str):
                matchers.append(parse_matcher(raw))
            else:
                matchers.append(Matcher(name=raw.name, value=raw.value, op=MatchOp(raw.op)))
        except SilenceError as error:
            raise InvalidRequest(f"matchers[{index}]", error.reason) from None
    starts_at = body.starts_at or now
    if starts_at.tzinfo is None:
        raise InvalidRequest("starts_at", "must carry a time zone (e.g. 2026-11-23T14:00:00Z)")
    if body.expires_at is not None and body.duration is not None:
        raise InvalidRequest("duration", "give expires_at or duration, not both")
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise InvalidRequest("expires_at", "must carry a time zone (e.g. 2026-11-23T14:00:00Z)")
        expires_at = body.expires_at
    elif body.duration is not None:
        try:
            length = parse_duration(body.duration, where="duration")
        except RuleFileError:
            raise InvalidRequest("duration", "must be a duration like 30m, 2h or 1d") from None
        expires_at = starts_at + length
    else:
        raise InvalidRequest("expires_at", "is required (or give duration): a silence must end")
    try:
        validate_silence(matchers=tuple(matchers), starts_at=starts_at, expires_at=expires_at,
                         comment=body.comment, created_by=body.created_by, now=now)
    except SilenceError as error:
        raise InvalidRequest(error.field, error.reason) from None
    return tuple(matchers), starts_at, expires_at


# -- the app -------------------------------------------------------------------------------------


def create_app(process: AlertsProcess, *, run_scheduler: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_scheduler and process.scheduler is not None:
            process.scheduler.start()
        try:
            yield
        finally:
            if run_scheduler and process.scheduler is not None:
                process.scheduler.shutdown()

    app = FastAPI(title="Alerts process", version=__version__, lifespan=lifespan,
                  description="Evaluates the Prometheus alerting rules and customer budgets, "
                  "and delivers email and Slack notifications that link their runbook section.")
    app.state.process = process
    install_error_handlers(app)

    def require_admin(x_admin_key: str | None = Header(default=None)) -> None:
        if not x_admin_key:
            raise Unauthorized("X-Admin-Key", "is required")
        expected = process.settings.admin_api_key.encode()
        if not hmac.compare_digest(x_admin_key.encode(), expected):
            raise Unauthorized("X-Admin-Key", "is not valid")

    health = APIRouter(tags=["health"])

    @health.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @health.get("/ready")
    def ready() -> JSONResponse:
        leading = process.leader.is_leader if process.leader is not None else False
        prometheus_up = (process.evaluator.prometheus_reachable
                         if process.evaluator is not None else None)
        try:
            process.store.ping()
        except DatabaseUnavailable as error:
            return JSONResponse(status_code=503, content={
                "status": "not_ready", "database": "unreachable", "reason": str(error)[:200],
                "leader": leading})
        return JSONResponse(content={"status": "ready", "database": "ok", "leader": leading,
                                     "prometheus_up": prometheus_up})

    @health.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(process.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    public = APIRouter(tags=["alerts"])

    @public.get("/v1/alerts")
    def list_alerts(state: Literal["active", "recent"] = "active") -> dict[str, Any]:
        """Active alerts (pending and firing), or recent ones (also those resolved in the last
        24 hours), each with its delivery status per channel."""
        now = process.clock()
        rows = process.store.list_alerts(state=state, now=now, recent=RECENT)
        silences = process.store.list_silences(state="active", now=now)
        return {"state": state,
                "alerts": [alert_view(a, d, silences, process, now) for a, d in rows]}

    @public.post("/v1/alerts/{fingerprint}/ack", dependencies=[Depends(require_admin)])
    def ack(fingerprint: str, body: AckIn | None = None) -> dict[str, Any]:
        """Acknowledge an alert: no more repeats of this episode; it stays active until its
        condition clears, and a resolved message still goes out."""
        now = process.clock()
        by = (body or AckIn()).by
        alert = process.store.get_alert(fingerprint)
        if alert is None:
            raise NotFound("fingerprint", "no such alert")
        if alert.status.value == "resolved":
            raise Conflict("fingerprint", "the alert is resolved; there is nothing to acknowledge")
        acked = process.store.ack(fingerprint, by=by, now=now)
        assert acked is not None
        log.info("alert acknowledged", extra={"fingerprint": fingerprint, "by": by})
        silences = process.store.list_silences(state="active", now=now)
        return alert_view(acked, [], silences, process, now)

    @public.get("/v1/silences")
    def list_silences(state: Literal["active", "expired", "all"] = "active") -> dict[str, Any]:
        now = process.clock()
        return {"state": state, "silences": [
            silence_view(s, now) for s in process.store.list_silences(state=state, now=now)]}

    @public.get("/v1/silences/{silence_id}")
    def get_silence(silence_id: str) -> dict[str, Any]:
        silence = process.store.get_silence(silence_id)
        if silence is None:
            raise NotFound("silence_id", "no such silence")
        return silence_view(silence, process.clock())

    @public.post("/v1/silences", status_code=201, dependencies=[Depends(require_admin)])
    def add_silence(body: SilenceIn) -> dict[str, Any]:
        now = process.clock()
        matchers, starts_at, expires_at = build_silence(body, now)
        silence = process.store.add_silence(matchers=matchers, starts_at=starts_at,
                                            expires_at=expires_at, comment=body.comment,
                                            created_by=body.created_by, now=now)
        log.info("silence added", extra={"silence_id": silence.id, "by": body.created_by,
                                         "matchers": [str(m) for m in matchers],
                                         "expires_at": _iso(expires_at)})
        return silence_view(silence, now)

    @public.delete("/v1/silences/{silence_id}", dependencies=[Depends(require_admin)])
    def expire_silence(silence_id: str) -> dict[str, Any]:
        now = process.clock()
        silence = process.store.expire_silence(silence_id, now=now)
        if silence is None:
            raise NotFound("silence_id", "no such silence")
        log.info("silence expired", extra={"silence_id": silence_id})
        return silence_view(silence, now)

    debug = APIRouter(tags=["support"], dependencies=[Depends(require_admin)])

    @debug.get("/debug/alerts/{org_id}")
    def budget_history(org_id: str) -> dict[str, Any]:
        """An org's budget alerts: each threshold reached per period, and how each of its
        messages (customer email, support Slack line) was delivered."""
        notices = []
        for notice in process.store.budget_history(org_id):
            used, included = notice.used_minutes, notice.included_minutes
            notices.append({
                "period": notice.period, "threshold": notice.threshold,
                "email": notice.email, "plan": notice.plan,
                "used_hours": round(used / 60, 2),
                "included_hours": round(included / 60, 2),
                "percent_used": round(used * 100 / included, 2) if included else 100.0,
                "reached_at": _iso(notice.reached_at),
                "deliveries": [{
                    "channel": d.channel, "receiver": d.receiver, "status": d.status,
                    "attempts": d.attempts, "sent_at": _iso(d.sent_at),
                    "last_reason": d.last_reason, "last_detail": d.last_detail}
                    for d in notice.deliveries],
            })
        return {"org_id": org_id, "budget_alerts": notices}

    @debug.post("/admin/test-email")
    def test_email(body: TestEmailIn | None = None) -> JSONResponse:
        """Send a test email now (to ONCALL_EMAIL unless `to` is given) and say how it went."""
        body = body or TestEmailIn()
        to = (body.to or process.settings.oncall_email).strip()
        if "@" not in to or any(c.isspace() for c in to):
            raise InvalidRequest("to", "is not an email address")
        message = delivery_test_message(channel="email", recipients=(to,),
                                        requested_by=body.requested_by, now=process.clock(),
                                        links=process.links)
        channel = process.channels.email
        result = attempt(channel, "email", lambda: channel.send(message), process.metrics)
        return _test_answer("email", result, {"to": [to]})

    @debug.post("/admin/test-slack")
    def test_slack(body: TestSlackIn | None = None) -> JSONResponse:
        """Post a test message to a Slack receiver (the first configured one by default)."""
        body = body or TestSlackIn()
        receivers = process.channels.slack_receivers()
        if body.receiver is not None:
            receivers = [r for r in receivers if r.name == body.receiver]
            if not receivers:
                raise NotFound("receiver", "is not a configured Slack receiver of the routes file")
        if not receivers:
            raise Conflict("SLACK_WEBHOOK_URL", "no Slack receiver is configured; Slack is off",
                           code="not_configured")
        receiver = receivers[0]
        channel = process.channels.for_receiver_object(receiver)
        message = delivery_test_message(channel="Slack", recipients=(),
                                        requested_by=body.requested_by, now=process.clock(),
                                        links=process.links)
        result = attempt(channel, "slack", lambda: channel.send(message), process.metrics)
        return _test_answer("slack", result, {"receiver": receiver.name})

    app.include_router(health)
    app.include_router(public)
    app.include_router(debug)
    return app


def _aware(moment: datetime | None) -> datetime | None:
    return utc_or_none(moment)


def _test_answer(channel: str, result: Any, extra: dict[str, Any]) -> JSONResponse:
    if result.ok:
        return JSONResponse(content={"ok": True, "channel": channel, "detail": result.detail,
                                     **extra})
    reason = failure_reason(result.reason)
    return JSONResponse(status_code=502, content={
        **error_body("delivery_failed", f"{channel}: {reason}: {result.detail}",
                     [{"field": channel, "reason": f"{reason}: {result.detail}"}]),
        "ok": False, "channel": channel, "reason": reason, "permanent": result.permanent,
        "retry_after": result.retry_after, **extra})
