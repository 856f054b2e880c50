"""Timing a page through a running alerts process, behind a flood of budget mail or none: what
the lanes test and `make bench` both measure (tests/alerts/test_lanes.py, bench/alerts_bench.py).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import text

from alerts.delivery.lanes import BULK, PAGE
from alerts.delivery.message import Message, message_to_json
from alerts.process import AlertsProcess
from devstack.receivers import SlackReceiver, SmtpServer


def flood(process: AlertsProcess, payload: str, *, count: int) -> None:
    """`count` customer budget emails queued at once, as a busy month's first round queues
    them (one INSERT ... SELECT: PostgreSQL's generate_series)."""
    with process.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO alert_outbox (kind, priority, receiver, channel, payload, status, "
            "attempts, next_attempt_at, created_at, updated_at) "
            "SELECT 'budget', :priority, 'customer-email', 'email', :payload, 'pending', 0, "
            ":now, :now, :now FROM generate_series(1, :count)"),
            {"priority": BULK, "payload": payload, "now": datetime.now(UTC), "count": count})
    assert process.scheduler is not None
    process.scheduler.wake("outbox")


def queue_page(process: AlertsProcess, page: Message, name: str) -> float:
    """A P0 page to on-call email and Slack, queued as a round queues it; when it was queued
    (time.monotonic(), the receivers' clock)."""
    message = replace(page, summary=name, recipients=("oncall@example.com",))
    queued = time.monotonic()
    for receiver, channel in (("oncall-email", "email"), ("oncall-slack", "slack")):
        process.store.enqueue(kind="rule", receiver=receiver, channel=channel,
                              payload=message_to_json(message), now=datetime.now(UTC),
                              priority=PAGE)
    assert process.scheduler is not None
    process.scheduler.wake("outbox")
    return queued


def time_to_page(process: AlertsProcess, smtp: SmtpServer, slack: SlackReceiver, page: Message,
                 name: str, *, timeout: float = 120) -> float:
    """Seconds from queueing a page to its arrival at both the SMTP relay and Slack."""
    queued = queue_page(process, page, name)

    def arrived() -> float | None:
        mail = [m.received_at for m in smtp.messages if name in m.subject]
        posts = [p.received_at for p in slack.posts if name.encode() in p.body]
        return max(mail[0], posts[0]) if mail and posts else None

    deadline = time.monotonic() + timeout
    while (at := arrived()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"page {name!r} not delivered within {timeout:.0f} s")
        time.sleep(0.02)
    return at - queued
