"""The values the alerts core works with: rules, query samples and alert state."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from billing_core.errors import BillingError


class RuleEvaluationError(BillingError):
    """One rule could not be evaluated this round; its alerts keep the state they had."""

    code = "rule_evaluation_error"


class AlertStatus(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule of a Prometheus rule file."""

    name: str
    expr: str
    hold: timedelta = timedelta(0)  # `for`
    keep_firing_for: timedelta = timedelta(0)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    group: str = ""
    source: str = ""  # the rule file, for messages about the rule


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: the series' labels (with __name__ if any) and value."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Alert:
    """An alert instance: one label set of one rule, with where it stands.

    `active_at` is when the condition started to hold (Prometheus' activeAt); it identifies the
    episode, so a notification of one episode is never mistaken for one of the next.
    """

    fingerprint: str
    alertname: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: AlertStatus
    active_at: datetime
    last_evaluated_at: datetime
    value: float | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_since: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def episode(self) -> int:
        """The episode's id: activeAt in milliseconds since the epoch."""
        return int(self.active_at.timestamp() * 1000)


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id for a label set (alertname included): 16 hex digits of SHA-256."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
