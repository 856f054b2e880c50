"""The dead man's switch seen from outside: while the Watchdog alert fires, ping HEARTBEAT_URL.

The Watchdog rule (`vector(1)`) fires at every evaluation, so it proves that rules are evaluated
against a Prometheus that answers. The alerts process cannot report its own death, so once a
minute the leader POSTs (an empty body) to an external heartbeat service (healthchecks.io, Dead
Man's Snitch, Better Stack, Cronitor or a PagerDuty-style heartbeat monitor all take a bare POST
on a secret URL). When the pings stop, that service tells a person, by a path that does not go
through us. A ping is sent only when:

- this replica leads (a standby that pings would hide a dead leader);
- the last evaluation round that reached Prometheus is recent (at most `stale_after`);
- the Watchdog alert is firing in the store.

The URL usually holds its token: it is never logged (the settings list it among the secrets
every log line is scrubbed of, and the failure lines here name only the status or error kind).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from alerts.observability.metrics import AlertsMetrics
from alerts.rules.model import Alert, AlertStatus
from billing_core.clock import Clock

log = logging.getLogger("alerts.heartbeat")
WATCHDOG = "Watchdog"
DEFAULT_INTERVAL_SECONDS = 60.0


class AlertsSource(Protocol):
    def load_alerts(self) -> list[Alert]: ...


class Heartbeat:
    def __init__(self, *, url: str, store: AlertsSource, last_good_round: Callable[[],
                 datetime | None], metrics: AlertsMetrics, clock: Clock,
                 stale_after: timedelta, timeout_seconds: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.store = store
        self.last_good_round = last_good_round
        self.metrics = metrics
        self.clock = clock
        self.stale_after = stale_after
        self._client = httpx.Client(timeout=timeout_seconds, transport=transport,
                                    follow_redirects=True)
        self._why_skipped: str | None = None

    def healthy(self) -> str | None:
        """None when the pipeline is healthy enough to vouch for, else why not."""
        last = self.last_good_round()
        if last is None:
            return "no evaluation round has reached Prometheus yet"
        if self.clock() - last > self.stale_after:
            return "the last evaluation round that reached Prometheus is too old"
        if not any(alert.alertname == WATCHDOG and alert.status == AlertStatus.FIRING
                   for alert in self.store.load_alerts()):
            return "the Watchdog alert is not firing"
        return None

    def run_round(self) -> bool:
        """Ping if healthy; True when the heartbeat service took the ping."""
        reason = self.healthy()
        if reason is not None:
            self.metrics.heartbeat_pings.labels("skipped").inc()
            if reason != self._why_skipped:  # once per reason, not once a minute
                log.warning("heartbeat not sent", extra={"reason": reason})
            self._why_skipped = reason
            return False
        self._why_skipped = None
        try:
            response = self._client.post(self.url, content=b"")
        except httpx.HTTPError as error:
            self.metrics.heartbeat_pings.labels("failed").inc()
            log.warning("heartbeat ping failed", extra={"error": type(error).__name__})
            return False
        if response.status_code >= 300:
            self.metrics.heartbeat_pings.labels("failed").inc()
            log.warning("heartbeat ping refused", extra={"status": response.status_code})
            return False
        self.metrics.heartbeat_pings.labels("sent").inc()
        self.metrics.heartbeat_last_sent.set(self.clock().timestamp())
        return True

    def close(self) -> None:
        self._client.close()
