"""Routes of usage reporting to Stripe: the admin ones, and the endpoint for Stripe's thin
events (its signature is the credential)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from billing_core.http import error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, ORG_ID_PATTERN, ServicesDep
from billing_engine.stripe.meters.schemas import FlushOut, PendingOut, RequeuedOut, ThinEventOut
from billing_engine.stripe.webhooks.signature import SIGNATURE_HEADER

router = APIRouter(tags=["usage reporting"], responses=ADMIN_ANSWERS)
public = APIRouter(tags=["stripe"])


@public.post(
    "/webhooks/stripe/thin",
    summary="Receive a Stripe thin event (v2 event destination, STRIPE_THIN_WEBHOOK_SECRET)",
    response_model=ThinEventOut,
    responses=error_responses(400, 502, 503),
)
async def stripe_thin_event(request: Request, services: ServicesDep) -> ThinEventOut:
    """Verifies the signature, then acts on `v1.billing.meter.error_report_triggered`: the
    report is fetched from Stripe (GET /v2/core/events/{id}) and the usage records it names are
    marked rejected. Other types are acknowledged and ignored. 502 when Stripe could not be
    asked (Stripe delivers again); 503 when no secret is configured."""
    body = await request.body()
    signature = request.headers.get(SIGNATURE_HEADER)
    answer = await run_in_threadpool(services.meter_errors.receive, body, signature)
    return ThinEventOut.model_validate(answer)


@router.post(
    "/admin/meters/flush",
    summary="Send the usage outbox to Stripe now, retries in backoff included",
    response_model=FlushOut,
    responses=error_responses(401, 503),
)
def flush_meters(services: ServicesDep) -> FlushOut:
    """Queues newly closed hours, then sends every pending record (oldest first, up to
    METER_FLUSH_BATCH_SIZE) unless the circuit breaker is open. The answer says what was sent,
    what will be retried, what Stripe refused for good, and why a run stopped early."""
    return FlushOut.model_validate(services.meters.flush(force=True).as_json())


@router.get(
    "/debug/meters/pending",
    summary="Usage records waiting to be reported to Stripe",
    response_model=PendingOut,
    responses=error_responses(401, 422, 503),
)
def pending_meters(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> PendingOut:
    """The oldest waiting records with their attempts and last error, and the records Stripe
    refused for good."""
    return PendingOut.model_validate(services.meters.pending_view(limit))


@router.post(
    "/admin/meters/requeue-failed",
    summary="Send records Stripe refused or rejected again, after their cause was repaired",
    response_model=RequeuedOut,
    responses=error_responses(401, 422, 503),
)
def requeue_failed(
    services: ServicesDep,
    org_id: Annotated[str | None, Query(pattern=ORG_ID_PATTERN)] = None,
) -> RequeuedOut:
    return RequeuedOut.model_validate(services.meters.requeue_failed(org_id))
