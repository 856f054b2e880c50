"""The contract between the outbox worker and the channels.

The worker owns retries, backoff, the notification log and metrics. A channel only tries once
and says how it went: sent, retry later (optionally after `retry_after` seconds), or give up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

Kind = Literal["rule", "budget", "test"]
State = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Message:
    """One notification to one receiver, fully rendered apart from the channel's own format.

    - kind "rule": an alerting rule from prometheus/rules (labels carry alertname, severity,
      slo, ...; annotations carry summary, description, runbook_url, dashboard_url, already
      templated and with their URL prefixes rewritten to RUNBOOK_BASE_URL / GRAFANA_URL).
    - kind "budget": an org crossed a share of its included hours. labels carry org_id,
      org_name, threshold ("50", "90", "100"), period ("2026-11"); values: used_hours,
      included_hours. Emailed to the org's billing email; support gets a Slack line.
    - kind "test": a test message sent on demand to check the configuration.
    """

    kind: Kind
    fingerprint: str
    alertname: str
    state: State
    severity: str  # P0..P3
    summary: str
    description: str
    starts_at: datetime
    value: float | None = None
    ends_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # group members when several alerts of one name are sent together (fingerprint -> labels)
    group: tuple[Mapping[str, str], ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    recipients: tuple[str, ...] = ()  # email addresses (email channel only)
    runbook_url: str = ""
    dashboard_url: str = ""
    console_url: str = ""  # the console's alert page for this alert


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    permanent: bool = False  # true: retrying cannot help (bad address, 4xx other than 429)
    retry_after: float | None = None  # seconds the receiver asked us to wait (Slack 429)
    reason: str = ""  # bounded: used as a metric label (e.g. "timeout", "http_500", "rate_limited")
    detail: str = ""  # free text for the log and the notification log; never a secret


class Channel(Protocol):
    name: str  # "email" | "slack"

    def send(self, message: Message) -> DeliveryResult: ...
