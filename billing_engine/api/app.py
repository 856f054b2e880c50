"""Build the FastAPI application: the services from the wiring, every concept's routes, the
error handlers and the middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from billing_core.access import OrgScope, Public, Requirement
from billing_core.clock import Clock, utc_now
from billing_core.http import api_routes, error_responses, install_error_handlers
from billing_core.tracing import instrument_fastapi, instrument_sqlalchemy
from billing_engine import __version__
from billing_engine.access import routes as access_routes
from billing_engine.access.policy import ENGINE_POLICY
from billing_engine.api.deps import BODY_METHODS, AuthorizeDep
from billing_engine.api.middleware import UNCOUNTED, BodyLimitMiddleware, ObservabilityMiddleware
from billing_engine.audit import routes as audit_routes
from billing_engine.audit.middleware import AuditMiddleware
from billing_engine.billing_view import routes as billing_routes
from billing_engine.customers import routes as customer_routes
from billing_engine.db.database import Database
from billing_engine.demo import routes as demo_routes
from billing_engine.demo.fault import DemoFault, DemoFaultMiddleware
from billing_engine.entitlements import routes as entitlement_routes
from billing_engine.invoicing import routes as invoicing_routes
from billing_engine.operability import routes as health_routes
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.payments import routes as payment_routes
from billing_engine.plans import routes as plan_routes
from billing_engine.settings import Settings
from billing_engine.stripe.client import PaymentProvider
from billing_engine.stripe.credits import routes as stripe_credit_routes
from billing_engine.stripe.meters import routes as meter_routes
from billing_engine.stripe.reconcile import routes as reconcile_routes
from billing_engine.stripe.resync import routes as resync_routes
from billing_engine.stripe.webhooks import routes as webhook_routes
from billing_engine.throttling import routes as throttling_routes
from billing_engine.usage import routes as usage_routes
from billing_engine.usage.schemas import HeartbeatBatch
from billing_engine.wiring import Services, build_services

log = logging.getLogger("billing_engine")

ROUTERS = (
    demo_routes.router,
    usage_routes.public,
    billing_routes.router,
    customer_routes.public,
    plan_routes.router,
    entitlement_routes.public,
    invoicing_routes.public,
    payment_routes.router,
    webhook_routes.public,
    customer_routes.admin,
    usage_routes.admin,
    entitlement_routes.admin,
    throttling_routes.router,
    invoicing_routes.admin,
    audit_routes.router,
    access_routes.router,
    webhook_routes.admin,
    meter_routes.router,
    meter_routes.public,
    reconcile_routes.router,
    resync_routes.router,
    stripe_credit_routes.router,
    health_routes.router,
)


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    database: Database | None = None,
    metrics: EngineMetrics | None = None,
    clock: Clock = utc_now,
    housekeeping: bool = True,
    payment_provider: PaymentProvider | None = None,
    demo_fault: DemoFault | None = None,
) -> FastAPI:
    services = services or build_services(
        settings,
        database=database,
        metrics=metrics,
        clock=clock,
        payment_provider=payment_provider,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.cache.ping()  # so entitlements_cache_up is right from the first scrape
        log.warning(
            "ADMIN_API_KEY and ADMIN_API_KEYS are deprecated: they act as admin staff keys; "
            "create named staff keys with a role (POST /admin/staff-keys) instead"
        )
        if not services.webhooks.configured:
            log.warning("STRIPE_WEBHOOK_SECRET is not set: POST /webhooks/stripe answers 503")
        if housekeeping:
            services.start_background()
        yield
        if housekeeping:
            services.stop_background()
        services.close()

    app = FastAPI(
        title="Billing engine",
        version=__version__,
        description="Meters instance heartbeats into billable instance-minutes, applies plans "
        "and quota, and serves the billing views support and on-call need.",
        lifespan=lifespan,
        # The one access check: every route, by the policy table (billing_engine.access.policy).
        dependencies=[AuthorizeDep],
    )
    app.state.services = services
    app.state.demo_fault = demo_fault  # the demo's scripted incident; None outside the demo
    app.state.access_policy = ENGINE_POLICY  # routes added to the app later need an entry
    install_error_handlers(app)
    _publish_heartbeat_schema(app)
    for router in ROUTERS:
        app.include_router(router)
    _declare_access_answers(app)
    # Innermost: an oversized body is refused before any route runs or the audit log sees it.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuditMiddleware, audit=services.audit)  # inside: sees the request id
    if demo_fault is not None:  # inside the metrics: the demo's errors and delay are measured
        app.add_middleware(DemoFaultMiddleware, fault=demo_fault, routes=app.router.routes)
    app.add_middleware(ObservabilityMiddleware, metrics=services.metrics)
    # Server and SQL spans when tracing is on (billing_core.tracing); nothing otherwise.
    instrument_fastapi(app, excluded=sorted(UNCOUNTED))
    instrument_sqlalchemy(services.database.engine)
    return app


def access_text(requirement: Requirement) -> str:
    if isinstance(requirement, Public):
        return "**Access**: public."
    if isinstance(requirement, OrgScope):
        staff = (f", or a staff credential with the role {requirement.staff.name} or higher"
                 if requirement.staff is not None else "")
        return (f"**Access**: an org key with the scope `{requirement.scope.value}`, for its own "
                f"org only{staff}.")
    return f"**Access**: a staff credential with the role {requirement.role.name} or higher."


def _declare_access_answers(app: FastAPI) -> None:
    """Each route's OpenAPI answers say what the access check may answer for it: 401, 403 and
    429 (the failed-authentication limits) unless the route is public, and 413 and 415 where it
    reads a body."""
    for route in api_routes(app.router.routes):
        for method in route.methods or ():
            requirement = ENGINE_POLICY.get((method, route.path_format))
            statuses = [] if isinstance(requirement, Public) else [401, 403, 429]
            if method in BODY_METHODS:
                statuses += [413, 415]
            for status, answer in error_responses(*statuses).items():
                route.responses.setdefault(status, answer)
            # Routers are module-level and shared by every app built: describe a route once.
            if requirement is not None and "**Access**" not in (route.description or ""):
                text = route.description or ""
                route.description = (text + "\n\n" if text else "") + access_text(requirement)


def _publish_heartbeat_schema(app: FastAPI) -> None:
    """POST /v1/heartbeats validates its raw body itself; publish the schema it documents."""
    schemas = HeartbeatBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    extra_schemas = {
        "HeartbeatBatch": {k: v for k, v in schemas.items() if k != "$defs"},
        **schemas.get("$defs", {}),
    }
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = original_openapi()
            document.setdefault("components", {}).setdefault("schemas", {}).update(extra_schemas)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
