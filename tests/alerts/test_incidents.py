"""Incidents, as the incident runbook runs them: declared with a severity, a commander and a
one-line impact; updated at the severity's cadence (the commander is reminded when one is due);
resolved, which starts the post-incident checklist and drafts the post-mortem from data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.api.app import create_app
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_from_json
from alerts.delivery.slack_api import SlackApiChannel
from alerts.incidents.messages import incident_message
from alerts.incidents.rules import Incident, checklist
from alerts.process import AlertsProcess, build_process
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.settings import Settings
from alerts.store.schema import alert_audit, alert_outbox
from billing_core.periods import minute_of
from billing_engine.db.database import create_database
from billing_engine.usage.store import UsageStore
from devstack.receivers import Reply, SlackApiReceiver, closed_port
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY, add_org
from tests.support.clock import FrozenClock

ADMIN = {"X-Admin-Key": ADMIN_KEY}
DECLARED = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
LABELS = {"alertname": "PaymentSuccessRateLow", "severity": "P1", "service": "payments"}
OTHER = {"alertname": "BillingEngineDown", "severity": "P0", "service": "billing-engine"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DECLARED)


@pytest.fixture
def process(alerts_db_url: str, clock: FrozenClock) -> Iterator[AlertsProcess]:
    settings = Settings(database_url=alerts_db_url, admin_api_key=ADMIN_KEY, environment="test",
                        smtp_port=closed_port(), oncall_email="oncall@example.com",
                        slack_webhook_url="http://127.0.0.1:9/services/T/B/oncall",
                        slack_incidents_webhook_url="http://127.0.0.1:9/services/T/B/incidents",
                        prometheus_url=f"http://127.0.0.1:{closed_port()}")
    built = build_process(settings, environ={}, clock=clock, scheduled=False)
    yield built
    built.close()


@pytest.fixture
def api(process: AlertsProcess) -> Iterator[TestClient]:
    with TestClient(create_app(process, run_scheduler=False), headers=ADMIN) as client:
        yield client


def fire(process: AlertsProcess, labels: dict[str, str], at: datetime,
         resolved_at: datetime | None = None) -> Alert:
    alert = Alert(fingerprint=fingerprint(labels), alertname=labels["alertname"], labels=labels,
                  annotations={"summary": "s"},
                  status=AlertStatus.RESOLVED if resolved_at else AlertStatus.FIRING,
                  active_at=at, last_evaluated_at=at, value=1.0, fired_at=at,
                  resolved_at=resolved_at)
    process.store.apply_round(alerts=[alert], dropped=[], messages=[], now=resolved_at or at)
    return alert


def queued(process: AlertsProcess) -> list[tuple[str, str, tuple[str, ...]]]:
    """(receiver, summary, recipients) of each incident message queued, oldest first."""
    with process.engine.connect() as conn:
        rows = conn.execute(select(alert_outbox.c.receiver, alert_outbox.c.payload)
                            .where(alert_outbox.c.kind == "incident")
                            .order_by(alert_outbox.c.id)).all()
    out = []
    for r in rows:
        message = message_from_json(r.payload)
        out.append((r.receiver, message.summary, message.recipients))
    return out


def declare(api: TestClient, **overrides: object) -> dict:
    body = {"severity": "P1", "title": "Card payments failing",
            "impact": "about a third of card payments declined", "commander": "ana",
            **overrides}
    answer = api.post("/v1/incidents", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_declaring_tells_the_channel_and_the_severitys_stakeholders(api, process):
    incident = declare(api)
    assert (incident["key"], incident["status"]) == ("INC-1", "investigating")
    assert incident["next_update_due"] == "2026-12-07T10:30:00+00:00"  # P1: every 30 min
    messages = queued(process)
    assert [(r, recipients) for r, _, recipients in messages] == [
        ("incidents-slack", ()),
        ("stakeholder-email", ("eng-manager@oncall.example", "product@oncall.example"))]
    assert all(summary == "Incident declared: INC-1 Card payments failing"
               for _, summary, _ in messages)
    with process.engine.connect() as conn:
        [payload] = conn.execute(select(alert_outbox.c.payload).where(
            alert_outbox.c.receiver == "incidents-slack")).scalars().all()
    lines = message_from_json(payload).description.splitlines()
    assert lines == ["Severity: P1", "Impact: about a third of card payments declined",
                     "Commander: ana", "Status page: not configured: update it by hand"]
    with process.engine.connect() as conn:
        audit = conn.execute(select(alert_audit.c.action, alert_audit.c.target)).all()
    assert [tuple(a) for a in audit] == [("incident.declare", "INC-1")]


def test_an_update_goes_to_the_channel_and_resets_the_clock_a_note_does_not(api, process,
                                                                             clock):
    declare(api)
    clock.now = DECLARED + timedelta(minutes=20)
    updated = api.post("/v1/incidents/1/updates", json={
        "text": "Rolled back the payment client", "status": "monitoring"}).json()
    assert (updated["status"], updated["next_update_due"]) == ("monitoring",
                                                               "2026-12-07T10:50:00+00:00")
    clock.now = DECLARED + timedelta(minutes=25)
    noted = api.post("/v1/incidents/1/updates", json={"text": "Stripe says fine",
                                                     "kind": "note"}).json()
    assert noted["next_update_due"] == "2026-12-07T10:50:00+00:00"
    updates = [s for r, s, _ in queued(process) if r == "incidents-slack"][1:]
    assert updates == ["INC-1 update (monitoring): Card payments failing"]
    kinds = [(e["kind"], e["who"]) for e in noted["timeline"]]
    assert kinds == [("declared", "admin"), ("update", "admin"), ("note", "admin")]


def test_raising_the_severity_tells_its_stakeholders_and_a_hand_over_names_the_new_commander(
        api, process, clock):
    declare(api, severity="P2")
    clock.now = DECLARED + timedelta(minutes=10)
    raised = api.post("/v1/incidents/1/updates", json={
        "text": "Every card payment fails now", "severity": "P0", "commander": "dana"}).json()
    assert (raised["severity"], raised["commander"]) == ("P0", "dana")
    assert raised["next_update_due"] == "2026-12-07T10:25:00+00:00"  # P0: every 15 min
    told = [(r, recipients) for r, s, recipients in queued(process) if "update" in s]
    assert told == [("incidents-slack", ()), ("stakeholder-email", (
        "cto@oncall.example", "vp-engineering@oncall.example"))]
    texts = [e["text"] for e in raised["timeline"] if e["kind"] == "update"]
    assert texts == ["Severity: P2 -> P0. Commander: ana -> dana. Every card payment fails now"]


def test_the_commander_is_reminded_once_per_missed_update(api, process, clock):
    declare(api)
    incidents = process.incidents
    assert incidents.run_round(DECLARED + timedelta(minutes=29)) == 0
    assert incidents.run_round(DECLARED + timedelta(minutes=30)) == 1
    assert incidents.run_round(DECLARED + timedelta(minutes=45)) == 0  # reminded already
    assert incidents.run_round(DECLARED + timedelta(minutes=60)) == 1  # another missed one
    reminders = [(r, recipients) for r, s, recipients in queued(process) if "is due" in s]
    assert reminders == [("incidents-slack", ()), ("commander-email", ("ana@oncall.example",)),
                         ("incidents-slack", ()), ("commander-email", ("ana@oncall.example",))]


def test_resolving_starts_the_checklist_with_due_dates_and_tells_everyone(api, process, clock):
    declare(api)
    clock.now = DECLARED + timedelta(hours=1)
    resolved = api.post("/v1/incidents/1/resolve",
                        json={"summary": "Rolled back; payments succeed again"}).json()
    assert resolved["status"] == "resolved" and resolved["next_update_due"] is None
    due = {t["key"]: t["due_at"] for t in resolved["tasks"]}
    assert due["2h-1"] == "2026-12-07T13:00:00+00:00"
    assert due["24h-1"] == "2026-12-08T11:00:00+00:00"
    assert due["168h-1"] == "2026-12-14T11:00:00+00:00"
    assert len(resolved["tasks"]) == len(checklist(DECLARED))
    told = [(r, s) for r, s, _ in queued(process) if "resolved" in s]
    assert told == [("incidents-slack", "INC-1 resolved: Card payments failing"),
                    ("stakeholder-email", "INC-1 resolved: Card payments failing")]
    again = api.post("/v1/incidents/1/resolve", json={"summary": "twice"})
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "incident_id"
    late = api.post("/v1/incidents/1/updates", json={"text": "after"})
    assert late.status_code == 409

    done = api.post("/v1/incidents/1/tasks/2h-1/done").json()
    assert next(t for t in done["tasks"] if t["key"] == "2h-1")["done_by"] == "admin"
    assert process.incidents.run_round(DECLARED + timedelta(hours=3, minutes=1)) == 2  # 2h-2, 2h-3


def test_the_timeline_collects_matching_alerts_acks_escalations_and_silences(api, process,
                                                                             clock):
    mine = fire(process, LABELS, DECLARED - timedelta(minutes=10))
    fire(process, OTHER, DECLARED + timedelta(minutes=5),
         resolved_at=DECLARED + timedelta(minutes=6))  # another service: not this incident's
    process.store.ack(mine.fingerprint, by="ana@example.com", now=DECLARED + timedelta(minutes=2))
    declare(api, fingerprints=[mine.fingerprint])
    process.oncall.run_round(DECLARED + timedelta(minutes=3))
    clock.now = DECLARED + timedelta(minutes=40)
    fire(process, LABELS, mine.active_at, resolved_at=DECLARED + timedelta(minutes=35))
    entries = [(e["kind"], e["text"]) for e in api.get("/v1/incidents/1").json()["timeline"]]
    assert entries[0] == ("alert fired", "PaymentSuccessRateLow (P1) fired")
    assert ("acknowledged", "PaymentSuccessRateLow (P1) acknowledged") in entries
    assert entries[-1] == ("alert resolved", "PaymentSuccessRateLow (P1) resolved")
    assert not [t for _, t in entries if "BillingEngineDown" in t]


def test_the_postmortem_is_drafted_from_data_and_keeps_an_edit(api, process, clock):
    declare(api, severity="P0", title="Billing down")
    clock.now = DECLARED + timedelta(minutes=42)
    api.post("/v1/incidents/1/resolve", json={"summary": "restarted the database"})
    draft = api.get("/v1/incidents/1/postmortem").json()
    assert draft["edited_by"] is None
    text = draft["markdown"]
    assert text.startswith("# Post-mortem: INC-1 Billing down")
    assert "| Duration | 42 min |" in text
    assert "From 2026-12-07 10:00 UTC (the first of its alerts to fire, or the declaration)" in text
    assert "## Timeline (UTC)" in text and "restarted the database" in text
    # Prometheus is not running here: each number says so, none is made up.
    assert "Not measured (Prometheus did not answer): requests, requests failed" in text
    assert "- [ ] Post-mortem published (due 2026-12-14 10:42)" in text
    saved = api.put("/v1/incidents/1/postmortem", json={"text": text + "\nRoot cause: disk."})
    assert saved.status_code == 200 and saved.json()["edited_by"] == "admin"
    assert api.get("/v1/incidents/1/postmortem").json()["markdown"].endswith("Root cause: disk.")


def test_incidents_are_listed_newest_first_and_an_unknown_one_is_404(api):
    declare(api)
    declare(api, severity="P2", title="Slow usage page")
    listed = api.get("/v1/incidents").json()["incidents"]
    assert [i["key"] for i in listed] == ["INC-2", "INC-1"]
    missing = api.get("/v1/incidents/99")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "incident_id"
    bad = api.post("/v1/incidents", json={"severity": "P3", "title": "t", "impact": "i",
                                          "commander": "c"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "severity"


def test_alert_history_gives_time_to_acknowledge_and_resolve(api, process, clock):
    first = fire(process, LABELS, DECLARED - timedelta(hours=2))
    process.store.ack(first.fingerprint, by="ana", now=DECLARED - timedelta(hours=2)
                      + timedelta(minutes=4))
    fire(process, LABELS, first.active_at, resolved_at=DECLARED - timedelta(hours=1))
    fire(process, OTHER, DECLARED - timedelta(minutes=30))
    history = api.get("/v1/alerts/history", params={"days": 30}).json()
    episodes = {e["alertname"]: e for e in history["episodes"]}
    assert episodes["PaymentSuccessRateLow"]["seconds_to_ack"] == 240
    assert episodes["PaymentSuccessRateLow"]["seconds_to_resolve"] == 3600
    assert episodes["BillingEngineDown"]["resolved_at"] is None
    stats = {s["alertname"]: s for s in history["stats"]}
    assert stats["PaymentSuccessRateLow"]["median_seconds_to_ack"] == 240
    only_p0 = api.get("/v1/alerts/history", params={"severity": "P0"}).json()
    assert [e["alertname"] for e in only_p0["episodes"]] == ["BillingEngineDown"]


@pytest.fixture
def slack_api() -> Iterator[SlackApiReceiver]:
    with SlackApiReceiver(token="xoxb-1234-incidents", channel="C0INCIDENTS") as receiver:
        yield receiver


def test_with_a_bot_token_each_incident_lives_in_its_own_slack_thread(alerts_pg_url, clock,
                                                                      slack_api):
    settings = Settings(database_url=alerts_pg_url, admin_api_key=ADMIN_KEY, environment="test",
                        smtp_port=closed_port(), oncall_email="oncall@example.com",
                        slack_bot_token="xoxb-1234-incidents",
                        prometheus_url=f"http://127.0.0.1:{closed_port()}")
    environ = {"SLACK_INCIDENTS_CHANNEL": "C0INCIDENTS", "SLACK_API_URL": slack_api.api_url}
    process = build_process(settings, environ=environ, clock=clock)
    try:
        with TestClient(create_app(process, run_scheduler=False), headers=ADMIN) as api:
            assert process.page_worker is not None
            declare(api)
            declare(api, title="Usage page slow", severity="P2")
            process.page_worker.drain()
            api.post("/v1/incidents/1/updates", json={"text": "Rolled back"})
            api.post("/v1/incidents/1/resolve", json={"summary": "Payments succeed again"})
            process.page_worker.drain()
    finally:
        process.close()
    [first, second, update, resolved] = slack_api.messages
    assert first["text"].startswith("Incident declared: INC-1") and "thread_ts" not in first
    assert second["text"].startswith("Incident declared: INC-2") and "thread_ts" not in second
    assert (update["thread_ts"], update.get("reply_broadcast")) == (first["ts"], None)
    assert (resolved["thread_ts"], resolved["reply_broadcast"]) == (first["ts"], True)
    assert all(p.headers["authorization"] == "Bearer xoxb-1234-incidents"
               for p in slack_api.posts)


def test_slack_api_refusals_are_permanent_and_its_rate_limit_waits(slack_api):
    wrong = SlackApiChannel("xoxb-wrong", "C0INCIDENTS", api_url=slack_api.api_url)
    elsewhere = SlackApiChannel("xoxb-1234-incidents", "C0OTHER", api_url=slack_api.api_url)
    slack_api.script(Reply(429, body='{"ok": false, "error": "ratelimited"}', retry_after="3"))
    right = SlackApiChannel("xoxb-1234-incidents", "C0INCIDENTS", api_url=slack_api.api_url)
    message = incident_message(
        Incident(id=9, title="t", severity="P1", impact="i", commander="ana",
                 status="investigating", declared_at=DECLARED, declared_by="me",
                 last_update_at=DECLARED), what="declared", text="", at=DECLARED,
        links=LinkSettings())
    try:
        limited = right.send(message)
        assert (limited.ok, limited.reason, limited.retry_after) == (False, "rate_limited", 3.0)
        refused = wrong.send(message)
        assert (refused.permanent, refused.detail) == (True, "Slack: invalid_auth")
        assert "xoxb-wrong" not in refused.detail
        assert elsewhere.send(message).detail == "Slack: channel_not_found"
        assert right.send(message).ok
    finally:
        for channel in (wrong, elsewhere, right):
            channel.close()


def test_the_postmortem_names_the_orgs_whose_heartbeats_were_refused(api, process, clock,
                                                                      alerts_db_url):
    add_org(process.engine, "org_acme")
    add_org(process.engine, "org_quiet")
    engine_db = create_database(alerts_db_url)
    try:
        hour = minute_of(DECLARED) // 60
        UsageStore(engine_db).record_refusals(hour, {("org_acme", "closed_period"): 40,
                                                     ("org_acme", "future_timestamp"): 2})
        UsageStore(engine_db).record_refusals(hour, {("org_acme", "closed_period"): 2})
        UsageStore(engine_db).record_refusals(hour - 3, {("org_quiet", "closed_period"): 9})
    finally:
        engine_db.dispose()
    declare(api, severity="P1", title="Late heartbeats refused")
    clock.now = DECLARED + timedelta(minutes=30)
    api.post("/v1/incidents/1/resolve", json={"summary": "reopened the period"})
    text = api.get("/v1/incidents/1/postmortem").json()["markdown"]
    assert "### Orgs whose heartbeats were refused" in text
    assert "In the UTC hours of the incident, 1 org had heartbeats refused" in text
    assert "| org_acme | Org org_acme | closed_period | 42 |" in text
    assert "| org_acme | Org org_acme | future_timestamp | 2 |" in text
    assert "org_quiet" not in text  # refused three hours before, outside the incident
