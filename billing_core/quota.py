"""Quota for one billing period: included, used, remaining and overage, and budget thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from billing_core.plans import Plan

BUDGET_THRESHOLDS: tuple[int, ...] = (50, 90, 100)


@dataclass(frozen=True)
class Quota:
    included_minutes: int
    used_minutes: int
    remaining_minutes: int
    overage_minutes: int
    percent_used: float
    base_fee_cents: int
    estimated_overage_cents: int
    thresholds_crossed: tuple[int, ...]

    @property
    def estimated_total_cents(self) -> int:
        return self.base_fee_cents + self.estimated_overage_cents


def overage_cents(*, overage_minutes: int, cents_per_hour: int) -> int:
    """Price overage minutes, rounding half a cent up, in integers only."""
    return (overage_minutes * cents_per_hour + 30) // 60


def thresholds_crossed(*, used_minutes: int, included_minutes: int) -> tuple[int, ...]:
    if included_minutes == 0:
        return BUDGET_THRESHOLDS if used_minutes > 0 else ()
    return tuple(t for t in BUDGET_THRESHOLDS if used_minutes * 100 >= t * included_minutes)


def compute_quota(plan: Plan, *, used_minutes: int) -> Quota:
    included = plan.included_minutes
    overage = max(0, used_minutes - included)
    if included:
        percent = round(used_minutes * 100 / included, 2)
    else:
        percent = 100.0 if used_minutes else 0.0
    return Quota(
        included_minutes=included,
        used_minutes=used_minutes,
        remaining_minutes=max(0, included - used_minutes),
        overage_minutes=overage,
        percent_used=percent,
        base_fee_cents=plan.base_fee_cents,
        estimated_overage_cents=overage_cents(
            overage_minutes=overage, cents_per_hour=plan.overage_cents_per_hour
        )
        if plan.overage_allowed
        else 0,
        thresholds_crossed=thresholds_crossed(used_minutes=used_minutes, included_minutes=included),
    )


def hours(minutes: int) -> float:
    """Minutes as hours for display, to the hundredth (money never goes through this)."""
    return round(minutes / 60, 2)
