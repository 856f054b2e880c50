"""Routes of usage reporting to Stripe and of reconciliation; all need the admin key."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from billing_engine.api.errors import ApiError
from billing_engine.api.routes import require_admin
from billing_engine.stripe.client import ProviderError
from billing_engine.stripe.meters.service import MeterReporting
from billing_engine.stripe.reconcile.service import Reconciler
from billing_engine.usage.schemas import ORG_ID_PATTERN

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


def get_meters(request: Request) -> MeterReporting:
    meters: MeterReporting = request.app.state.meters
    return meters


Meters = Annotated[MeterReporting, Depends(get_meters)]


def get_reconciler(request: Request) -> Reconciler:
    reconciler: Reconciler = request.app.state.reconciler
    return reconciler


Reconcile = Annotated[Reconciler, Depends(get_reconciler)]

meters = APIRouter(tags=["usage reporting"], dependencies=[Depends(require_admin)])


@meters.post(
    "/admin/meters/flush",
    summary="Send the usage outbox to Stripe now, retries in backoff included",
)
def flush_meters(reporting: Meters) -> dict[str, Any]:
    """Queues newly closed hours, then sends every pending record (oldest first, up to
    METER_FLUSH_BATCH_SIZE) unless the circuit breaker is open. The answer says what was sent,
    what will be retried, what Stripe refused for good, and why a run stopped early."""
    return reporting.flush(force=True).as_json()


@meters.get("/debug/meters/pending", summary="Usage records waiting to be reported to Stripe")
def pending_meters(
    reporting: Meters, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> dict[str, Any]:
    """The oldest waiting records with their attempts and last error, and the records Stripe
    refused for good."""
    return reporting.pending_view(limit)


@meters.post(
    "/admin/meters/requeue-failed",
    summary="Send records Stripe refused again, after their cause was repaired",
)
def requeue_failed(
    reporting: Meters,
    org_id: Annotated[str | None, Query(pattern=ORG_ID_PATTERN)] = None,
) -> dict[str, Any]:
    return reporting.requeue_failed(org_id)


@meters.post(
    "/admin/reconciliation/run",
    summary="Compare our invoices and reported usage for a period with Stripe's",
)
def run_reconciliation(
    reconciler: Reconcile,
    reporting: Meters,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")],
) -> dict[str, Any]:
    """The same run as `python -m billing_engine reconcile --period YYYY-MM`. Sets the
    `reconciliation_mismatches` gauge."""
    try:
        report = reconciler.run(period)
    except ProviderError as exc:
        raise ApiError(502, "stripe_unavailable", field=None, reason=exc.describe()) from None
    reporting.refresh_gauges()
    return report.as_json()


@meters.get("/debug/reconciliation/last", summary="The report of the last reconciliation run")
def last_reconciliation(reporting: Meters) -> dict[str, Any]:
    last = reporting.store.last_reconciliation()
    if last is None:
        return {"ran": False, "mismatch_count": 0}
    report: dict[str, Any] = json.loads(last.report)
    return {"ran": True, **report}
