"""What an incident cost, from Prometheus, for the post-mortem: requests failed and the share of
the 30-day error budget they spent; payment failures and revenue during the incident beside the
same window a week before; heartbeats refused, by reason. Each number that cannot be read says
so instead of being left out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from alerts.rules.model import Sample
from alerts.rules.prometheus import PrometheusUnavailable, QueryError

SLO_TARGET = 0.999  # the availability objective: 0.1 % of requests may fail over 30 days
JOB = 'job="billing-engine"'
Query = Callable[[str, datetime], list[Sample]]


@dataclass
class Impact:
    window_seconds: int
    requests: float | None = None
    requests_failed: float | None = None
    budget_spent: float | None = None  # a share of the 30-day error budget (0.02 = 2 %)
    payments_failed: float | None = None
    payments_failed_week_before: float | None = None
    revenue_cents: float | None = None
    revenue_cents_week_before: float | None = None
    heartbeats_refused: dict[str, float] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # what Prometheus could not answer


def measure(query: Query, *, starts: datetime, ends: datetime) -> Impact:
    window = max(60, int((ends - starts).total_seconds()))
    impact = Impact(window_seconds=window)
    span = f"{window}s"

    def scalar(name: str, expr: str) -> float | None:
        try:
            samples = query(expr, ends)
        except (PrometheusUnavailable, QueryError):
            impact.unreadable.append(name)
            return None
        return sum(s.value for s in samples) if samples else 0.0

    impact.requests = scalar("requests", f"sum(increase(http_requests_total{{{JOB}}}[{span}]))")
    impact.requests_failed = scalar(
        "requests failed", f'sum(increase(http_requests_total{{{JOB},status=~"5.."}}[{span}]))')
    month = scalar("requests over 30 days", f"sum(increase(http_requests_total{{{JOB}}}[30d]))")
    if impact.requests_failed is not None and month:
        impact.budget_spent = impact.requests_failed / (month * (1 - SLO_TARGET))
    failed = 'payments_total{outcome="failed"}'
    paid = 'payment_amount_cents_total{outcome="succeeded"}'
    impact.payments_failed = scalar("payment failures", f"sum(increase({failed}[{span}]))")
    impact.payments_failed_week_before = scalar(
        "payment failures a week before", f"sum(increase({failed}[{span}] offset 1w))")
    impact.revenue_cents = scalar("revenue", f"sum(increase({paid}[{span}]))")
    impact.revenue_cents_week_before = scalar(
        "revenue a week before", f"sum(increase({paid}[{span}] offset 1w))")
    try:
        refused = query(f"sum by (reason) (increase(heartbeats_rejected_total[{span}])) > 0",
                        ends)
    except (PrometheusUnavailable, QueryError):
        impact.unreadable.append("heartbeats refused")
    else:
        impact.heartbeats_refused = {s.labels.get("reason", "?"): s.value for s in refused}
    return impact


def window_of(declared_at: datetime, resolved_at: datetime | None, now: datetime
              ) -> tuple[datetime, datetime]:
    return declared_at, resolved_at or now

