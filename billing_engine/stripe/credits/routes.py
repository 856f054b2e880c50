"""Credits in Stripe: send again a credit Stripe refused, once its cause is fixed (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from billing_core.http import ResponseModel, error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, ServicesDep

router = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)


class StripeRetryOut(ResponseModel):
    credit_id: int
    stripe_status: str = Field(description="sent, pending (to be retried) or failed again")
    stripe_last_error: str | None


@router.post(
    "/admin/credits/{credit_id}/stripe-retry",
    summary="Send a credit Stripe refused to Stripe again",
    response_model=StripeRetryOut,
    responses=error_responses(401, 404, 409, 422, 503),
)
async def retry_credit_in_stripe(
    services: ServicesDep,
    credit_id: Annotated[int, Path(ge=1, le=2**62, description="The credit's id")],
) -> StripeRetryOut:
    """409 naming `credit_id` when the credit is not `failed` in Stripe."""
    status, error = await run_in_threadpool(services.stripe_credits.retry_failed, credit_id)
    return StripeRetryOut(credit_id=credit_id, stripe_status=status, stripe_last_error=error)
