"""The resync route: support pulls one org's state from Stripe on demand.

Under /v1/customers like the rest of support's customer routes (the /admin/ and /debug/ trees
are the operator's), so it writes its own audit row ahead, as the audit middleware does for
admin actions: the row (outcome `started`) is committed before anything runs, and refused with
503 `audit_unavailable` when it cannot be; it is completed with the status and what changed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from billing_core.errors import BillingError
from billing_core.http import error_responses
from billing_core.logs import request_id_var
from billing_engine.api.deps import OrgIdPath, ServicesDep
from billing_engine.audit.keys import STATE_ACTOR
from billing_engine.stripe.resync.schemas import ResyncOut, resync_out

router = APIRouter(tags=["billing"])


@router.post(
    "/v1/customers/{org_id}/resync",
    summary="Pull the org's customer, subscriptions and latest invoices from Stripe and apply "
    "them",
    response_model=ResyncOut,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
)
async def resync_org(org_id: OrgIdPath, request: Request, services: ServicesDep) -> ResyncOut:
    """Support and above. Audited: who, when, and the plan and subscriptions before and after.
    409 when the org has no Stripe customer, or Stripe does not know it; 502 when Stripe
    failed (nothing was changed)."""
    audit = services.audit
    params = {"org_id": org_id}
    entry = await run_in_threadpool(lambda: audit.begin(
        actor=str(getattr(request.state, STATE_ACTOR, None) or "unknown"), method="POST",
        path=request.url.path, path_params=params, query="", request_id=request_id_var.get()))

    async def complete(summary: dict[str, Any], status: int) -> None:
        await run_in_threadpool(lambda: audit.complete(
            entry, path_params=params, summary=summary, status=status))

    try:
        result = await run_in_threadpool(services.resync.resync, org_id)
    except BillingError as exc:
        await complete({"error": exc.code, "reason": str(exc)[:300]}, exc.status)
        raise
    except Exception as exc:
        await complete({"error": exc.__class__.__name__}, 500)
        raise
    await complete({"changed": result.changed, **result.change_summary()}, 200)
    return resync_out(result)
