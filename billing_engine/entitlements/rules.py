"""Entitlements: what an org may do now, from its plan and the state of its subscription."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from billing_core.plans import Plan, PlanLimits


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    NONE = "none"


# Statuses that no longer pay for the plan: the org keeps running on the free plan's limits.
LAPSED = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.NONE})


@dataclass(frozen=True)
class Entitlements:
    org_id: str
    plan: str  # the plan the org is on
    effective_plan: str  # the plan whose limits apply (free when the subscription lapsed)
    subscription_status: SubscriptionStatus
    included_hours: int
    overage_allowed: bool
    limits: PlanLimits

    def as_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "plan": self.plan,
            "effective_plan": self.effective_plan,
            "subscription_status": self.subscription_status.value,
            "included_hours": self.included_hours,
            "features": {"overage_allowed": self.overage_allowed},
            "limits": {
                "max_concurrent_instances": self.limits.max_concurrent_instances,
                "continuous_run_hours": self.limits.continuous_run_hours,
                "daily_cap_hours": self.limits.daily_cap_hours,
                "idle_pause_minutes": self.limits.idle_pause_minutes,
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Entitlements:
        limits = raw["limits"]
        return cls(
            org_id=raw["org_id"],
            plan=raw["plan"],
            effective_plan=raw["effective_plan"],
            subscription_status=SubscriptionStatus(raw["subscription_status"]),
            included_hours=int(raw["included_hours"]),
            overage_allowed=bool(raw["features"]["overage_allowed"]),
            limits=PlanLimits(
                max_concurrent_instances=limits["max_concurrent_instances"],
                continuous_run_hours=limits["continuous_run_hours"],
                daily_cap_hours=limits["daily_cap_hours"],
                idle_pause_minutes=limits["idle_pause_minutes"],
            ),
        )


def compute_entitlements(
    *, org_id: str, plan: Plan, free_plan: Plan, status: SubscriptionStatus
) -> Entitlements:
    """Lapsed subscriptions fall back to the free plan; past-due keeps the plan's limits but
    stops overage, so an unpaid bill cannot keep growing."""
    effective = free_plan if status in LAPSED else plan
    overage = effective.overage_allowed and status is not SubscriptionStatus.PAST_DUE
    return Entitlements(
        org_id=org_id,
        plan=plan.code,
        effective_plan=effective.code,
        subscription_status=status,
        included_hours=effective.included_hours,
        overage_allowed=overage,
        limits=effective.limits,
    )
