"""Build the FastAPI application: the services from the wiring, every concept's routes, the
error handlers and the middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from billing_core.clock import Clock, utc_now
from billing_core.http import install_error_handlers
from billing_engine import __version__
from billing_engine.api.middleware import ObservabilityMiddleware
from billing_engine.audit import routes as audit_routes
from billing_engine.audit.middleware import AuditMiddleware
from billing_engine.billing_view import routes as billing_routes
from billing_engine.customers import routes as customer_routes
from billing_engine.db.database import Database
from billing_engine.entitlements import routes as entitlement_routes
from billing_engine.invoicing import routes as invoicing_routes
from billing_engine.operability import routes as health_routes
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.payments import routes as payment_routes
from billing_engine.plans import routes as plan_routes
from billing_engine.settings import Settings
from billing_engine.stripe.client import PaymentProvider
from billing_engine.stripe.meters import routes as meter_routes
from billing_engine.stripe.reconcile import routes as reconcile_routes
from billing_engine.stripe.webhooks import routes as webhook_routes
from billing_engine.throttling import routes as throttling_routes
from billing_engine.usage import routes as usage_routes
from billing_engine.usage.schemas import HeartbeatBatch
from billing_engine.wiring import Services, build_services

log = logging.getLogger("billing_engine")

ROUTERS = (
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
    webhook_routes.admin,
    meter_routes.router,
    reconcile_routes.router,
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
    )
    app.state.services = services
    install_error_handlers(app)
    _publish_heartbeat_schema(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(AuditMiddleware, audit=services.audit)  # inside: sees the request id
    app.add_middleware(ObservabilityMiddleware, metrics=services.metrics)
    return app


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
