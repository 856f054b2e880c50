"""Reconciliation routes: run one for a period, read the last report. Admin only."""

from __future__ import annotations

import json

from fastapi import APIRouter

from billing_core.http import error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, PeriodQuery, ServicesDep
from billing_engine.stripe.reconcile.schemas import LastReportOut, NoReportOut, ReportOut

router = APIRouter(tags=["usage reporting"], responses=ADMIN_ANSWERS)


@router.post(
    "/admin/reconciliation/run",
    summary="Compare our invoices and reported usage for a period with Stripe's",
    response_model=ReportOut,
    responses=error_responses(401, 422, 502, 503),
)
def run_reconciliation(services: ServicesDep, period: PeriodQuery) -> ReportOut:
    """The same run as `python -m billing_engine reconcile --period YYYY-MM`. Sets the
    `reconciliation_mismatches` gauge."""
    return ReportOut.model_validate(services.reconciler.run(period).as_json())


@router.get(
    "/debug/reconciliation/last",
    summary="The report of the last reconciliation run",
    response_model=LastReportOut | NoReportOut,
    responses=error_responses(401, 503),
)
def last_reconciliation(services: ServicesDep) -> LastReportOut | NoReportOut:
    last = services.reconciler.store.last_reconciliation()
    if last is None:
        return NoReportOut(ran=False, mismatch_count=0)
    return LastReportOut.model_validate({"ran": True, **json.loads(last.report)})
