"""Slack channel against a real local HTTP server playing the incoming webhook."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.delivery.slack import SlackChannel, build_payload, parse_retry_after
from devstack.receivers import Reply, SlackReceiver, closed_port
from tests.alerts.messages import budget_message, rule_message

RUNBOOK = "https://console.example.com/runbooks?runbook=slo&section=billingavailabilityfastburn"
DASHBOARD = "https://grafana.example.com/d/billing-overview"
CONSOLE = "https://console.example.com/alerts?fingerprint=fp-billingavailabilityfastburn"


def blocks_of(payload: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [block for block in payload["blocks"] if block["type"] == kind]


def field_texts(payload: dict[str, Any]) -> list[str]:
    return [f["text"] for block in payload["blocks"] for f in block.get("fields", [])]


def buttons(payload: dict[str, Any]) -> list[tuple[str, str]]:
    [actions] = blocks_of(payload, "actions")
    return [(b["text"]["text"], b["url"]) for b in actions["elements"]]


# ---------------------------------------------------------------------------- what Slack gets


def test_a_page_posts_block_kit_with_severity_value_and_buttons(
    slack_receiver: SlackReceiver,
) -> None:
    result = SlackChannel(slack_receiver.url).send(rule_message())

    assert result.ok, result
    [post] = slack_receiver.wait_for_posts(1)
    assert post.path == SlackReceiver.webhook_path
    assert post.headers["content-type"] == "application/json"
    payload = post.json
    assert payload["text"] == (
        "[P1] FIRING BillingAvailabilityFastBurn: "
        "Billing engine is burning its availability error budget fast"
    )
    assert [b["type"] for b in payload["blocks"]] == [
        "header",
        "section",
        "section",
        "actions",
        "context",
    ]
    header = payload["blocks"][0]["text"]
    assert header == {
        "type": "plain_text",
        "text": "\U0001f534 P1 FIRING: BillingAvailabilityFastBurn",
        "emoji": True,
    }
    summary = payload["blocks"][1]["text"]
    assert summary["type"] == "mrkdwn"
    assert summary["text"].startswith(
        "*Billing engine is burning its availability error budget fast*\n"
    )
    assert "spending its error budget at 20.04x" in summary["text"]
    fields = field_texts(payload)
    assert fields[:3] == ["*Severity*\nP1", "*Since*\n2026-11-03 14:05:00 UTC", "*Value*\n20.04"]
    assert "*slo*\navailability" in fields and "*service*\nbilling-engine" in fields
    assert buttons(payload) == [
        ("Runbook", RUNBOOK),
        ("Dashboard", DASHBOARD),
        ("Alert in console", CONSOLE),
    ]
    [actions] = blocks_of(payload, "actions")
    assert actions["elements"][0]["style"] == "primary"
    assert len({b["action_id"] for b in actions["elements"]}) == 3


def test_a_resolved_alert_is_marked_resolved(slack_receiver: SlackReceiver) -> None:
    firing = rule_message("BillingEngineDown", value=0)
    resolved = replace(firing, state="resolved", ends_at=firing.starts_at + timedelta(minutes=3))

    assert SlackChannel(slack_receiver.url).send(resolved).ok

    payload = slack_receiver.wait_for_posts(1)[0].json
    assert payload["text"] == "[RESOLVED] BillingEngineDown: Billing engine is down"
    assert payload["blocks"][0]["text"]["text"] == "\u2705 Resolved: BillingEngineDown"
    fields = field_texts(payload)
    assert "*Resolved*\n2026-11-03 14:08:00 UTC" in fields
    assert "*Fired for*\n3m 00s" in fields
    runbook = (
        "https://console.example.com/runbooks?runbook=billing-engine&section=billingenginedown"
    )
    assert ("Runbook", runbook) in buttons(payload)
    assert all("style" not in b for b in blocks_of(payload, "actions")[0]["elements"])


def test_the_budget_message_is_one_line_for_support(slack_receiver: SlackReceiver) -> None:
    assert SlackChannel(slack_receiver.url).send(budget_message(90)).ok

    payload = slack_receiver.wait_for_posts(1)[0].json
    line = (
        "Budget: Acme Robotics (org_acme) crossed 90 % of included hours for 2026-11: "
        "91.5 h of 100 h used (91.5 %), plan base_usage"
    )
    assert payload["text"] == line
    assert payload["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"\U0001f4b0 {line}"}}
    ]
    assert "billing@acme.example" not in str(payload)


def test_a_test_message_says_it_is_a_test(slack_receiver: SlackReceiver) -> None:
    message = replace(rule_message(), kind="test", summary="Checking Slack", description="")

    assert SlackChannel(slack_receiver.url).send(message).ok

    payload = slack_receiver.wait_for_posts(1)[0].json
    assert payload["text"] == "Test message from the alerts process: Checking Slack"
    assert "Test message" in payload["blocks"][0]["text"]["text"]


def test_a_summary_cannot_ping_the_whole_channel() -> None:
    message = rule_message(summary="<!channel> look <https://evil.example|here> & now")

    payload = build_payload(message)

    text = payload["blocks"][1]["text"]["text"]
    assert "<!channel>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; look &lt;https://evil.example|here&gt; &amp; now" in text


def test_long_texts_and_many_labels_stay_within_block_kit_limits() -> None:
    message = rule_message(description="x" * 5000)
    many = {f"label_{i:02d}": "v" * 3000 for i in range(20)}
    message = replace(message, labels={**message.labels, **many}, alertname="A" * 200)

    payload = build_payload(message)

    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    assert len(payload["blocks"][1]["text"]["text"]) <= 3000
    fields = field_texts(payload)
    assert len(fields) == 10
    assert all(len(text) <= 2000 for text in fields)


# ---------------------------------------------------------------------------- answers


def test_a_slack_429_is_retried_after_retry_after_then_500_then_ok(
    slack_receiver: SlackReceiver,
) -> None:
    slack_receiver.script(Reply(429, body="rate_limited", retry_after="7"), Reply(500, body="boom"))
    channel = SlackChannel(slack_receiver.url)

    limited = channel.send(rule_message())
    failed = channel.send(rule_message())
    sent = channel.send(rule_message())

    assert (limited.ok, limited.permanent, limited.reason) == (False, False, "rate_limited")
    assert limited.retry_after == 7.0
    assert (failed.ok, failed.permanent, failed.reason) == (False, False, "server_error")
    assert failed.retry_after is None
    assert "500" in failed.detail
    assert sent.ok
    posts = slack_receiver.wait_for_posts(3)
    assert [p.answered for p in posts] == [429, 500, 200]
    assert posts[0].body == posts[2].body  # the same message, posted again


@pytest.mark.parametrize(
    ("status", "body"), [(400, "invalid_payload"), (403, "action_prohibited"), (404, "no_service")]
)
def test_other_4xx_answers_are_permanent(
    slack_receiver: SlackReceiver, status: int, body: str
) -> None:
    slack_receiver.script(Reply(status, body=body))
    channel = SlackChannel(slack_receiver.url)

    result = channel.send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert body in result.detail
    assert slack_receiver.url not in result.detail  # the webhook URL is a secret


def test_a_slow_slack_times_out(slack_receiver: SlackReceiver) -> None:
    slack_receiver.script(Reply(200, delay=1.0))

    result = SlackChannel(slack_receiver.url, timeout_seconds=0.2).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, False, "timeout")


def test_a_refused_connection_is_retried() -> None:
    url = f"http://127.0.0.1:{closed_port()}/services/T/B/secret-token"

    result = SlackChannel(url, timeout_seconds=2).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, False, "connection")
    assert "secret-token" not in result.detail


def test_without_a_webhook_nothing_is_posted() -> None:
    result = SlackChannel("").send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")


def test_reasons_are_the_bounded_metric_labels(slack_receiver: SlackReceiver) -> None:
    slack_receiver.script(Reply(429), Reply(503), Reply(410), Reply(200, delay=2))
    # A generous timeout for the answers, a short one only for the reply that comes too late:
    # on a busy machine even a prompt answer can take longer than the short one.
    patient = SlackChannel(slack_receiver.url, timeout_seconds=10)
    results = [patient.send(rule_message()) for _ in range(3)]
    results.append(SlackChannel(slack_receiver.url, timeout_seconds=0.2).send(rule_message()))
    results.append(SlackChannel(f"http://127.0.0.1:{closed_port()}/x").send(rule_message()))

    assert [r.reason for r in results] == [
        "rate_limited",
        "server_error",
        "rejected",
        "timeout",
        "connection",
    ]
    assert results[0].retry_after is None  # no Retry-After header: the worker's own backoff


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Tue, 03 Nov 2026 14:00:45 GMT", now=now) == 45.0
    assert parse_retry_after("Tue, 03 Nov 2026 13:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
