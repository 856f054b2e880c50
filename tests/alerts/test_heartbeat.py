"""The dead man's switch seen from outside: HEARTBEAT_URL is pinged while the Watchdog fires,
and never when the pipeline could not vouch for itself; its URL (a secret) is never logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from alerts.observability.heartbeat import Heartbeat
from alerts.observability.metrics import AlertsMetrics
from alerts.rules.model import Alert, AlertStatus
from alerts.settings import Settings, SettingsError
from devstack.receivers import Reply, WebhookReceiver
from tests.support.clock import FrozenClock

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
TOKEN = "hb-4f1c2d7e9a"


def watchdog(status: AlertStatus = AlertStatus.FIRING) -> Alert:
    return Alert(fingerprint="w", alertname="Watchdog", labels={"severity": "P3"},
                 annotations={}, status=status, active_at=NOW, last_evaluated_at=NOW)


class Alerts:
    def __init__(self, *alerts: Alert) -> None:
        self.alerts = list(alerts)

    def load_alerts(self) -> list[Alert]:
        return self.alerts


def heartbeat(receiver: WebhookReceiver, *, alerts: Alerts, last_round: datetime | None,
              clock: FrozenClock, metrics: AlertsMetrics) -> Heartbeat:
    return Heartbeat(url=f"{receiver.url}{TOKEN}", store=alerts,
                     last_good_round=lambda: last_round, metrics=metrics, clock=clock,
                     stale_after=timedelta(seconds=60), timeout_seconds=2)


def pings(metrics: AlertsMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("alert_heartbeat_pings_total", {"outcome": outcome})
    return value or 0.0


def test_the_heartbeat_service_is_pinged_while_the_watchdog_fires() -> None:
    metrics, clock = AlertsMetrics(), FrozenClock(NOW)
    with WebhookReceiver() as receiver:
        beat = heartbeat(receiver, alerts=Alerts(watchdog()), last_round=NOW - timedelta(seconds=5),
                         clock=clock, metrics=metrics)
        assert beat.run_round() is True
        [post] = receiver.wait_for_posts(1)
        beat.close()
    assert post.path.endswith(TOKEN) and post.body == b""
    assert pings(metrics, "sent") == 1
    assert metrics.registry.get_sample_value(
        "alert_heartbeat_last_sent_timestamp_seconds") == NOW.timestamp()


@pytest.mark.parametrize(("alerts", "last_round", "why"), [
    (Alerts(watchdog()), NOW - timedelta(minutes=5), "too old"),
    (Alerts(watchdog()), None, "no evaluation round"),
    (Alerts(watchdog(AlertStatus.RESOLVED)), NOW, "not firing"),
    (Alerts(), NOW, "not firing"),
], ids=["prometheus unreachable for 5 minutes", "before the first round", "watchdog resolved",
        "watchdog missing from the rule files"])
def test_no_ping_when_the_pipeline_cannot_vouch_for_itself(
        alerts: Alerts, last_round: datetime | None, why: str,
        caplog: pytest.LogCaptureFixture) -> None:
    metrics, clock = AlertsMetrics(), FrozenClock(NOW)
    with WebhookReceiver() as receiver, caplog.at_level(logging.WARNING):
        beat = heartbeat(receiver, alerts=alerts, last_round=last_round, clock=clock,
                         metrics=metrics)
        assert beat.run_round() is False
        assert beat.run_round() is False
        beat.close()
        assert receiver.posts == []
    assert pings(metrics, "skipped") == 2
    notes = [r for r in caplog.records if r.getMessage() == "heartbeat not sent"]
    assert len(notes) == 1 and why in notes[0].__dict__["reason"]  # once, not every minute


def test_a_refused_or_unreachable_ping_is_counted_and_its_url_never_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    metrics, clock = AlertsMetrics(), FrozenClock(NOW)
    caplog.set_level(logging.WARNING, logger="httpx")  # as the process runs it
    with WebhookReceiver(Reply(500, body="down")) as receiver, caplog.at_level(logging.DEBUG):
        beat = heartbeat(receiver, alerts=Alerts(watchdog()), last_round=NOW, clock=clock,
                         metrics=metrics)
        assert beat.run_round() is False
        beat.close()
    unreachable = Heartbeat(url=f"http://127.0.0.1:9/{TOKEN}", store=Alerts(watchdog()),
                            last_good_round=lambda: NOW, metrics=metrics, clock=clock,
                            stale_after=timedelta(seconds=60), timeout_seconds=1)
    assert unreachable.run_round() is False
    unreachable.close()
    assert pings(metrics, "failed") == 2
    assert pings(metrics, "sent") == 0
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "heartbeat ping refused" in text and "heartbeat ping failed" in text
    assert TOKEN not in text


def test_heartbeat_settings() -> None:
    settings = Settings.from_env({"HEARTBEAT_URL": f"https://hc-ping.example.com/{TOKEN}",
                                  "HEARTBEAT_INTERVAL_SECONDS": "30"})
    assert settings.heartbeat_interval_seconds == 30
    assert f"https://hc-ping.example.com/{TOKEN}" in settings.secret_values()
    assert TOKEN not in repr(settings)
    assert Settings.from_env({}).heartbeat_url is None
    with pytest.raises(SettingsError, match="HEARTBEAT_URL"):
        Settings.from_env({"HEARTBEAT_URL": "hc-ping.example.com/x"})
