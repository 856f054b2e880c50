"""Routes of invoices, credits and the admin audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from billing_engine.api.errors import ApiError
from billing_engine.api.routes import OrgIdPath, require_admin
from billing_engine.audit.log import STATE_ACTOR, AuditLog
from billing_engine.invoicing.service import (
    CreditConflict,
    InvalidInvoiceRequest,
    InvoiceService,
    parse_period,
)
from billing_engine.usage.schemas import ORG_ID_PATTERN, OrgId

# A guard against a slipped digit; larger corrections go through finance and Stripe.
MAX_CREDIT_CENTS = 10_000_000
PERIOD_PATTERN = r"^\d{4}-\d{2}$"

Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_CREDIT_CENTS, description="Cents, > 0")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class CreditForOrg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: Amount
    reason: Reason


class CreditGrant(CreditForOrg):
    org_id: OrgId


def get_invoices(request: Request) -> InvoiceService:
    invoices: InvoiceService = request.app.state.invoices
    return invoices


def get_audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


Invoices = Annotated[InvoiceService, Depends(get_invoices)]
Audit = Annotated[AuditLog, Depends(get_audit)]
OrgIdQuery = Annotated[str, Query(pattern=ORG_ID_PATTERN, description="Org (customer) id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=128,
        description="Optional: a retry with the same key returns the first credit",
    ),
]

invoices_public = APIRouter(tags=["invoices"])
invoices_admin = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


def _invalid(exc: InvalidInvoiceRequest) -> ApiError:
    if isinstance(exc, CreditConflict):
        return ApiError(409, "conflict", field=exc.field, reason=exc.reason)
    return ApiError(422, "invalid_request", field=exc.field, reason=exc.reason)


@invoices_public.get("/v1/invoices", summary="An org's invoices, newest period first")
def list_invoices(
    invoices: Invoices,
    org_id: OrgIdQuery,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")] = None,
    limit: Annotated[int, Query(ge=1, le=120)] = 24,
) -> dict[str, Any]:
    try:
        return invoices.list_invoices(org_id, period_key=period, limit=limit)
    except InvalidInvoiceRequest as exc:
        raise _invalid(exc) from None


@invoices_public.get("/v1/credits", summary="An org's credits and the balance left on them")
def list_credits(invoices: Invoices, org_id: OrgIdQuery) -> dict[str, Any]:
    return invoices.list_credits(org_id)


@invoices_admin.post(
    "/admin/invoices/close",
    summary="Close a billing period: write every org's invoice for it (safe to repeat)",
)
async def close_period(
    invoices: Invoices,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")],
) -> dict[str, Any]:
    try:
        parsed = parse_period(period)
        return await run_in_threadpool(invoices.close_period, parsed)
    except InvalidInvoiceRequest as exc:
        raise _invalid(exc) from None


def _grant(
    request: Request, invoices: InvoiceService, org_id: str, body: CreditForOrg, key: str | None
) -> JSONResponse:
    granted_by = str(getattr(request.state, STATE_ACTOR, None) or "unknown")
    try:
        credit, created = invoices.grant_credit(
            org_id=org_id,
            amount_cents=body.amount_cents,
            reason=body.reason,
            granted_by=granted_by,
            idempotency_key=key,
        )
    except InvalidInvoiceRequest as exc:
        raise _invalid(exc) from None
    return JSONResponse(status_code=201 if created else 200, content=credit)


@invoices_admin.post("/admin/credits", summary="Grant an org a credit for its next invoice")
def grant_credit(
    request: Request, body: CreditGrant, invoices: Invoices, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """201 with the credit; 200 with the first credit when an `Idempotency-Key` is reused."""
    return _grant(request, invoices, body.org_id, body, idempotency_key)


@invoices_admin.post(
    "/admin/credits/{org_id}", summary="Grant an org a credit (org in the path)"
)
def grant_credit_for_org(
    request: Request,
    org_id: OrgIdPath,
    body: CreditForOrg,
    invoices: Invoices,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return _grant(request, invoices, org_id, body, idempotency_key)


@invoices_admin.get(
    "/admin/audit", summary="Admin actions, newest first: who (key name), what, when, outcome"
)
def read_audit(
    audit: Audit,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    org_id: Annotated[str | None, Query(pattern=ORG_ID_PATTERN)] = None,
    actor: Annotated[str | None, Query(pattern=r"^[a-z0-9_-]{1,64}$")] = None,
) -> list[dict[str, Any]]:
    return audit.recent(limit=limit, org_id=org_id, actor=actor)
