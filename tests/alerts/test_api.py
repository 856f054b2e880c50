"""The alerts HTTP API: health, metrics, alerts with delivery status, acks, silences, budget
history and delivery tests, with a real SMTP server and a real Slack stand-in behind it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.api.app import create_app
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import NotificationKey, message_to_json
from alerts.delivery.outbox import OutboxWorker
from alerts.delivery.store import QueuedMessage
from alerts.process import AlertsProcess, build_process, utc_now
from alerts.rules.messages import rule_message
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.settings import Settings
from devstack.receivers import Reply, SlackReceiver, SmtpServer, closed_port
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY, add_org, add_usage

ADMIN = {"X-Admin-Key": ADMIN_KEY}
LABELS = {"alertname": "BillingEngineDown", "severity": "P0", "service": "billing-engine",
          "instance": "127.0.0.1:8006", "job": "billing-engine"}
ANNOTATIONS = {
    "summary": "Billing engine is down",
    "description": "down",
    "runbook_url": "http://localhost:8501/runbooks?runbook=billing-engine"
                   "&section=billingenginedown",
    "dashboard_url": "http://localhost:3000/d/billing-overview",
}


def settings_for(url: str, smtp: SmtpServer, slack: SlackReceiver | None, **extra: Any
                 ) -> Settings:
    return Settings(database_url=url, admin_api_key=ADMIN_KEY, environment="test",
                    smtp_host=smtp.host, smtp_port=smtp.port, oncall_email="oncall@example.com",
                    slack_webhook_url=slack.url if slack else None,
                    runbook_base_url="https://ops.example.com/runbooks",
                    grafana_url="https://grafana.example.com",
                    console_url="https://console.example.com", **extra)


@pytest.fixture
def process(alerts_pg_url, smtp_server, slack_receiver) -> Iterator[AlertsProcess]:
    built = build_process(settings_for(alerts_pg_url, smtp_server, slack_receiver), environ={},
                          scheduled=False)
    yield built
    built.close()


@pytest.fixture
def api(process) -> Iterator[TestClient]:
    """A client sending ADMIN_API_KEY with every request."""
    with TestClient(create_app(process, run_scheduler=False), headers=ADMIN) as client:
        yield client


@pytest.fixture
def anon(process) -> Iterator[TestClient]:
    """A client sending no credential."""
    with TestClient(create_app(process, run_scheduler=False)) as client:
        yield client


def fire_engine_down(process: AlertsProcess) -> Alert:
    """A firing BillingEngineDown, notified to on-call email and Slack, as a round leaves it."""
    now = utc_now()
    alert = Alert(fingerprint=fingerprint(LABELS), alertname="BillingEngineDown", labels=LABELS,
                  annotations=ANNOTATIONS, status=AlertStatus.FIRING, active_at=now,
                  last_evaluated_at=now, value=0.0, fired_at=now)
    messages = []
    for receiver, channel in (("oncall-email", "email"), ("oncall-slack", "slack")):
        key = NotificationKey(alert.fingerprint, receiver, "firing", f"{alert.episode}/0")
        recipients = ("oncall@example.com",) if channel == "email" else ()
        messages.append(QueuedMessage(
            kind="rule", receiver=receiver, channel=channel, keys=((key, alert.alertname),),
            build_payload=lambda _k, r=recipients: message_to_json(rule_message(
                [alert], state="firing", recipients=r, links=process.links))))
    process.store.apply_round(alerts=[alert], dropped=[], messages=messages, now=now)
    return alert


def worker(process: AlertsProcess) -> OutboxWorker:
    return OutboxWorker(store=process.store, resolve=process.channels.for_receiver,
                        metrics=process.metrics, clock=utc_now)


def test_health_answers_and_ready_checks_the_database(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_metrics_pass_promtool_and_carry_the_agreed_names(api, process):
    fire_engine_down(process)
    worker(process).drain()
    text = api.get("/metrics").text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed: apt-get install prometheus")
    result = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                            capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("alert_evaluations_total", "alert_evaluation_duration_seconds_bucket",
                 "alert_rule_errors_total", "alert_prometheus_up",
                 'alert_notifications_sent_total{channel="email"} 1.0',
                 'alert_notifications_failed_total{channel="slack",reason="rate_limited"} 0.0',
                 "alert_outbox_depth", "alert_outbox_oldest_age_seconds", "alert_leader"):
        assert name in text, name
    assert "127.0.0.1:8006" not in text and "oncall@example.com" not in text


def test_active_alerts_show_links_and_delivery_status_per_channel(api, process, smtp_server,
                                                                 slack_receiver):
    alert = fire_engine_down(process)
    before = api.get("/v1/alerts").json()["alerts"]
    assert [a["delivery"]["email"]["status"] for a in before] == ["pending"]
    worker(process).drain()
    smtp_server.wait_for_messages(1)
    slack_receiver.wait_for_posts(1)
    [shown] = api.get("/v1/alerts", params={"state": "active"}).json()["alerts"]
    assert shown["fingerprint"] == alert.fingerprint and shown["state"] == "firing"
    assert shown["labels"]["severity"] == "P0" and shown["activeAt"]
    assert shown["runbook_url"] == ("https://ops.example.com/runbooks?runbook=billing-engine"
                                    "&section=billingenginedown")
    assert shown["dashboard_url"] == "https://grafana.example.com/d/billing-overview"
    assert shown["delivery"]["email"]["status"] == "sent"
    assert shown["delivery"]["slack"]["status"] == "sent"
    assert {d["receiver"] for d in shown["deliveries"]} == {"oncall-email", "oncall-slack"}


def test_a_bad_state_filter_names_the_field(api):
    response = api.get("/v1/alerts", params={"state": "everything"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "state"


def test_ack_needs_a_credential_and_records_who_presented_it(api, anon, process):
    alert = fire_engine_down(process)
    missing = anon.post(f"/v1/alerts/{alert.fingerprint}/ack")
    wrong = anon.post(f"/v1/alerts/{alert.fingerprint}/ack", headers={"X-Admin-Key": "nope"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["errors"] == [{"field": "Authorization",
                                         "reason": "a Bearer credential is required"}]
    assert wrong.json()["errors"] == [{"field": "X-Admin-Key", "reason": "is not a valid key"}]
    assert api.post("/v1/alerts/nope/ack", headers=ADMIN).status_code == 404
    acked = api.post(f"/v1/alerts/{alert.fingerprint}/ack", json={"by": "alice"}, headers=ADMIN)
    # Who acknowledged is the credential's name (ADMIN_API_KEY is "admin"); "alice" is a note.
    assert acked.status_code == 200 and acked.json()["acked_by"] == "admin"
    [row] = process.store.audit_log()
    assert (row["actor"], row["role"], row["action"], row["target"]) == (
        "admin", "admin", "alert.ack", alert.fingerprint)
    assert row["detail"]["on_behalf_of"] == "alice"
    [shown] = api.get("/v1/alerts").json()["alerts"]
    assert shown["acked"] is True


def test_silences_are_added_listed_applied_and_expired(api, process):
    fire_engine_down(process)
    created = api.post("/v1/silences", headers=ADMIN, json={
        "matchers": ["alertname=BillingEngineDown", {"name": "severity", "op": "=~",
                                                     "value": "P0|P1"}],
        "duration": "2h", "comment": "planned database failover", "created_by": "alice"})
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["state"] == "active" and len(silence["matchers"]) == 2
    [listed] = api.get("/v1/silences").json()["silences"]
    assert listed["id"] == silence["id"] and listed["comment"] == "planned database failover"
    [shown] = api.get("/v1/alerts").json()["alerts"]
    assert shown["silenced_by"] == [silence["id"]]
    expired = api.delete(f"/v1/silences/{silence['id']}", headers=ADMIN)
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    assert api.get("/v1/silences").json()["silences"] == []
    assert len(api.get("/v1/silences", params={"state": "expired"}).json()["silences"]) == 1
    assert api.delete("/v1/silences/nope", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"matchers": [], "duration": "1h", "comment": "c", "created_by": "a"}, "matchers"),
    ({"matchers": ["not a matcher"], "duration": "1h", "comment": "c", "created_by": "a"},
     "matchers[0]"),
    ({"matchers": ["alertname=~("], "duration": "1h", "comment": "c", "created_by": "a"},
     "matchers[0]"),
    ({"matchers": ["instance="], "duration": "1h", "comment": "c", "created_by": "a"},
     "matchers"),
    ({"matchers": ["alertname=X"], "comment": "c", "created_by": "a"}, "expires_at"),
    ({"matchers": ["alertname=X"], "duration": "soon", "comment": "c", "created_by": "a"},
     "duration"),
    ({"matchers": ["alertname=X"], "expires_at": "2020-01-01T00:00:00Z", "comment": "c",
      "created_by": "a"}, "expires_at"),
    ({"matchers": ["alertname=X"], "duration": "1h", "comment": "   ", "created_by": "a"},
     "comment"),
    ({"matchers": ["alertname=X"], "duration": "31d", "comment": "c"}, "duration"),
    ({"matchers": ["alertname=X"], "duration": "100000000d", "comment": "c"}, "duration"),
    ({"matchers": ["alertname=X"], "duration": "2h", "comment": "c",
      "starts_at": "9999-12-31T22:00:00Z"}, "starts_at"),
    ({"matchers": ["alertname=X"], "expires_at": "9999-12-31T23:59:59Z", "comment": "c"},
     "expires_at"),
])
def test_a_bad_silence_is_refused_naming_the_field(api, body, field):
    response = api.post("/v1/silences", headers=ADMIN, json=body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_changing_silences_needs_a_credential(anon):
    body = {"matchers": ["alertname=X"], "duration": "1h", "comment": "c", "created_by": "a"}
    assert anon.post("/v1/silences", json=body).status_code == 401
    assert anon.delete("/v1/silences/x").status_code == 401


def test_debug_alerts_shows_an_orgs_budget_history_with_delivery(api, process, smtp_server,
                                                                 alerts_metrics):
    from alerts.budget.evaluator import BudgetEvaluator
    from billing_core.catalogue import load_plans

    add_org(process.engine, "org_acme", plan="free", email="billing@acme.example")
    today = utc_now().date()
    add_usage(process.engine, "org_acme", date(today.year, today.month, 1), 5 * 60)
    BudgetEvaluator(store=process.store, catalog=load_plans(process.settings.plans_file),
                    routing=process.routing, links=LinkSettings(), metrics=alerts_metrics,
                    clock=utc_now).run_round()
    worker(process).drain()
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == ("billing@acme.example",)

    assert api.get("/debug/alerts/org_acme", headers={"X-Admin-Key": "nope"}).status_code == 401
    body = api.get("/debug/alerts/org_acme", headers=ADMIN).json()
    [notice] = body["budget_alerts"]
    assert notice["threshold"] == 50 and notice["email"] == "billing@acme.example"
    assert notice["used_hours"] == 5 and notice["included_hours"] == 10
    assert {(d["channel"], d["status"]) for d in notice["deliveries"]} == {
        ("email", "sent"), ("slack", "sent")}
    assert api.get("/debug/alerts/org_nobody", headers=ADMIN).json()["budget_alerts"] == []


def test_test_email_reaches_the_smtp_server(api, smtp_server):
    response = api.post("/admin/test-email", headers=ADMIN, json={"to": "me@example.com"})
    assert response.status_code == 200 and response.json()["ok"] is True
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == ("me@example.com",) and "[TEST]" in mail.subject
    assert api.post("/admin/test-email", headers={"X-Admin-Key": "nope"}).status_code == 401
    bad = api.post("/admin/test-email", headers=ADMIN, json={"to": "not an address"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "to"


def test_test_email_says_why_when_smtp_is_unreachable(alerts_pg_url, smtp_server):
    settings = settings_for(alerts_pg_url, smtp_server, None)
    settings = Settings(**{**settings.__dict__, "smtp_port": closed_port()})
    process = build_process(settings, environ={}, scheduled=False)
    try:
        with TestClient(create_app(process, run_scheduler=False)) as client:
            response = client.post("/admin/test-email", headers=ADMIN)
    finally:
        process.close()
    assert response.status_code == 502
    assert response.json()["reason"] == "connection"
    assert response.json()["errors"][0]["field"] == "email"


def test_test_slack_posts_to_the_webhook_and_reports_a_429(api, slack_receiver):
    ok = api.post("/admin/test-slack", headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["receiver"] == "oncall-slack"
    [post] = slack_receiver.wait_for_posts(1)
    assert "Test message" in post.json["text"]
    slack_receiver.script(Reply(429, retry_after="30"))
    limited = api.post("/admin/test-slack", headers=ADMIN)
    assert limited.status_code == 502
    assert (limited.json()["reason"], limited.json()["retry_after"]) == ("rate_limited", 30.0)


def test_test_slack_says_slack_is_off_when_no_webhook_is_set(alerts_pg_url, smtp_server):
    process = build_process(settings_for(alerts_pg_url, smtp_server, None), environ={},
                            scheduled=False)
    try:
        with TestClient(create_app(process, run_scheduler=False)) as client:
            response = client.post("/admin/test-slack", headers=ADMIN)
    finally:
        process.close()
    assert response.status_code == 409
    assert response.json()["errors"] == [{"field": "SLACK_WEBHOOK_URL",
                                          "reason": "no Slack receiver is configured; "
                                                    "Slack is off"}]


def test_recent_alerts_include_those_resolved_in_the_last_day(api, process):
    alert = fire_engine_down(process)
    now = utc_now()
    resolved = Alert(**{**alert.__dict__, "status": AlertStatus.RESOLVED, "resolved_at": now})
    process.store.apply_round(alerts=[resolved], dropped=[], messages=[], now=now)
    assert api.get("/v1/alerts").json()["alerts"] == []
    [recent] = api.get("/v1/alerts", params={"state": "recent"}).json()["alerts"]
    assert recent["state"] == "resolved" and recent["resolved_at"]
    old = Alert(**{**alert.__dict__, "status": AlertStatus.RESOLVED,
                   "resolved_at": now - timedelta(days=2)})
    process.store.apply_round(alerts=[old], dropped=[], messages=[], now=now)
    assert api.get("/v1/alerts", params={"state": "recent"}).json()["alerts"] == []


@pytest.mark.parametrize("matchers", [
    ['alertname=~".*"'], ['alertname=~".+"'], ['alertname!=""'], ['alertname!~"x"'],
    ['alertname=~"(?s).*"'], ['alertname=~".{0,}"'], ['alertname=~"(x|.*)"'],
    ['instance!="a"', 'job!~"b"'], ['alertname=~".+"', 'severity!="P9"'],
    [{"name": "alertname", "op": "=~", "value": ".*"}],
])
def test_a_silence_matching_every_alert_is_refused_in_every_spelling(api, matchers):
    response = api.post("/v1/silences", json={"matchers": matchers, "duration": "1h",
                                              "comment": "hide everything"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "matchers"


@pytest.mark.parametrize("matchers", [
    ['alertname=~"Billing.*"'], ["alertname=X", 'instance!=""'], ['severity=~"P2|P3"'],
])
def test_a_silence_that_selects_is_kept(api, matchers):
    response = api.post("/v1/silences", json={"matchers": matchers, "duration": "1h",
                                              "comment": "narrow"})
    assert response.status_code == 201, response.text
