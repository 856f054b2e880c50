"""The PagerDuty channel against the local Events API v2 stand-in (devstack.receivers), which
checks every event as PagerDuty documents it and keeps PagerDuty's alert lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_from_json, message_to_json
from alerts.delivery.pagerduty import PagerDutyChannel, build_events
from alerts.incidents.messages import incident_message
from alerts.incidents.rules import Incident
from alerts.oncall.messages import escalation_message
from alerts.oncall.policy_file import DEFAULT_ONCALL_FILE, load_policy
from alerts.oncall.store import ESCALATED, Escalation
from alerts.rules.messages import rule_message
from alerts.rules.model import Alert, AlertStatus, fingerprint
from devstack.receivers import PagerDutyReceiver, Reply, closed_port
from tests.alerts.messages import budget_message

KEY = "pd0routing0key0for0tests0000001a"
LINKS = LinkSettings(runbook_base_url="https://console.example.com/runbooks",
                     grafana_url="https://grafana.example.com",
                     console_url="https://console.example.com")
FIRED = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)


def burn(severity: str = "P1", *, instance: str | None = None, summary: str | None = None,
         resolved_at: datetime | None = None) -> Alert:
    labels = {"alertname": "BillingAvailabilityFastBurn", "severity": severity,
              "service": "billing-engine", "slo": "availability"}
    if instance:
        labels["instance"] = instance
    return Alert(
        fingerprint=fingerprint(labels), alertname=labels["alertname"], labels=labels,
        annotations={
            "summary": summary or "Billing engine is burning its availability error budget fast",
            "description": "5xx ratio is 14.4x the sustainable rate.",
            "runbook_url": "http://localhost:8501/runbooks?runbook=slo"
                           "&section=billingavailabilityfastburn",
            "dashboard_url": "http://localhost:3000/d/billing-slo",
        },
        status=AlertStatus.RESOLVED if resolved_at else AlertStatus.FIRING,
        active_at=FIRED - timedelta(minutes=2), last_evaluated_at=FIRED, value=20.04,
        fired_at=FIRED, resolved_at=resolved_at)


def message(alerts: list[Alert], state: str = "firing"):  # type: ignore[no-untyped-def]
    built = rule_message(alerts, state=state, recipients=(), links=LINKS)
    return message_from_json(message_to_json(built))  # as the outbox hands it over


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyReceiver]:
    with PagerDutyReceiver() as receiver:
        yield receiver


def channel(pagerduty: PagerDutyReceiver, **options: float) -> PagerDutyChannel:
    return PagerDutyChannel(KEY, url=pagerduty.url, **options)  # type: ignore[arg-type]


def test_a_firing_alert_triggers_one_pagerduty_alert_keyed_by_its_fingerprint(pagerduty):
    alert = burn()

    result = channel(pagerduty).send(message([alert]))

    assert result.ok, result
    [post] = pagerduty.wait_for_posts(1)
    assert post.answered == 202 and post.path == "/v2/enqueue"
    assert post.headers["content-type"] == "application/json"
    event = post.json
    assert event["routing_key"] == KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == alert.fingerprint
    assert event["client"] == "Billing ops alerts"
    assert event["client_url"] == "https://console.example.com/alerts"
    assert event["links"] == [
        {"href": "https://console.example.com/runbooks?runbook=slo"
                 "&section=billingavailabilityfastburn", "text": "Runbook"},
        {"href": "https://grafana.example.com/d/billing-slo", "text": "Dashboard"},
        {"href": f"https://console.example.com/alerts?fingerprint={alert.fingerprint}",
         "text": "Alert in console"},
    ]
    payload = event["payload"]
    assert payload["summary"] == ("[P1] BillingAvailabilityFastBurn: Billing engine is burning "
                                  "its availability error budget fast")
    assert payload["severity"] == "error"
    assert payload["source"] == "billing-engine"  # no instance label: the service
    assert payload["component"] == "billing-engine"
    assert payload["group"] == "availability"
    assert payload["class"] == "BillingAvailabilityFastBurn"
    assert datetime.fromisoformat(payload["timestamp"]) == FIRED
    assert payload["custom_details"] == {
        "description": "5xx ratio is 14.4x the sustainable rate.",
        "firing_since": FIRED.isoformat(), "labels": dict(alert.labels),
        "fingerprint": alert.fingerprint, "value": "20.04"}
    assert pagerduty.alert(KEY, alert.fingerprint).status == "triggered"
    assert result.detail == f"PagerDuty accepted trigger for {alert.fingerprint}"


@pytest.mark.parametrize(("severity", "expected"), [
    ("P0", "critical"), ("P1", "error"), ("P2", "warning"), ("P3", "info"), ("P7", "error")])
def test_severities_map_to_pagerdutys_four(pagerduty, severity, expected):
    alert = burn(severity)
    [event] = build_events(message([alert]), routing_key=KEY)
    assert event["payload"]["severity"] == expected
    assert channel(pagerduty).send(message([alert])).ok  # and PagerDuty takes it


def test_trigger_repeat_acknowledge_resolve_follow_one_pagerduty_alert(pagerduty):
    alert = burn()
    resolved = replace(alert, status=AlertStatus.RESOLVED,
                       resolved_at=FIRED + timedelta(minutes=9))
    sender = channel(pagerduty)

    results = [sender.send(message([alert])), sender.send(message([alert])),
               sender.send(message([alert], "acked"))]
    acknowledged = pagerduty.alert(KEY, alert.fingerprint).status
    results.append(sender.send(message([resolved], "resolved")))

    assert all(r.ok for r in results), results
    assert acknowledged == "acknowledged"
    pd_alert = pagerduty.alert(KEY, alert.fingerprint)
    assert pd_alert.status == "resolved"
    assert pd_alert.actions == ["trigger", "trigger", "acknowledge", "resolve"]
    assert len(pagerduty.book.alerts) == 1
    ack, resolve = (p.json for p in pagerduty.posts[2:])
    assert ack == {"routing_key": KEY, "dedup_key": alert.fingerprint,
                   "event_action": "acknowledge"}
    assert resolve == {"routing_key": KEY, "dedup_key": alert.fingerprint,
                       "event_action": "resolve"}


def test_a_group_of_alerts_is_one_pagerduty_alert_each(pagerduty):
    first, second = burn(instance="engine-1:8006"), burn(instance="engine-2:8006")

    assert channel(pagerduty).send(message([first, second])).ok

    events = pagerduty.wait_for_events(2)
    assert {e["dedup_key"] for e in events} == {first.fingerprint, second.fingerprint}
    assert {e["payload"]["source"] for e in events} == {"engine-1:8006", "engine-2:8006"}


def test_a_long_summary_is_cut_to_pagerdutys_limit(pagerduty):
    assert channel(pagerduty).send(message([burn(summary="x" * 5000)])).ok
    [event] = pagerduty.wait_for_events(1)
    assert len(event["payload"]["summary"]) == 1024


def test_a_429_waits_for_retry_after_or_30_seconds_and_a_5xx_is_retried(pagerduty):
    pagerduty.script(Reply(429, body="", retry_after="7"), Reply(429, body=""),
                     Reply(502, body="bad gateway"))
    sender = channel(pagerduty)

    told, untold, broken, sent = (sender.send(message([burn()])) for _ in range(4))

    assert (told.ok, told.permanent, told.reason, told.retry_after) == (
        False, False, "rate_limited", 7.0)
    assert (untold.reason, untold.retry_after) == ("rate_limited", 30.0)
    assert (broken.ok, broken.permanent, broken.reason) == (False, False, "server_error")
    assert broken.retry_after is None
    assert sent.ok
    assert len(pagerduty.events) == 1


def test_an_event_pagerduty_finds_invalid_is_permanent_and_says_why(pagerduty):
    wrong = PagerDutyChannel("too-short", url=pagerduty.url)

    result = wrong.send(message([burn()]))

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert "400" in result.detail and "invalid event" in result.detail
    assert "routing_key" in result.detail and "too-short" not in result.detail
    assert pagerduty.events == []


def test_the_routing_key_never_reaches_a_detail_or_the_repr(pagerduty):
    pagerduty.script(Reply(400, body=f'{{"errors": ["unknown key {KEY}"]}}'))
    sender = channel(pagerduty)

    refused = sender.send(message([burn()]))
    unreachable = PagerDutyChannel(KEY, url=f"http://127.0.0.1:{closed_port()}/v2/enqueue"
                                   ).send(message([burn()]))

    assert refused.reason == "rejected" and KEY not in refused.detail
    assert (unreachable.reason, unreachable.permanent) == ("connection", False)
    assert KEY not in unreachable.detail and KEY not in repr(sender)


def test_a_slow_pagerduty_times_out(pagerduty):
    pagerduty.script(Reply(202, delay=1.0))
    result = channel(pagerduty, timeout_seconds=0.2).send(message([burn()]))
    assert (result.ok, result.permanent, result.reason) == (False, False, "timeout")


def test_budget_messages_never_reach_pagerduty(pagerduty):
    result = channel(pagerduty).send(budget_message(90))
    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert pagerduty.posts == []


# ------------------------------------------------------------------ escalations, incidents


def test_an_escalation_adds_to_the_pagerduty_alert_its_page_opened(pagerduty):
    alert = burn()
    policy = load_policy(DEFAULT_ONCALL_FILE, environ={})
    step = Escalation(fingerprint=alert.fingerprint, episode=alert.episode,
                      alertname=alert.alertname, severity="P1", step=1, kind=ESCALATED,
                      rotation="secondary", person="ben", at=FIRED + timedelta(minutes=30))
    escalated = escalation_message(alert, step, person=policy.people["ben"], policy=policy,
                                   next_up=None, recipients=(), links=LINKS)
    sender = channel(pagerduty)

    assert sender.send(message([alert])).ok
    assert sender.send(message_from_json(message_to_json(escalated))).ok

    first, second = pagerduty.wait_for_events(2)
    assert first["dedup_key"] == second["dedup_key"] == alert.fingerprint
    assert second["payload"]["summary"] == first["payload"]["summary"]
    assert pagerduty.alert(KEY, alert.fingerprint).actions == ["trigger", "trigger"]


def test_an_incident_is_one_pagerduty_alert_from_declaration_to_resolution(pagerduty):
    declared_at = FIRED
    incident = Incident(id=12, title="Card payments failing", severity="P1",
                        impact="a third of card payments declined", commander="ana",
                        status="investigating", declared_at=declared_at, declared_by="ana",
                        last_update_at=declared_at)
    done = replace(incident, status="resolved", resolved_at=declared_at + timedelta(hours=1))
    sender = channel(pagerduty)

    for what, state, at in (("declared", incident, declared_at),
                            ("update", incident, declared_at + timedelta(minutes=20)),
                            ("resolved", done, declared_at + timedelta(hours=1))):
        sent = incident_message(state, what=what, text="", at=at, links=LINKS)
        assert sender.send(message_from_json(message_to_json(sent))).ok

    trigger, update, resolve = pagerduty.wait_for_events(3)
    assert trigger["dedup_key"] == update["dedup_key"] == resolve["dedup_key"]
    assert trigger["payload"]["summary"] == "[P1] Incident declared: INC-12 Card payments failing"
    assert trigger["payload"]["class"] == "incident"
    assert trigger["links"][-1]["href"] == "https://console.example.com/incidents?id=12"
    assert resolve["event_action"] == "resolve"
    pd_alert = pagerduty.alert(KEY, trigger["dedup_key"])
    assert (pd_alert.status, pd_alert.actions) == ("resolved", ["trigger", "trigger", "resolve"])
