"""Who is on call, over HTTP (viewer)."""

from __future__ import annotations

from fastapi import APIRouter

from alerts.api.deps import OnCall
from alerts.oncall.schemas import OnCallOut
from billing_core.http import error_responses

router = APIRouter(tags=["on call"])


@router.get("/v1/oncall", response_model=OnCallOut, responses=error_responses(503))
def who_is_on_call(oncall: OnCall) -> OnCallOut:
    """Each rotation's holder now and next, and each severity's response time, repeat interval
    and escalation steps."""
    return oncall.oncall()
