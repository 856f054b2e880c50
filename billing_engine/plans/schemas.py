"""A plan and the catalogue, as the API shows them."""

from __future__ import annotations

from pydantic import Field

from billing_core.http import ResponseModel
from billing_core.plans import Plan, PlanCatalog


class LimitsOut(ResponseModel):
    """What the throttler enforces; null means unlimited."""

    max_concurrent_instances: int | None
    continuous_run_hours: int | None
    daily_cap_hours: int | None
    idle_pause_minutes: int | None


class PlanOut(ResponseModel):
    code: str
    name: str
    base_fee_cents: int
    included_hours: int
    overage_cents_per_hour: int
    overage_allowed: bool
    limits: LimitsOut


class CatalogOut(ResponseModel):
    version: int = Field(description="The plans file's version")
    default_plan: str
    plans: list[PlanOut]


def plan_out(plan: Plan) -> PlanOut:
    limits = plan.limits
    return PlanOut(
        code=plan.code,
        name=plan.name,
        base_fee_cents=plan.base_fee_cents,
        included_hours=plan.included_hours,
        overage_cents_per_hour=plan.overage_cents_per_hour,
        overage_allowed=plan.overage_allowed,
        limits=LimitsOut(
            max_concurrent_instances=limits.max_concurrent_instances,
            continuous_run_hours=limits.continuous_run_hours,
            daily_cap_hours=limits.daily_cap_hours,
            idle_pause_minutes=limits.idle_pause_minutes,
        ),
    )


def catalog_out(catalog: PlanCatalog) -> CatalogOut:
    return CatalogOut(
        version=catalog.version,
        default_plan=catalog.default_plan,
        plans=[plan_out(p) for p in catalog.plans.values()],
    )
