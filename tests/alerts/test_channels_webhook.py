"""The generic webhook channel against a real local HTTP server: Alertmanager's webhook payload,
version 4, field by field, as a receiver built for Alertmanager reads it; credentials; answers."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_from_json, message_to_json
from alerts.delivery.webhook import WebhookChannel, build_payload, go_time, label_set
from alerts.incidents.messages import incident_message
from alerts.incidents.rules import Incident
from alerts.rules.messages import rule_message
from alerts.rules.model import Alert, AlertStatus, fingerprint
from devstack.receivers import Reply, WebhookReceiver, closed_port
from tests.alerts.messages import budget_message

LINKS = LinkSettings(runbook_base_url="https://console.example.com/runbooks",
                     grafana_url="https://grafana.example.com",
                     console_url="https://console.example.com")
FIRED = datetime(2026, 11, 3, 14, 5, 0, 250000, tzinfo=UTC)
# The fields of Alertmanager's webhook message and of each alert in it (version 4).
TOP_LEVEL = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
             "commonLabels", "commonAnnotations", "externalURL", "alerts"}
ALERT_FIELDS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                "fingerprint"}


def engine_down(instance: str, *, resolved_at: datetime | None = None) -> Alert:
    labels = {"alertname": "BillingEngineDown", "severity": "P0", "service": "billing-engine",
              "job": "billing-engine", "instance": instance}
    return Alert(
        fingerprint=fingerprint(labels), alertname="BillingEngineDown", labels=labels,
        annotations={
            "summary": "Billing engine is down",
            "description": f"{instance} has not answered a scrape for 1 minute.",
            "runbook_url": "http://localhost:8501/runbooks?runbook=billing-engine"
                           "&section=billingenginedown",
            "dashboard_url": "http://localhost:3000/d/billing-overview",
        },
        status=AlertStatus.RESOLVED if resolved_at else AlertStatus.FIRING,
        active_at=FIRED - timedelta(minutes=1), last_evaluated_at=FIRED, value=0.0,
        fired_at=FIRED, resolved_at=resolved_at)


def sent(receiver: WebhookReceiver, alerts: list[Alert], *, state: str = "firing",
         **channel: Any) -> dict[str, Any]:
    """Queue-and-send as the outbox does (the message goes through its JSON form), then what
    the receiver got."""
    message = rule_message(alerts, state=state, recipients=(), links=LINKS,
                           group_labels={"alertname": "BillingEngineDown"})
    result = WebhookChannel(receiver.url, receiver="teams", **channel).send(
        message_from_json(message_to_json(message)))
    assert result.ok, result
    return receiver.wait_for_posts(1)[-1].json


@pytest.fixture
def hook() -> Any:
    with WebhookReceiver() as receiver:
        yield receiver


def test_a_firing_alert_arrives_as_alertmanager_sends_it(hook: WebhookReceiver) -> None:
    alert = engine_down("engine-1:8006")

    body = sent(hook, [alert])

    assert set(body) == TOP_LEVEL
    assert body["version"] == "4"
    assert body["groupKey"] == '{}:{alertname="BillingEngineDown"}'
    assert body["truncatedAlerts"] == 0
    assert body["status"] == "firing"
    assert body["receiver"] == "teams"
    assert body["groupLabels"] == {"alertname": "BillingEngineDown"}
    assert body["commonLabels"] == alert.labels
    runbook = ("https://console.example.com/runbooks?runbook=billing-engine"
               "&section=billingenginedown")
    assert body["commonAnnotations"] == {
        "summary": "Billing engine is down",
        "description": "engine-1:8006 has not answered a scrape for 1 minute.",
        "runbook_url": runbook,
        "dashboard_url": "https://grafana.example.com/d/billing-overview",
    }
    assert body["externalURL"] == "https://console.example.com/alerts"
    [sent_alert] = body["alerts"]
    assert set(sent_alert) == ALERT_FIELDS
    assert sent_alert["status"] == "firing"
    assert sent_alert["labels"] == alert.labels
    assert sent_alert["annotations"]["runbook_url"] == runbook
    assert sent_alert["startsAt"] == "2026-11-03T14:05:00.25Z"
    assert sent_alert["endsAt"] == "0001-01-01T00:00:00Z"  # Go's zero time while firing
    assert sent_alert["generatorURL"] == (
        f"https://console.example.com/alerts?fingerprint={alert.fingerprint}")
    assert sent_alert["fingerprint"] == alert.fingerprint
    assert len(alert.fingerprint) == 16  # as Alertmanager's: 16 hex digits


def test_a_group_lists_each_alert_with_its_own_labels_and_only_shared_ones_in_common(
        hook: WebhookReceiver) -> None:
    first, second = engine_down("engine-1:8006"), engine_down("engine-2:8006")

    body = sent(hook, [second, first])

    assert body["groupKey"] == '{}:{alertname="BillingEngineDown"}'
    assert body["groupLabels"] == {"alertname": "BillingEngineDown"}
    assert [a["labels"]["instance"] for a in body["alerts"]] == ["engine-1:8006",
                                                                 "engine-2:8006"]
    assert [a["fingerprint"] for a in body["alerts"]] == [first.fingerprint, second.fingerprint]
    assert [a["annotations"]["description"] for a in body["alerts"]] == [
        "engine-1:8006 has not answered a scrape for 1 minute.",
        "engine-2:8006 has not answered a scrape for 1 minute."]
    assert "instance" not in body["commonLabels"]
    assert body["commonLabels"]["severity"] == "P0"
    assert "description" not in body["commonAnnotations"]
    assert body["commonAnnotations"]["summary"] == "Billing engine is down"
    assert all(set(a) == ALERT_FIELDS for a in body["alerts"])


def test_a_resolved_alert_says_resolved_with_its_end_time(hook: WebhookReceiver) -> None:
    ended = FIRED + timedelta(minutes=3)

    body = sent(hook, [engine_down("engine-1:8006", resolved_at=ended)], state="resolved")

    assert body["status"] == "resolved"
    [alert] = body["alerts"]
    assert alert["status"] == "resolved"
    assert alert["startsAt"] == "2026-11-03T14:05:00.25Z"
    assert alert["endsAt"] == "2026-11-03T14:08:00.25Z"


def test_a_bearer_token_or_basic_auth_is_presented(hook: WebhookReceiver) -> None:
    alert = engine_down("engine-1:8006")
    sent(hook, [alert], bearer_token="hook-token-5f2e")
    sent(hook, [alert], basic_auth=("alerts", "hook-password-91c"))
    sent(hook, [alert])

    bearer, basic, none = hook.wait_for_posts(3)
    assert bearer.headers["authorization"] == "Bearer hook-token-5f2e"
    user_pass = base64.b64decode(basic.headers["authorization"].removeprefix("Basic "))
    assert user_pass == b"alerts:hook-password-91c"
    assert "authorization" not in none.headers
    assert bearer.headers["content-type"] == "application/json"


def test_a_429_waits_for_retry_after_a_500_is_retried_and_other_4xx_are_permanent(
        hook: WebhookReceiver) -> None:
    hook.script(Reply(429, body="slow down", retry_after="12"), Reply(503, body="busy"),
                Reply(401, body="bad token"), Reply(404, body="no such hook"))
    channel = WebhookChannel(hook.url, receiver="teams", bearer_token="hook-token-5f2e")
    message = rule_message([engine_down("engine-1:8006")], state="firing", recipients=(),
                           links=LINKS)

    limited, busy, refused, missing, sent_ok = (channel.send(message) for _ in range(5))

    assert (limited.ok, limited.permanent, limited.reason, limited.retry_after) == (
        False, False, "rate_limited", 12.0)
    assert (busy.ok, busy.permanent, busy.reason) == (False, False, "server_error")
    assert (refused.ok, refused.permanent, refused.reason) == (False, True, "rejected")
    assert "bad token" in refused.detail
    assert (missing.ok, missing.permanent, missing.reason) == (False, True, "rejected")
    assert sent_ok.ok
    assert [p.answered for p in hook.wait_for_posts(5)] == [429, 503, 401, 404, 200]


def test_a_slow_receiver_times_out_and_a_refused_connection_is_retried(
        hook: WebhookReceiver) -> None:
    hook.script(Reply(200, delay=1.0))
    message = rule_message([engine_down("engine-1:8006")], state="firing", recipients=(),
                           links=LINKS)

    slow = WebhookChannel(hook.url, receiver="teams", timeout_seconds=0.2).send(message)
    url = f"http://127.0.0.1:{closed_port()}/hook?token=url-secret-77"
    refused = WebhookChannel(url, receiver="teams").send(message)

    assert (slow.ok, slow.permanent, slow.reason) == (False, False, "timeout")
    assert (refused.ok, refused.permanent, refused.reason) == (False, False, "connection")
    assert "url-secret-77" not in refused.detail


def test_no_detail_or_repr_carries_the_url_or_a_credential(hook: WebhookReceiver) -> None:
    hook.script(Reply(400, body=f"refused {hook.url} with Bearer hook-token-5f2e"))
    channel = WebhookChannel(hook.url, receiver="teams", bearer_token="hook-token-5f2e")

    result = channel.send(rule_message([engine_down("engine-1:8006")], state="firing",
                                       recipients=(), links=LINKS))

    assert result.reason == "rejected" and "refused" in result.detail
    assert hook.url not in result.detail and "hook-token-5f2e" not in result.detail
    assert "hook-token-5f2e" not in repr(channel) and hook.url not in repr(channel)
    basic = WebhookChannel(hook.url, receiver="t", basic_auth=("u", "hook-password-91c"))
    assert "hook-password-91c" not in repr(basic)


def test_budget_messages_are_never_posted_to_a_webhook(hook: WebhookReceiver) -> None:
    result = WebhookChannel(hook.url, receiver="teams").send(budget_message(90))

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert hook.posts == []


def test_a_message_queued_before_messages_listed_their_alerts_still_reads_whole(
        hook: WebhookReceiver) -> None:
    """An outbox row written by the previous version (no alerts, no group labels) after an
    upgrade: the lead's own fields make the one alert."""
    message = rule_message([engine_down("engine-1:8006")], state="firing", recipients=(),
                           links=LINKS)
    raw = message_to_json(message).replace('"alerts": [{', '"old": [{').replace(
        '"group_labels": {"alertname": "BillingEngineDown"}', '"group_labels": {}')

    payload = build_payload(message_from_json(raw), receiver="teams")

    [alert] = payload["alerts"]
    assert alert["fingerprint"] == message.fingerprint
    assert alert["labels"] == dict(message.labels) and alert["startsAt"] == go_time(FIRED)
    assert payload["groupLabels"] == {"alertname": "BillingEngineDown"}


def test_times_and_label_sets_are_written_as_go_writes_them() -> None:
    assert go_time(datetime(2026, 11, 3, 14, 5, tzinfo=UTC)) == "2026-11-03T14:05:00Z"
    assert go_time(datetime(2026, 11, 3, 14, 5, 0, 120000, tzinfo=UTC)) == (
        "2026-11-03T14:05:00.12Z")
    paris = datetime(2026, 11, 3, 15, 5, tzinfo=timezone(timedelta(hours=1)))
    assert go_time(paris) == "2026-11-03T14:05:00Z"
    assert go_time(None) == "0001-01-01T00:00:00Z"
    assert label_set({"slo": "availability", "alertname": 'A "q"'}) == (
        '{alertname="A \\"q\\"", slo="availability"}')
    assert label_set({}) == "{}"


def test_an_incidents_messages_reach_a_webhook_as_one_alert_that_resolves(
        hook: WebhookReceiver) -> None:
    incident = Incident(id=7, title="Invoices not sent", severity="P2", impact="no invoices",
                        commander="ana", status="investigating", declared_at=FIRED,
                        declared_by="ana", last_update_at=FIRED)
    resolved = replace(incident, status="resolved", resolved_at=FIRED + timedelta(hours=2))
    channel = WebhookChannel(hook.url, receiver="tickets")

    for what, state in (("declared", incident), ("resolved", resolved)):
        sent = incident_message(state, what=what, text="", at=FIRED, links=LINKS)
        assert channel.send(message_from_json(message_to_json(sent))).ok

    declared, ended = (p.json for p in hook.wait_for_posts(2))
    assert declared["groupKey"] == ended["groupKey"] == '{}:{alertname="INC-7"}'
    assert declared["alerts"][0]["fingerprint"] == ended["alerts"][0]["fingerprint"]
    assert (declared["status"], ended["status"]) == ("firing", "resolved")
    assert ended["alerts"][0]["endsAt"] == "2026-11-03T16:05:00.25Z"
    assert declared["alerts"][0]["generatorURL"] == "https://console.example.com/incidents?id=7"
