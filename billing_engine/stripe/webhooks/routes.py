"""Routes: the Stripe webhook endpoint, payments for support, webhook inbox admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from billing_engine.api.errors import ApiError, error_body
from billing_engine.api.routes import require_admin
from billing_engine.payments.service import PaymentsView
from billing_engine.stripe.webhooks.payloads import PayloadError
from billing_engine.stripe.webhooks.service import (
    AlreadyDone,
    Delivery,
    StripeWebhooks,
    TransientFailure,
    WebhooksNotConfigured,
)
from billing_engine.stripe.webhooks.signature import SIGNATURE_HEADER, SignatureRejected
from billing_engine.usage.schemas import ORG_ID_PATTERN

EVENT_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,255}$"
EventIdPath = Annotated[str, Path(pattern=EVENT_ID_PATTERN, description="Stripe event id")]


def get_webhooks(request: Request) -> StripeWebhooks:
    return request.app.state.stripe_webhooks


def get_payments_view(request: Request) -> PaymentsView:
    return request.app.state.payments_view


Webhooks = Annotated[StripeWebhooks, Depends(get_webhooks)]
Payments = Annotated[PaymentsView, Depends(get_payments_view)]

stripe_public = APIRouter(tags=["stripe"])
stripe_admin = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


def _transient(exc: TransientFailure) -> JSONResponse:
    message = (
        "the event is stored but could not be handled now; Stripe retries it"
        if exc.stored
        else "the database is unreachable; nothing was stored"
    )
    return JSONResponse(
        status_code=503,
        content=error_body("database_unavailable", message),
        headers={"Retry-After": "5"},
    )


@stripe_public.post(
    "/webhooks/stripe",
    summary="Receive a Stripe event (verified with STRIPE_WEBHOOK_SECRET)",
    responses={
        400: {"description": "Stripe-Signature missing, invalid or stale, or not an event"},
        503: {"description": "webhooks not configured, or the database is unavailable"},
    },
)
async def stripe_webhook(request: Request, webhooks: Webhooks) -> JSONResponse:
    """200: handled, ignored (a type we do not act on) or a duplicate. 202: stored, but the org
    it belongs to is not known yet; it applies when the org is linked or on replay. 500: stored,
    the handler failed; Stripe retries. 503: the database failed; Stripe retries."""
    body = await request.body()
    signature = request.headers.get(SIGNATURE_HEADER)
    try:
        delivery = await run_in_threadpool(webhooks.receive, body, signature)
    except WebhooksNotConfigured:
        return JSONResponse(
            status_code=503,
            content=error_body(
                "webhooks_not_configured",
                "STRIPE_WEBHOOK_SECRET is not set, so no delivery can be verified; "
                "nothing was stored",
            ),
        )
    except SignatureRejected as exc:
        raise ApiError(
            400, "invalid_signature", field=SIGNATURE_HEADER,
            reason=f"{exc.reason.value}: {exc.message}",
        ) from None
    except PayloadError as exc:
        raise ApiError(400, "invalid_event", field=exc.field, reason=exc.reason) from None
    except TransientFailure as exc:
        return _transient(exc)
    return JSONResponse(status_code=delivery.http_status, content=delivery.as_json())


@stripe_public.get("/v1/payments", summary="An org's payment attempts and refunds, newest first")
def get_payments(
    payments: Payments,
    org_id: Annotated[str, Query(pattern=ORG_ID_PATTERN)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    return payments.payments(org_id, limit=limit)


@stripe_admin.get("/debug/webhooks/failing", summary="Stored Stripe events that keep failing")
def failing_webhooks(
    webhooks: Webhooks, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    return webhooks.failing(limit=limit)


@stripe_admin.get("/admin/webhooks/{event_id}", summary="One stored Stripe event and its state")
def get_webhook_event(event_id: EventIdPath, webhooks: Webhooks) -> dict[str, Any]:
    stored = webhooks.store.get_event(event_id)
    if stored is None:
        raise ApiError(404, "not_found", field="event_id", reason=f"no stored event {event_id!r}")
    return stored.as_json()


@stripe_admin.post(
    "/admin/webhooks/{event_id}/replay",
    summary="Handle a stored Stripe event that is failing or waiting, now",
)
def replay_webhook(event_id: EventIdPath, webhooks: Webhooks) -> JSONResponse:
    """200 when the event took effect now; 409 when it was already done, or still waits for its
    org; 500 when the handler failed again; 503 when the database is unavailable."""
    try:
        delivery: Delivery = webhooks.replay(event_id)
    except AlreadyDone as exc:
        raise ApiError(
            409, "already_done", field="event_id",
            reason=f"was already {exc.event.status}; replaying it would change nothing",
        ) from None
    except TransientFailure as exc:
        return _transient(exc)
    if delivery.http_status == 200:
        return JSONResponse(status_code=200, content=delivery.as_json())
    status = 409 if delivery.http_status == 202 else delivery.http_status
    field = delivery.error_field or "event_id"
    reason = delivery.error or "failed"
    return JSONResponse(
        status_code=status,
        content={
            **error_body("replay_failed", f"{field}: {reason}", [{"field": field,
                                                                  "reason": reason}]),
            "event": delivery.as_json(),
        },
    )
