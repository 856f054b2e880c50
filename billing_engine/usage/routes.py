"""Metering routes: heartbeats in, and the usage views of orgs and instances."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from billing_core.access import first_other_org
from billing_core.errors import Forbidden
from billing_core.http import error_responses
from billing_engine.api.deps import (
    ADMIN_ANSWERS,
    InstanceIdPath,
    OrgIdPath,
    ServicesDep,
    request_principal,
)
from billing_engine.api.middleware import PARSE_ON_LOOP_BYTES
from billing_engine.billing_view.schemas import billing_card_out
from billing_engine.usage.schemas import (
    DailyUsageOut,
    DriftOut,
    HeartbeatBatch,
    IngestOut,
    InstanceOut,
    OrgInstancesOut,
    QuotaRefreshOut,
    TopOrgsOut,
    daily_out,
    drift_out,
    ingest_json,
    instance_out,
    org_instances_out,
    quota_refresh_out,
    top_orgs_out,
)

log = logging.getLogger("billing_engine.api")

public = APIRouter(tags=["billing"])
admin = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)


@public.post(
    "/v1/heartbeats",
    summary="Ingest a batch of instance heartbeats",
    response_model=IngestOut,
    responses=error_responses(422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HeartbeatBatch"}}
            },
        }
    },
)
async def post_heartbeats(request: Request, services: ServicesDep) -> JSONResponse:
    """Each (instance, UTC minute) with a heartbeat is billed once. Every item must name the
    key's own org, or the batch is refused whole (403 naming the first such item). Items from
    the future or for a closed period are rejected one by one; a 200 means the rest is stored.
    `decisions` tells each instance with an accepted heartbeat to run or pause, and why."""
    # The hot path: one pydantic-core pass from bytes to validated items (FastAPI's own body
    # handling parses to Python objects first, then validates them: twice the work), and the
    # answer written as plain JSON (IngestOut documents its shape; a test holds it to it).
    body = await request.body()  # at most MAX_BODY_BYTES (api.middleware)
    try:
        if len(body) > PARSE_ON_LOOP_BYTES:  # a big batch parses in a thread: /healthz answers
            batch = await run_in_threadpool(HeartbeatBatch.model_validate_json, body)
        else:
            batch = HeartbeatBatch.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    principal = request_principal(request)
    own = principal.org_id if principal is not None else None
    offending = first_other_org((h.org_id for h in batch.heartbeats), own or "")
    if offending is not None:
        # Refused whole: an instance's ownership is claimed only by its own org's key.
        services.metrics.access_denied.labels("other_org").inc()
        if principal is not None:
            services.access.report_other_org(principal,
                                             named_org=batch.heartbeats[offending].org_id,
                                             endpoint="/v1/heartbeats")
        raise Forbidden(f"heartbeats[{offending}].org_id",
                        "is not the key's org: the whole batch is refused")

    def ingest_and_decide() -> dict[str, Any]:
        result = services.usage.ingest(batch.heartbeats)
        rejected = {index for index, _ in result.rejections}
        try:
            decisions = services.throttling.decide_batch(batch.heartbeats, rejected)
        except Exception:
            # The heartbeats are committed and must be acknowledged as such; instances keep their
            # last instruction until the next batch decides again.
            log.exception("throttle decision failed after ingest")
            decisions = []
        return ingest_json(result, decisions)

    return JSONResponse(await run_in_threadpool(ingest_and_decide))


@public.get(
    "/v1/usage/{org_id}/daily",
    summary="Hours per UTC day",
    response_model=DailyUsageOut,
    responses=error_responses(404, 422, 503),
)
def get_daily_usage(
    org_id: OrgIdPath, services: ServicesDep, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> DailyUsageOut:
    return daily_out(org_id, services.usage.daily(org_id, days))


@public.get(
    "/v1/instances/{instance_id}",
    summary="Last seen, state and minutes this period",
    response_model=InstanceOut,
    responses=error_responses(404, 422, 503),
)
def get_instance(instance_id: InstanceIdPath, services: ServicesDep) -> InstanceOut:
    return instance_out(services.usage.instance(instance_id))


@public.get(
    "/v1/orgs/{org_id}/instances",
    summary="An org's instances, most recently seen first, with their throttle state",
    response_model=OrgInstancesOut,
    responses=error_responses(404, 422, 503),
)
def get_org_instances(
    org_id: OrgIdPath, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> OrgInstancesOut:
    return org_instances_out(services.usage.org_instances(org_id, limit=limit))


@public.get(
    "/v1/usage/top",
    summary="The orgs with the most billed hours this period",
    response_model=TopOrgsOut,
    responses=error_responses(422, 503),
)
def get_top_orgs(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> TopOrgsOut:
    return top_orgs_out(*services.usage.top_orgs(limit=limit))


@admin.post(
    "/admin/quota/{org_id}/refresh",
    summary="Rebuild an org's usage from raw slots",
    response_model=QuotaRefreshOut,
    responses=error_responses(401, 404, 422, 503),
)
def refresh_quota(org_id: OrgIdPath, services: ServicesDep) -> QuotaRefreshOut:
    rebuilt = services.usage.rebuild(org_id)
    card = billing_card_out(services.billing.card(org_id))
    return quota_refresh_out(rebuilt, card)


@admin.get(
    "/debug/usage/{org_id}/daily",
    summary="Rollups against raw slots, this period",
    response_model=DriftOut,
    responses=error_responses(401, 404, 422, 503),
)
def debug_daily(org_id: OrgIdPath, services: ServicesDep) -> DriftOut:
    period, days = services.usage.drift(org_id)
    return drift_out(org_id, period, days)
