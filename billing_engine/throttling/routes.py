"""Throttling routes: explain a decision, re-check an instance, reset an org's daily counter."""

from __future__ import annotations

from fastapi import APIRouter

from billing_core.http import error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, InstanceIdPath, OrgIdPath, ServicesDep
from billing_engine.throttling.schemas import DailyResetOut, ThrottleViewOut

router = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)
ERRORS = error_responses(401, 404, 422, 503)


@router.get(
    "/debug/throttle/{instance_id}",
    summary="The throttle decision, why, since when",
    response_model=ThrottleViewOut,
    responses=ERRORS,
)
def debug_throttle(instance_id: InstanceIdPath, services: ServicesDep) -> ThrottleViewOut:
    return ThrottleViewOut.model_validate(services.throttling.throttle_view(instance_id))


@router.post(
    "/admin/throttle/{org_id}/reset-daily",
    summary="Start the org's daily throttle counter from zero (billed usage is unchanged)",
    response_model=DailyResetOut,
    responses=ERRORS,
)
def reset_daily_throttle(org_id: OrgIdPath, services: ServicesDep) -> DailyResetOut:
    return DailyResetOut.model_validate(services.throttling.reset_daily(org_id))


@router.post(
    "/admin/throttle/instances/{instance_id}/check",
    summary="Re-check an instance now and record the decision",
    response_model=ThrottleViewOut,
    responses=ERRORS,
)
def check_instance_throttle(instance_id: InstanceIdPath, services: ServicesDep) -> ThrottleViewOut:
    return ThrottleViewOut.model_validate(services.throttling.check_instance(instance_id))
