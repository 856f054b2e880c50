"""Routes: the Stripe webhook endpoint, and the inbox for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from billing_core.errors import NotFound
from billing_core.http import error_body, error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, ServicesDep
from billing_engine.stripe.webhooks.schemas import (
    DeliveryFailedOut,
    DeliveryOut,
    FailingEventsOut,
    StoredEventOut,
)
from billing_engine.stripe.webhooks.service import Delivery
from billing_engine.stripe.webhooks.signature import SIGNATURE_HEADER

EVENT_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,255}$"
EventIdPath = Annotated[str, Path(pattern=EVENT_ID_PATTERN, description="Stripe event id")]

public = APIRouter(tags=["stripe"])
admin = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)


@public.post(
    "/webhooks/stripe",
    summary="Receive a Stripe event (verified with STRIPE_WEBHOOK_SECRET)",
    response_model=DeliveryOut,
    response_model_exclude_none=True,
    responses={
        202: {"model": DeliveryOut, "description": "Stored; its org is not known yet"},
        500: {
            "model": DeliveryFailedOut,
            "description": "Stored; the handler failed; Stripe retries",
        },
        **error_responses(400, 503),
    },
)
async def stripe_webhook(request: Request, services: ServicesDep) -> JSONResponse:
    """200: handled, ignored (a type we do not act on) or a duplicate. 202: stored, but the org
    it belongs to is not known yet; it applies when the org is linked or on replay. 500: stored,
    the handler failed; Stripe retries. 503: the database failed, or Stripe's API did while the
    invoice's payment was fetched; Stripe retries."""
    body = await request.body()
    signature = request.headers.get(SIGNATURE_HEADER)
    delivery = await run_in_threadpool(services.webhooks.receive, body, signature)
    if delivery.http_status == 500:
        return _failed(delivery, code="handler_failed", status=500)
    if delivery.http_status == 503:
        return _failed(delivery, code="stripe_unavailable", status=503)
    return JSONResponse(status_code=delivery.http_status, content=delivery.as_json())


def _failed(delivery: Delivery, *, code: str, status: int) -> JSONResponse:
    """The error shape, naming the field at fault, with the delivery as it ended."""
    field = delivery.error_field or "event_id"
    reason = delivery.error or "failed"
    fields = [{"field": field, "reason": reason}]
    return JSONResponse(
        status_code=status,
        content={**error_body(code, f"{field}: {reason}", fields), "event": delivery.as_json()},
    )


@admin.get(
    "/debug/webhooks/failing",
    summary="Stored Stripe events that keep failing",
    response_model=FailingEventsOut,
    responses=error_responses(401, 422, 503),
)
def failing_webhooks(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> FailingEventsOut:
    return FailingEventsOut.model_validate(services.webhooks.failing(limit=limit))


@admin.get(
    "/admin/webhooks/{event_id}",
    summary="One stored Stripe event and its state",
    response_model=StoredEventOut,
    responses=error_responses(401, 404, 422, 503),
)
def get_webhook_event(event_id: EventIdPath, services: ServicesDep) -> StoredEventOut:
    stored = services.webhooks.store.get_event(event_id)
    if stored is None:
        raise NotFound("event_id", f"no stored event {event_id!r}")
    return StoredEventOut.model_validate(stored.as_json())


@admin.post(
    "/admin/webhooks/{event_id}/replay",
    summary="Handle a stored Stripe event that is failing or waiting, now",
    response_model=DeliveryOut,
    response_model_exclude_none=True,
    responses={
        409: {
            "model": DeliveryFailedOut,
            "description": "Already done, or still waits for its org",
        },
        500: {"model": DeliveryFailedOut, "description": "The handler failed again"},
        **error_responses(401, 404, 422, 503),
    },
)
def replay_webhook(event_id: EventIdPath, services: ServicesDep) -> Any:
    """200 when the event took effect now; 409 when it was already done, or still waits for its
    org; 500 when the handler failed again; 503 when the database or Stripe's API is
    unavailable."""
    delivery = services.webhooks.replay(event_id)
    if delivery.http_status == 200:
        return JSONResponse(status_code=200, content=delivery.as_json())
    status = 409 if delivery.http_status == 202 else delivery.http_status
    return _failed(delivery, code="replay_failed", status=status)
