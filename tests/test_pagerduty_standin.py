"""The PagerDuty stand-in answers as PagerDuty's Events API v2 documents it: 202 with the dedup
key for a valid event, 400 "invalid event" naming what is wrong, and the alert lifecycle
(trigger, acknowledge, resolve) kept per routing key and dedup key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.receivers import PagerDutyReceiver, Reply

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyReceiver]:
    with PagerDutyReceiver() as receiver:
        yield receiver


def trigger(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": "a1b2c3d4e5f60718",
        "payload": {"summary": "Billing engine is down", "source": "engine-1:8006",
                    "severity": "critical", "timestamp": "2026-11-03T14:05:00Z"},
    }
    event.update(overrides)
    return event


def post(pagerduty: PagerDutyReceiver, event: Any) -> httpx.Response:
    return httpx.post(pagerduty.url, json=event, timeout=5)


def test_a_valid_trigger_is_accepted_with_its_dedup_key(pagerduty):
    answer = post(pagerduty, trigger())

    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Event processed",
                             "dedup_key": "a1b2c3d4e5f60718"}
    assert pagerduty.alert(KEY, "a1b2c3d4e5f60718").status == "triggered"


def test_a_trigger_without_a_dedup_key_gets_one_made_up(pagerduty):
    event = trigger()
    del event["dedup_key"]

    answer = post(pagerduty, event)

    assert answer.status_code == 202 and len(answer.json()["dedup_key"]) == 32


@pytest.mark.parametrize(("change", "named"), [
    ({"routing_key": "short"}, "'routing_key' must be 32 characters long"),
    ({"event_action": "escalate"}, "'event_action' must be one of"),
    ({"payload": {"summary": "x", "source": "y", "severity": "P1"}}, "'payload.severity'"),
    ({"payload": {"source": "y", "severity": "error"}}, "'payload.summary' is required"),
    ({"payload": {"summary": "x" * 1025, "source": "y", "severity": "error"}}, "at most 1024"),
    ({"payload": {"summary": "x", "severity": "error"}}, "'payload.source' is required"),
    ({"payload": None}, "'payload' is required for a trigger"),
    ({"dedup_key": "k" * 256}, "'dedup_key' must be at most 255"),
    ({"links": [{"text": "Runbook"}]}, "'links[0].href' is required"),
    ({"incident_key": "old-v1-name"}, "unknown field 'incident_key'"),
])
def test_an_invalid_event_is_refused_400_naming_the_problem(pagerduty, change, named):
    answer = post(pagerduty, trigger(**change))

    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "invalid event"
    assert any(named in error for error in body["errors"]), body
    assert pagerduty.events == []


def test_acknowledge_and_resolve_need_a_dedup_key_but_no_payload(pagerduty):
    missing = post(pagerduty, {"routing_key": KEY, "event_action": "resolve"})
    assert missing.status_code == 400
    assert "'dedup_key' is required to resolve" in missing.json()["errors"]


def test_a_body_that_is_not_json_is_unrecognized(pagerduty):
    answer = httpx.post(pagerduty.url, content=b"{not json", timeout=5)
    assert answer.status_code == 400 and answer.json()["errors"] == ["JSON parse error"]


def test_trigger_acknowledge_resolve_follow_one_alert_and_a_new_trigger_opens_another(pagerduty):
    dedup = "a1b2c3d4e5f60718"
    for action in ("trigger", "trigger", "acknowledge"):
        event = trigger() if action == "trigger" else {
            "routing_key": KEY, "dedup_key": dedup, "event_action": action}
        assert post(pagerduty, event).status_code == 202
    assert pagerduty.alert(KEY, dedup).status == "acknowledged"
    # A repeated trigger of an acknowledged alert adds to it and leaves it acknowledged.
    assert post(pagerduty, trigger()).status_code == 202
    assert pagerduty.alert(KEY, dedup).status == "acknowledged"
    assert post(pagerduty, {"routing_key": KEY, "dedup_key": dedup,
                            "event_action": "resolve"}).status_code == 202
    resolved = pagerduty.alert(KEY, dedup)
    assert resolved.status == "resolved"
    assert resolved.actions == ["trigger", "trigger", "acknowledge", "trigger", "resolve"]

    post(pagerduty, trigger())
    assert pagerduty.alert(KEY, dedup).status == "triggered"
    assert len(pagerduty.book.alerts) == 2


def test_acknowledging_an_alert_never_triggered_or_on_another_routing_key_is_dropped(pagerduty):
    post(pagerduty, trigger())
    other = "f" * 32
    for event in ({"routing_key": KEY, "dedup_key": "never-triggered",
                   "event_action": "acknowledge"},
                  {"routing_key": other, "dedup_key": "a1b2c3d4e5f60718",
                   "event_action": "resolve"}):
        assert post(pagerduty, event).status_code == 202
    assert len(pagerduty.book.dropped) == 2
    assert pagerduty.alert(KEY, "a1b2c3d4e5f60718").status == "triggered"


def test_scripted_answers_come_first_and_are_not_ingested(pagerduty):
    pagerduty.script(Reply(429, body=""), Reply(503, body="unavailable"))

    answers = [post(pagerduty, trigger()).status_code for _ in range(3)]

    assert answers == [429, 503, 202]
    assert len(pagerduty.events) == 1
    assert [p.answered for p in pagerduty.posts] == [429, 503, 202]


def test_another_path_is_not_found(pagerduty):
    url = pagerduty.url.replace("/v2/enqueue", "/v2/change/enqueue")
    assert httpx.post(url, json=trigger(), timeout=5).status_code == 404
