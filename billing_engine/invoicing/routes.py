"""Routes of invoices and credits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from billing_core.http import StorableText, error_responses
from billing_core.periods import period_from_field
from billing_engine.api.deps import (
    ADMIN_ANSWERS,
    OrgIdPath,
    OrgIdQuery,
    PeriodQuery,
    ServicesDep,
)
from billing_engine.audit.keys import STATE_ACTOR
from billing_engine.invoicing.schemas import (
    CreditForOrg,
    CreditGrant,
    CreditOut,
    CreditsOut,
    InvoicesOut,
    PeriodCloseOut,
    credit_out,
    credits_out,
    invoices_out,
    period_close_out,
)
from billing_engine.wiring import Services

IdempotencyKey = Annotated[
    StorableText | None,
    Header(
        max_length=128, description="Optional: a retry with the same key returns the first credit"
    ),
]

public = APIRouter(tags=["invoices"])
admin = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)


@public.get(
    "/v1/invoices",
    summary="An org's invoices, newest period first",
    response_model=InvoicesOut,
    responses=error_responses(404, 422, 503),
)
def list_invoices(
    services: ServicesDep,
    org_id: OrgIdQuery,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")] = None,
    limit: Annotated[int, Query(ge=1, le=120)] = 24,
) -> InvoicesOut:
    found = services.invoicing.list_invoices(org_id, period_key=period, limit=limit)
    stripe_found = services.invoicing.stripe_invoices(org_id, limit=limit)
    if period is not None:
        stripe_found = [s for s in stripe_found if s.period == period]
    return invoices_out(org_id, found, stripe_found)


@public.get(
    "/v1/credits",
    summary="An org's credits and the balance left on them",
    response_model=CreditsOut,
    responses=error_responses(404, 422, 503),
)
def list_credits(services: ServicesDep, org_id: OrgIdQuery) -> CreditsOut:
    return credits_out(org_id, services.invoicing.list_credits(org_id))


@admin.post(
    "/admin/invoices/close",
    summary="Close a billing period: write every org's invoice for it (safe to repeat)",
    response_model=PeriodCloseOut,
    responses=error_responses(401, 422, 503),
)
async def close_period(services: ServicesDep, period: PeriodQuery) -> PeriodCloseOut:
    parsed = period_from_field(period)
    return period_close_out(await run_in_threadpool(services.invoicing.close_period, parsed))


def _grant(
    request: Request,
    response: Response,
    services: Services,
    org_id: str,
    body: CreditForOrg,
    key: str | None,
) -> CreditOut:
    granted_by = str(getattr(request.state, STATE_ACTOR, None) or "unknown")
    credit, created = services.invoicing.grant_credit(
        org_id=org_id,
        amount_cents=body.amount_cents,
        reason=body.reason,
        granted_by=granted_by,
        idempotency_key=key,
    )
    response.status_code = 201 if created else 200
    return credit_out(credit)


CREDIT_ANSWERS = {
    201: {"model": CreditOut, "description": "The credit was granted"},
    **error_responses(401, 404, 409, 422, 503),
}


@admin.post(
    "/admin/credits",
    summary="Grant an org a credit for its next invoice",
    response_model=CreditOut,
    responses=CREDIT_ANSWERS,
)
def grant_credit(
    request: Request,
    response: Response,
    body: CreditGrant,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> CreditOut:
    """201 with the credit; 200 with the first credit when an `Idempotency-Key` is reused."""
    return _grant(request, response, services, body.org_id, body, idempotency_key)


@admin.post(
    "/admin/credits/{org_id}",
    summary="Grant an org a credit (org in the path)",
    response_model=CreditOut,
    responses=CREDIT_ANSWERS,
)
def grant_credit_for_org(
    request: Request,
    response: Response,
    org_id: OrgIdPath,
    body: CreditForOrg,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> CreditOut:
    return _grant(request, response, services, org_id, body, idempotency_key)
