"""The outbox worker against a real SMTP server and a real Slack stand-in: sent once, retried
with backoff, Retry-After honoured, permanent failures recorded and counted.

Time is the injected clock: a test moves it past a backoff or a Retry-After and drains again,
so nothing here sleeps or depends on how fast the machine is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alerts.delivery.email import EmailChannel, SmtpConfig
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import delivery_test_message, message_to_json
from alerts.delivery.outbox import OutboxWorker, RetryPolicy
from alerts.delivery.slack import SlackChannel
from alerts.observability.metrics import AlertsMetrics
from alerts.store.repository import AlertStore
from devstack.receivers import Reply, SlackReceiver, SmtpServer, closed_port
from tests.alerts.core import *  # noqa: F403
from tests.support.clock import FrozenClock

FAST = RetryPolicy(backoff=timedelta(seconds=0.2), backoff_max=timedelta(seconds=1),
                   max_attempts=4, lease=timedelta(seconds=30))


def queue(store: AlertStore, clock: FrozenClock, receiver: str, channel: str, *,
          recipients=("oncall@example.com",)) -> int:
    now = clock()
    message = delivery_test_message(
        channel=channel, recipients=recipients if channel == "email" else (),
        requested_by="test", now=now, links=LinkSettings())
    return store.enqueue(kind="test", receiver=receiver, channel=channel,
                         payload=message_to_json(message), now=now)


def worker_for(store: AlertStore, metrics: AlertsMetrics, clock: FrozenClock, *,
               smtp: SmtpServer | None = None, slack: SlackReceiver | None = None,
               policy: RetryPolicy = FAST) -> OutboxWorker:
    channels = {}
    if smtp is not None:
        channels["oncall-email"] = EmailChannel(SmtpConfig(host=smtp.host, port=smtp.port))
    if slack is not None:
        channels["oncall-slack"] = SlackChannel(slack.url, timeout_seconds=2)
    return OutboxWorker(store=store, resolve=channels.get, metrics=metrics, clock=clock,
                        policy=policy)


def sample(metrics: AlertsMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def postgres_store(alerts_pg_url) -> Iterator[AlertStore]:
    from alerts.store.database import create_alerts_engine

    engine = create_alerts_engine(alerts_pg_url)
    yield AlertStore(engine)
    engine.dispose()


def test_an_email_is_sent_once_and_marked_sent(store, alerts_metrics, alerts_clock,
                                               smtp_server):
    item = queue(store, alerts_clock, "oncall-email", "email")
    worker = worker_for(store, alerts_metrics, alerts_clock, smtp=smtp_server)
    report = worker.drain()
    alerts_clock.advance(hours=1)
    worker.drain()
    assert report.sent == 1
    # The SMTP server has recorded a mail before it answers the DATA command: a second send
    # would be in the list by the time drain() returns.
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == ("oncall@example.com",) and "[TEST]" in mail.subject
    assert len(smtp_server.messages) == 1
    row = store.outbox_item(item)
    assert row is not None and row["status"] == "sent" and row["attempts"] == 1
    assert sample(alerts_metrics, "alert_notifications_sent_total", channel="email") == 1
    assert sample(alerts_metrics, "alert_outbox_depth") == 0


def test_a_slack_429_is_retried_only_after_retry_after(postgres_store, alerts_metrics,
                                                       alerts_clock):
    with SlackReceiver(Reply(429, body="rate_limited", retry_after="1")) as slack:
        item = queue(postgres_store, alerts_clock, "oncall-slack", "slack")
        worker = worker_for(postgres_store, alerts_metrics, alerts_clock, slack=slack)
        worker.drain()
        alerts_clock.advance(seconds=0.9)
        worker.drain()
        assert [post.answered for post in slack.posts] == [429]  # not before Retry-After
        alerts_clock.advance(seconds=0.1)
        worker.drain()
        assert [post.answered for post in slack.posts] == [429, 200]
        assert postgres_store.outbox_item(item)["status"] == "sent"  # type: ignore[index]
        assert sample(alerts_metrics, "alert_notifications_failed_total", channel="slack",
                      reason="rate_limited") == 1


def test_a_429_holds_back_the_other_messages_for_that_receiver_too(store, alerts_metrics,
                                                                   alerts_clock):
    with SlackReceiver(Reply(429, retry_after="1")) as slack:
        queue(store, alerts_clock, "oncall-slack", "slack")
        queue(store, alerts_clock, "oncall-slack", "slack")
        worker = worker_for(store, alerts_metrics, alerts_clock, slack=slack)
        report = worker.drain()
        assert (report.retried, report.deferred, len(slack.posts)) == (1, 1, 1)
        alerts_clock.advance(seconds=0.5)
        worker.drain()
        assert len(slack.posts) == 1  # the other message waits for the receiver's Retry-After
        alerts_clock.advance(seconds=0.5)
        worker.drain()
        assert len(slack.posts) == 3
        assert store.outbox_stats(now=alerts_clock())[0] == 0


def test_server_errors_are_retried_with_growing_backoff(store, alerts_metrics, alerts_clock):
    with SlackReceiver(Reply(500), Reply(500)) as slack:
        item = queue(store, alerts_clock, "oncall-slack", "slack")
        worker = worker_for(store, alerts_metrics, alerts_clock, slack=slack)
        posts_after = []
        # 0.2 s after the first 500, then doubled: 0.4 s after the second.
        for step in (0, 0.1, 0.1, 0.3, 0.1):
            alerts_clock.advance(seconds=step)
            worker.drain()
            posts_after.append(len(slack.posts))
        assert posts_after == [1, 1, 2, 2, 3]
        row = store.outbox_item(item)
        assert row is not None and row["status"] == "sent" and row["attempts"] == 3
        assert sample(alerts_metrics, "alert_notifications_failed_total", channel="slack",
                      reason="server_error") == 2


def test_a_permanent_refusal_is_recorded_counted_and_not_retried(store, alerts_metrics,
                                                                 alerts_clock):
    with SlackReceiver(Reply(404, body="no_service")) as slack:
        item = queue(store, alerts_clock, "oncall-slack", "slack")
        worker = worker_for(store, alerts_metrics, alerts_clock, slack=slack)
        report = worker.drain()
        alerts_clock.advance(hours=1)
        worker.drain()
        assert report.failed == 1 and len(slack.posts) == 1
        row = store.outbox_item(item)
        assert row is not None and row["status"] == "failed"
        assert row["last_reason"] == "rejected" and "no_service" in row["last_detail"]
        assert slack.webhook_path not in row["last_detail"]  # the webhook is a secret
        assert sample(alerts_metrics, "alert_notifications_failed_total", channel="slack",
                      reason="rejected") == 1


def test_a_message_that_keeps_failing_gives_up_after_max_attempts(store, alerts_metrics,
                                                                  alerts_clock):
    smtp = SmtpConfig(host="127.0.0.1", port=closed_port(), timeout_seconds=1)
    worker = OutboxWorker(store=store, resolve={"oncall-email": EmailChannel(smtp)}.get,
                          metrics=alerts_metrics, clock=alerts_clock, policy=FAST)
    item = queue(store, alerts_clock, "oncall-email", "email")
    for _ in range(FAST.max_attempts + 2):  # more rounds than attempts, each past the backoff
        worker.drain()
        alerts_clock.advance(seconds=FAST.backoff_max.total_seconds())
    row = store.outbox_item(item)
    assert row is not None and row["status"] == "failed"
    assert row["attempts"] == FAST.max_attempts
    assert row["last_reason"] == "connection"
    assert sample(alerts_metrics, "alert_notifications_failed_total", channel="email",
                  reason="connection") == FAST.max_attempts


def test_a_message_for_a_receiver_that_is_no_longer_configured_fails_visibly(store,
                                                                          alerts_metrics,
                                                                          alerts_clock):
    item = queue(store, alerts_clock, "gone-slack", "slack")
    report = worker_for(store, alerts_metrics, alerts_clock).drain()
    assert report.failed == 1
    row = store.outbox_item(item)
    assert row is not None and row["status"] == "failed"
    assert "not configured" in row["last_detail"]


def test_backoff_doubles_up_to_its_ceiling():
    policy = RetryPolicy(backoff=timedelta(seconds=5), backoff_max=timedelta(minutes=15))
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4, 9, 30)] == [
        5, 10, 20, 40, 900, 900]


def test_outbox_gauges_report_depth_and_oldest_age(store, alerts_metrics):
    frozen = datetime(2030, 1, 1, tzinfo=UTC)
    store.enqueue(kind="test", receiver="r", channel="slack", payload="{}",
                  now=frozen - timedelta(seconds=42))
    worker = OutboxWorker(store=store, resolve=lambda _: None, metrics=alerts_metrics,
                          clock=lambda: frozen)
    worker.refresh_gauges()
    assert sample(alerts_metrics, "alert_outbox_depth") == 1
    assert sample(alerts_metrics, "alert_outbox_oldest_age_seconds") == 42
