"""Budget alerts: which periods still take usage, and which thresholds an org has reached.

The thresholds are the engine's (50, 90 and 100 % of the plan's included hours), computed the
same way as `thresholds_crossed` in `GET /v1/billing`, so what support sees there and what the
customer is emailed about agree. A period keeps taking late heartbeats until its end plus the
engine's close grace; until then the alerts process keeps checking it, so usage that arrives late
and pushes an org over a threshold still alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_core.periods import BillingPeriod, period_containing
from billing_core.quota import BUDGET_THRESHOLDS, thresholds_crossed

__all__ = ["BUDGET_THRESHOLDS", "BudgetCrossing", "open_periods", "thresholds_crossed",
           "threshold_minutes"]


@dataclass(frozen=True)
class BudgetCrossing:
    org_id: str
    org_name: str
    email: str
    plan: str
    period: str  # "2026-11"
    threshold: int  # 50, 90, 100
    used_minutes: int
    included_minutes: int

    @property
    def used_hours(self) -> float:
        return round(self.used_minutes / 60, 2)

    @property
    def included_hours(self) -> float:
        return round(self.included_minutes / 60, 2)

    @property
    def percent_used(self) -> float:
        if self.included_minutes == 0:
            return 100.0
        return round(self.used_minutes * 100 / self.included_minutes, 2)


def open_periods(now: datetime, *, close_grace: timedelta) -> tuple[BillingPeriod, ...]:
    """The current period, and the previous one while it still takes late usage."""
    current = period_containing(now)
    previous = current.previous()
    if previous.is_open(now=now, grace=close_grace):
        return (current, previous)
    return (current,)


def threshold_minutes(threshold: int, included_minutes: int) -> int:
    """Used minutes from which `threshold` percent counts as reached (integers only).

    used * 100 >= threshold * included, the engine's rule; an org with no included hours
    reaches every threshold with its first minute.
    """
    if included_minutes == 0:
        return 1
    return -(-threshold * included_minutes // 100)
