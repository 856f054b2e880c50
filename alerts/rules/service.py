"""Alerts as people see them: listed with their links, silences and deliveries, and
acknowledged (no more repeats of this episode; the resolved message still goes out)."""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

from alerts.access.store import AuditEntry
from alerts.delivery.links import LinkSettings, console_alert_url
from alerts.delivery.schemas import DeliveryOut, LatestDelivery
from alerts.delivery.store import DeliveryRecord
from alerts.oncall.schemas import EscalationOut
from alerts.rules.acks import ack_messages
from alerts.rules.gofmt import format_v
from alerts.rules.messages import linked_annotations
from alerts.rules.model import Alert, AlertStatus
from alerts.rules.schemas import AlertHistory, AlertList, AlertOut, AlertStats, EpisodeOut
from alerts.rules.store import AlertStateStore
from alerts.silences.rules import Silence, silenced_by
from alerts.silences.store import SilenceStore
from billing_core.access import Principal
from billing_core.clock import Clock
from billing_core.errors import Conflict, NotFound

log = logging.getLogger("alerts.api")


class EscalationViews(Protocol):
    def escalation_views(self, alerts: Sequence[Alert], now: datetime
                         ) -> dict[str, EscalationOut]: ...
RECENT = timedelta(hours=24)


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return max(0.0, (end - start).total_seconds()) if end is not None else None


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _number(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def delivery_view(d: DeliveryRecord) -> DeliveryOut:
    return DeliveryOut(receiver=d.receiver, channel=d.channel, state=d.state,
                       repeat_bucket=d.repeat_bucket, status=d.status, attempts=d.attempts,
                       queued_at=d.created_at, sent_at=d.sent_at, last_reason=d.last_reason,
                       last_detail=d.last_detail)


def alert_view(alert: Alert, deliveries: list[DeliveryRecord], silences: list[Silence], *,
               links: LinkSettings, now: datetime,
               escalation: EscalationOut | None = None) -> AlertOut:
    annotations = linked_annotations(alert, links=links,
                                     resolved=alert.status == AlertStatus.RESOLVED)
    latest: dict[str, LatestDelivery] = {}
    for d in deliveries:  # oldest first: the last one per channel wins
        latest[d.channel] = LatestDelivery(status=d.status, state=d.state, receiver=d.receiver,
                                           sent_at=d.sent_at, last_reason=d.last_reason)
    return AlertOut(
        fingerprint=alert.fingerprint,
        alertname=alert.alertname,
        state=alert.status.value,
        severity=alert.severity,
        labels=dict(alert.labels),
        annotations=annotations,
        activeAt=alert.active_at,
        fired_at=alert.fired_at,
        resolved_at=alert.resolved_at,
        last_evaluated_at=alert.last_evaluated_at,
        value=_number(alert.value),
        value_text=format_v(alert.value) if alert.value is not None else None,
        acked=alert.acked_at is not None,
        acked_at=alert.acked_at,
        acked_by=alert.acked_by,
        silenced_by=list(silenced_by(alert.labels, silences, now)),
        runbook_url=annotations.get("runbook_url", ""),
        dashboard_url=annotations.get("dashboard_url", ""),
        logs_url=annotations.get("logs_url", ""),
        traces_url=annotations.get("traces_url", ""),
        console_url=console_alert_url(alert.fingerprint, console_url=links.console_url),
        delivery=latest,
        deliveries=[delivery_view(d) for d in deliveries],
        escalation=escalation,
    )


class AlertService:
    def __init__(self, *, alerts: AlertStateStore, silences: SilenceStore, links: LinkSettings,
                 clock: Clock, escalations: EscalationViews | None = None) -> None:
        self.alerts = alerts
        self.silences = silences
        self.links = links
        self.clock = clock
        self.escalations = escalations

    def list(self, state: Literal["active", "recent"]) -> AlertList:
        """Active alerts (pending and firing), or recent ones (also those resolved in the last
        24 hours), each with its delivery status per channel."""
        now = self.clock()
        rows = self.alerts.list_alerts(state=state, now=now, recent=RECENT)
        silences = self.silences.list_silences(state="active", now=now)
        escalations = (self.escalations.escalation_views([a for a, _ in rows], now)
                       if self.escalations is not None else {})
        return AlertList(state=state, alerts=[
            alert_view(a, d, silences, links=self.links, now=now,
                       escalation=escalations.get(a.fingerprint)) for a, d in rows])

    def history(self, *, days: int, alertname: str | None, severity: str | None,
                limit: int) -> AlertHistory:
        """Episodes that fired in the last `days`, with time to acknowledge and to resolve, and
        per alert name how often and how fast."""
        until = self.clock()
        since = until - timedelta(days=days)
        episodes = self.alerts.history(since=since, until=until, alertname=alertname,
                                       severity=severity, limit=100_000)
        views = [EpisodeOut(
            fingerprint=e.fingerprint, alertname=e.alertname, severity=e.severity,
            labels=e.labels, summary=e.summary, fired_at=e.fired_at, resolved_at=e.resolved_at,
            acked_at=e.acked_at, acked_by=e.acked_by,
            seconds_to_ack=_seconds(e.fired_at, e.acked_at),
            seconds_to_resolve=_seconds(e.fired_at, e.resolved_at)) for e in episodes]
        by_name: dict[str, list[EpisodeOut]] = {}
        for view in views:
            by_name.setdefault(view.alertname, []).append(view)
        stats = [AlertStats(
            alertname=name, severity=items[0].severity, fired=len(items),
            acknowledged=sum(1 for i in items if i.acked_at is not None),
            median_seconds_to_ack=_median([i.seconds_to_ack for i in items]),
            median_seconds_to_resolve=_median([i.seconds_to_resolve for i in items]))
            for name, items in by_name.items()]
        stats.sort(key=lambda s: (-s.fired, s.alertname))
        return AlertHistory(since=since, until=until, episodes=views[:limit], stats=stats)

    def ack(self, fingerprint: str, *, by: Principal, note: str | None = None) -> AlertOut:
        """Acknowledged by the principal `by`; `note` (the body's `by`) goes to the audit row."""
        now = self.clock()
        alert = self.alerts.get_alert(fingerprint)
        if alert is None:
            raise NotFound("fingerprint", "no such alert")
        if alert.status == AlertStatus.RESOLVED:
            raise Conflict("fingerprint", "the alert is resolved; there is nothing to acknowledge")
        audit = AuditEntry.of(by, action="alert.ack", target=fingerprint, at=now,
                              alertname=alert.alertname,
                              on_behalf_of=note if note not in (None, "api", by.actor) else None)
        acked = self.alerts.ack(fingerprint, by=by.actor, now=now, audit=audit,
                                relay=lambda a, told: ack_messages(a, told, links=self.links))
        if acked is None:  # a pending alert whose condition went away meanwhile
            raise NotFound("fingerprint", "no such alert")
        log.info("alert acknowledged", extra={"fingerprint": fingerprint, "by": by.actor})
        silences = self.silences.list_silences(state="active", now=now)
        return alert_view(acked, [], silences, links=self.links, now=now)
