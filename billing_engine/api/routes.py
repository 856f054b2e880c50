"""Routes: public v1 views, admin and debug actions behind the admin key, health and metrics."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from billing_engine.api.errors import ApiError
from billing_engine.audit.log import identify_admin
from billing_engine.customers.service import BillingService, plan_json
from billing_engine.db import DatabaseUnavailable
from billing_engine.throttling.service import Enforcement
from billing_engine.usage.schemas import (
    INSTANCE_ID_PATTERN,
    ORG_ID_PATTERN,
    HeartbeatBatch,
    OrgUpsert,
)

log = logging.getLogger("billing_engine.api")
OrgIdPath = Annotated[str, Path(pattern=ORG_ID_PATTERN, description="Org (customer) id")]
InstanceIdPath = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN)]


def get_service(request: Request) -> BillingService:
    return request.app.state.service


Service = Annotated[BillingService, Depends(get_service)]


def get_enforcement(request: Request) -> Enforcement:
    return request.app.state.enforcement


Enforcer = Annotated[Enforcement, Depends(get_enforcement)]


def require_admin(
    request: Request,
    x_admin_key: Annotated[str | None, Header(description="The ADMIN_API_KEY")] = None,
) -> None:
    metrics = request.app.state.metrics
    if not x_admin_key:
        metrics.admin_auth_failures.labels("missing").inc()
        request.state.admin_refusal = "missing"
        raise ApiError(401, "unauthorized", field="X-Admin-Key", reason="header is required")
    # Constant time over every configured key; the audit log records the key's name.
    name = identify_admin(request.app.state.settings.admin_keys(), x_admin_key)
    if name is None:
        metrics.admin_auth_failures.labels("invalid").inc()
        request.state.admin_refusal = "invalid"
        raise ApiError(401, "unauthorized", field="X-Admin-Key", reason="is not the admin key")
    request.state.admin_key_name = name


public = APIRouter(tags=["billing"])
admin = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])
health = APIRouter(tags=["health"])


@public.post(
    "/v1/heartbeats",
    summary="Ingest a batch of instance heartbeats",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HeartbeatBatch"}}
            },
        }
    },
)
async def post_heartbeats(
    request: Request, service: Service, enforcement: Enforcer
) -> dict[str, Any]:
    """Each (instance, UTC minute) with a heartbeat is billed once. Items for an unknown org, from
    the future or for a closed period are rejected one by one; a 200 means the rest is stored.
    `decisions` tells each instance with an accepted heartbeat to run or pause, and why."""
    # The hot path: one pydantic-core pass from bytes to validated items (FastAPI's own body
    # handling parses to Python objects first, then validates them: twice the work).
    try:
        batch = HeartbeatBatch.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None

    def ingest_and_decide() -> dict[str, Any]:
        result = service.ingest(batch.heartbeats)
        rejected = {index for index, _ in result.rejections}
        try:
            decisions = enforcement.decide_batch(batch.heartbeats, rejected)
        except Exception:
            # The heartbeats are committed and must be acknowledged as such; instances keep their
            # last instruction until the next batch decides again.
            log.exception("throttle decision failed after ingest")
            decisions = []
        return {**result.as_json(), "decisions": decisions}

    return await run_in_threadpool(ingest_and_decide)


@public.get("/v1/billing", summary="The support view of one customer's billing")
def get_billing(
    service: Service, org_id: Annotated[str, Query(pattern=ORG_ID_PATTERN)]
) -> dict[str, Any]:
    return service.billing_view(org_id)


@public.get("/v1/usage/{org_id}/daily", summary="Hours per UTC day")
def get_daily_usage(
    org_id: OrgIdPath, service: Service, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, Any]:
    return service.daily_usage(org_id, days)


@public.get("/v1/customers", summary="Search customers by id, name or email prefix")
def get_customers(
    service: Service,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    return service.search(q, page=page, page_size=page_size)


@public.get("/v1/instances/{instance_id}", summary="Last seen, state and minutes this period")
def get_instance(instance_id: InstanceIdPath, service: Service) -> dict[str, Any]:
    return service.instance_view(instance_id)


@public.get("/v1/plans", summary="The plan catalogue in force")
def get_plans(service: Service) -> dict[str, Any]:
    catalog = service.catalog
    return {
        "version": catalog.version,
        "default_plan": catalog.default_plan,
        "plans": [plan_json(p) for p in catalog.plans.values()],
    }


@public.get("/v1/entitlements/{org_id}", summary="What the org's plan and subscription allow")
def get_entitlements(org_id: OrgIdPath, enforcement: Enforcer) -> dict[str, Any]:
    return enforcement.entitlements_view(org_id)


@admin.post(
    "/admin/entitlements/{org_id}/recompute",
    summary="Drop the cached entitlements and compute them again from the database",
)
def recompute_entitlements(org_id: OrgIdPath, enforcement: Enforcer) -> dict[str, Any]:
    return enforcement.recompute(org_id)


@admin.get("/debug/throttle/{instance_id}", summary="The throttle decision, why, since when")
def debug_throttle(instance_id: InstanceIdPath, enforcement: Enforcer) -> dict[str, Any]:
    return enforcement.throttle_view(instance_id)


@admin.post(
    "/admin/throttle/{org_id}/reset-daily",
    summary="Start the org's daily throttle counter from zero (billed usage is unchanged)",
)
def reset_daily_throttle(org_id: OrgIdPath, enforcement: Enforcer) -> dict[str, Any]:
    return enforcement.reset_daily(org_id)


@admin.post(
    "/admin/throttle/instances/{instance_id}/check",
    summary="Re-check an instance now and record the decision",
)
def check_instance_throttle(instance_id: InstanceIdPath, enforcement: Enforcer) -> dict[str, Any]:
    return enforcement.check_instance(instance_id)


@admin.put("/admin/orgs/{org_id}", summary="Create or update an org")
def put_org(org_id: OrgIdPath, body: OrgUpsert, service: Service) -> JSONResponse:
    if body.plan not in service.catalog:
        known = ", ".join(sorted(service.catalog.plans))
        raise ApiError(422, "invalid_request", field="plan", reason=f"must be one of: {known}")
    org, created = service.upsert_org(
        org_id=org_id, name=body.name, email=body.email, plan=body.plan
    )
    return JSONResponse(status_code=201 if created else 200, content=org)


@admin.post("/admin/quota/{org_id}/refresh", summary="Rebuild an org's usage from raw slots")
def refresh_quota(org_id: OrgIdPath, service: Service) -> dict[str, Any]:
    return service.refresh_quota(org_id)


@admin.get("/debug/usage/{org_id}/daily", summary="Rollups against raw slots, this period")
def debug_daily(org_id: OrgIdPath, service: Service) -> dict[str, Any]:
    return service.debug_daily_usage(org_id)


@health.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/live", summary="The process is up")
def live() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/ready", summary="The engine can serve: its database answers")
def ready(service: Service, request: Request) -> JSONResponse:
    # Which payment provider this engine talks to: "stripe", or "simulated" without a key.
    provider: str = request.app.state.payment_provider.name
    try:
        service.check_ready()
    except DatabaseUnavailable as exc:
        return JSONResponse(
            status_code=503,
            content={
                "status": "not_ready",
                "reason": f"database unreachable: {exc}",
                "checks": {"database": "unreachable"},
                "payment_provider": provider,
            },
        )
    return JSONResponse(
        status_code=200,
        content={"status": "ready", "checks": {"database": "ok"}, "payment_provider": provider},
    )


@health.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    service: BillingService = request.app.state.service
    service.update_lag()
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
