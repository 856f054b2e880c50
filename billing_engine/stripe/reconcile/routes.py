"""Reconciliation routes: run one for a period, read the last report, list the stored runs and
drill into one run's mismatches (the console's reconciliation page). Operators."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query

from billing_core.errors import NotFound
from billing_core.http import error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, ORG_ID_PATTERN, PeriodQuery, ServicesDep
from billing_engine.stripe.reconcile.rules import Mismatch
from billing_engine.stripe.reconcile.schemas import (
    LastReportOut,
    MismatchOut,
    NoReportOut,
    ReportOut,
    RunDetailOut,
    RunOut,
    RunsOut,
)
from billing_engine.stripe.reconcile.store import ReconciliationRun

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


def _run_out(run: ReconciliationRun, by_kind: dict[str, int]) -> RunOut:
    assert run.id is not None
    return RunOut(id=run.id, period=run.period, ran_at=run.ran_at, trigger=run.trigger,
                  provider=run.provider, mismatch_count=run.mismatches, by_kind=by_kind)


def _mismatch_out(m: Mismatch) -> MismatchOut:
    """A stored mismatch: `ours` and `stripe` are the two numbers its kind compares."""
    usage = m.kind.value.startswith("usage_")
    return MismatchOut(
        kind=m.kind.value, org_id=m.org_id, stripe_customer_id=m.stripe_customer_id,
        our_invoice_id=m.our_invoice_id, stripe_invoice_ids=list(m.stripe_invoice_ids),
        ours=_ours(m, usage), stripe=_theirs(m, usage), detail=m.detail,
        billed_minutes=m.billed_minutes, sent_minutes=m.sent_minutes,
        stripe_minutes=m.stripe_minutes, our_cents=m.our_cents, stripe_cents=m.stripe_cents,
    )


def _ours(m: Mismatch, usage: bool) -> int | None:
    if m.kind.value.endswith("_aggregated"):
        return m.sent_minutes
    return m.billed_minutes if usage else m.our_cents


def _theirs(m: Mismatch, usage: bool) -> int | None:
    if m.kind.value.endswith("_aggregated"):
        return m.stripe_minutes
    return m.sent_minutes if usage else m.stripe_cents


@router.get(
    "/debug/reconciliation/runs",
    summary="Stored reconciliation runs, newest first, with their mismatches by kind",
    response_model=RunsOut,
    responses=error_responses(401, 422, 503),
)
def list_runs(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=200)] = 30
) -> RunsOut:
    store = services.reconciler.store
    runs = store.recent_runs(limit=limit)
    kinds = store.kinds_by_run([r.id for r in runs if r.id is not None])
    return RunsOut(runs=[_run_out(r, kinds.get(r.id or 0, {})) for r in runs])


@router.get(
    "/debug/reconciliation/runs/{run_id}",
    summary="One run's mismatches, per org, with billed, sent and Stripe-aggregated minutes "
    "and both invoice totals",
    response_model=RunDetailOut,
    responses=error_responses(401, 404, 422, 503),
)
def get_run(
    services: ServicesDep,
    run_id: Annotated[int, Path(ge=1, le=2**62, description="The run's id")],
    org_id: Annotated[str | None, Query(pattern=ORG_ID_PATTERN,
                                        description="Only this org's mismatches")] = None,
) -> RunDetailOut:
    store = services.reconciler.store
    run = store.get_run(run_id)
    if run is None:
        raise NotFound("run_id", f"no reconciliation run {run_id}")
    report = json.loads(run.report)
    found = store.mismatches_of(run_id, org_id=org_id)
    kinds = store.kinds_by_run([run_id]).get(run_id, {})
    return RunDetailOut(
        **_run_out(run, kinds).model_dump(),
        our_invoices=int(report.get("our_invoices", 0)),
        stripe_invoices=int(report.get("stripe_invoices", 0)),
        aggregated_checked=bool(report.get("aggregated_checked", False)),
        mismatches=[_mismatch_out(m) for m in found],
    )
