"""Pages first: delivery lanes, their own senders, and one SMTP connection reused.

The symptom this guards: the first budget round of a busy month queued tens of thousands of
customer emails, the outbox sent them one after another, first in first out, and a page queued
after them waited about an hour for its turn.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from alerts.delivery.email import EmailChannel, SmtpConfig
from alerts.delivery.lanes import ALERT, BULK, PAGE, priority_for
from alerts.delivery.message import message_to_json
from alerts.process import AlertsProcess, build_process
from alerts.settings import Settings
from devstack.pages import flood, time_to_page
from devstack.receivers import SlackReceiver, SmtpServer
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY, NOV_18, seconds
from tests.alerts.messages import budget_message, rule_message

FLOOD = 100_000


def test_pages_escalations_and_incidents_go_first_and_budget_mail_last():
    assert priority_for("rule", {"P0"}) == priority_for("rule", {"P3", "P1"}) == PAGE
    assert priority_for("escalation", set()) == priority_for("incident", set()) == PAGE
    assert priority_for("rule", {"P2"}) == priority_for("test", set()) == ALERT
    assert priority_for("budget", {"P0"}) == BULK


def test_the_pages_lane_claims_only_pages_and_the_bulk_lane_alerts_before_budget_mail(store):
    for kind, priority in (("budget", BULK), ("rule", ALERT), ("budget", BULK), ("rule", PAGE)):
        store.enqueue(kind=kind, receiver="r", channel="email", payload="{}", now=NOV_18,
                      priority=priority)
    pages = store.claim_due(now=NOV_18, worker="pages", lease=seconds(60), limit=10,
                            priorities=(PAGE,))
    assert [(i.kind, i.priority) for i in pages] == [("rule", PAGE)]
    bulk = store.claim_due(now=NOV_18, worker="bulk", lease=seconds(60), limit=10,
                           priorities=(ALERT, BULK))
    assert [i.priority for i in bulk] == [ALERT, BULK, BULK]


def test_a_lane_sends_many_messages_over_one_smtp_connection(smtp_server):
    channel = EmailChannel(SmtpConfig(host=smtp_server.host, port=smtp_server.port),
                           keep_open=True)
    try:
        assert all(channel.send(budget_message(90)).ok for _ in range(5))
    finally:
        channel.close()
    mails = smtp_server.wait_for_messages(5)
    assert len({mail.peer for mail in mails}) == 1 and channel.connections_opened == 1


def test_a_kept_connection_the_relay_dropped_is_replaced_before_sending(monkeypatch):
    monkeypatch.setattr("alerts.delivery.email.IDLE_CHECK_SECONDS", 0.0)  # check at every reuse
    with SmtpServer() as first:
        channel = EmailChannel(SmtpConfig(host=first.host, port=first.port), keep_open=True)
        assert channel.send(budget_message(90)).ok
    # The relay restarted: the kept connection is dead, the next message goes on a new one.
    second = SmtpServer()
    second.port = first.port
    with second:
        try:
            result = channel.send(budget_message(100))
        finally:
            channel.close()
        assert result.ok, result.detail
        [mail] = second.wait_for_messages(1)
        assert mail.subject.startswith("You have used all the included hours")
    assert channel.connections_opened == 2


# -- a page behind a flood of budget mail, through the real scheduler ---------------------------


@pytest.fixture
def flood_process(alerts_pg_url) -> Iterator[tuple[AlertsProcess, SmtpServer, SlackReceiver]]:
    # A relay that takes 50 ms a message: the bulk lane sends about 20 budget emails a second.
    with SmtpServer(data_delay_seconds=0.05) as smtp, SlackReceiver() as slack:
        settings = Settings(database_url=alerts_pg_url, admin_api_key=ADMIN_KEY,
                            environment="test", smtp_host=smtp.host, smtp_port=smtp.port,
                            oncall_email="oncall@example.com", slack_webhook_url=slack.url,
                            prometheus_url="http://127.0.0.1:9", leader_retry_seconds=0.5,
                            evaluation_interval_seconds=60, budget_interval_seconds=60)
        process = build_process(settings, environ={})
        try:
            yield process, smtp, slack
        finally:
            process.close()


@pytest.mark.postgres
def test_a_p0_page_behind_100000_queued_budget_emails_arrives_as_fast_as_with_none(
        flood_process):
    process, smtp, slack = flood_process
    assert process.scheduler is not None
    process.scheduler.start()
    page = rule_message("BillingAvailabilityFastBurn")
    empty = time_to_page(process, smtp, slack, page, "page with an empty queue")

    # The first budget round of a busy month: 100,000 customer emails, queued before the page.
    flood(process, message_to_json(budget_message(90)), count=FLOOD)
    time.sleep(1)  # the bulk lane is busy with the flood
    sent_before = len(smtp.messages)
    flooded = time_to_page(process, smtp, slack, page, "page behind the flood")

    budget_sent = len(smtp.messages) - sent_before
    assert budget_sent > 0, "the bulk lane was draining the flood meanwhile"
    waiting = process.store.outbox_stats(now=datetime.now(UTC))[0]
    assert waiting > FLOOD - 2000, "the flood was still queued when the page went out"
    assert flooded <= empty + 5, f"page took {flooded:.2f} s behind the flood, {empty:.2f} s alone"
    assert process.metrics.registry.get_sample_value(
        "alert_delivery_latency_seconds_count", {"lane": "pages"}) == 4
