"""GET /v1/billing: the support view of one customer's billing."""

from __future__ import annotations

from fastapi import APIRouter

from billing_core.http import error_responses
from billing_engine.api.deps import OrgIdQuery, ServicesDep
from billing_engine.billing_view.schemas import BillingCardOut, billing_card_out

router = APIRouter(tags=["billing"])


@router.get(
    "/v1/billing",
    summary="The support view of one customer's billing",
    response_model=BillingCardOut,
    responses=error_responses(404, 422, 503),
)
def get_billing(services: ServicesDep, org_id: OrgIdQuery) -> BillingCardOut:
    """Usage this period against the plan, estimated charges, budget thresholds reached, the
    Stripe subscription and the invoice as it would be if the period closed now."""
    return billing_card_out(services.billing.card(org_id))
