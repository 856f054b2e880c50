"""GET /v1/payments: an org's payment attempts and refunds, for support."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from billing_core.http import error_responses
from billing_engine.api.deps import OrgIdQuery, ServicesDep
from billing_engine.payments.schemas import PaymentsOut

router = APIRouter(tags=["stripe"])


@router.get(
    "/v1/payments",
    summary="An org's payment attempts and refunds, newest first",
    response_model=PaymentsOut,
    responses=error_responses(404, 422, 503),
)
def get_payments(
    services: ServicesDep,
    org_id: OrgIdQuery,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PaymentsOut:
    return PaymentsOut.model_validate(services.payments.payments(org_id, limit=limit))
