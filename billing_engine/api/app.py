"""Build the FastAPI application from settings; everything it needs is passed in or made here."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from billing_engine import __version__
from billing_engine.api.errors import install_error_handlers
from billing_engine.api.middleware import ObservabilityMiddleware
from billing_engine.api.routes import admin, health, public
from billing_engine.api.routes_support import support
from billing_engine.cache import EntitlementsCache
from billing_engine.domain.metering import MeteringPolicy
from billing_engine.enforcement import Enforcement
from billing_engine.metrics import EngineMetrics
from billing_engine.plans import load_plans
from billing_engine.service import BillingService, Clock, utc_now
from billing_engine.settings import Settings
from billing_engine.store import Database, Repository, create_database

log = logging.getLogger("billing_engine")


class Housekeeper:
    """Refreshes the gauges that need the database (readiness, thresholds, rollup lag)."""

    def __init__(
        self, service: BillingService, interval: float, enforcement: Enforcement | None = None
    ) -> None:
        self.service = service
        self.enforcement = enforcement
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.service.check_ready()
                self.service.refresh_gauges()
                if self.enforcement is not None:
                    self.enforcement.refresh_gauges()
            except Exception as exc:  # the next round tries again; readiness says what is wrong
                log.warning("housekeeping round failed", extra={"reason": str(exc)[:200]})
            self._stop.wait(self.interval)


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    metrics: EngineMetrics | None = None,
    clock: Clock = utc_now,
    housekeeping: bool = True,
) -> FastAPI:
    database = database or create_database(settings.database_url, pool_size=settings.db_pool_size)
    metrics = metrics or EngineMetrics()
    metrics.watch_pool(database.connections_in_use)
    service = BillingService(
        repository=Repository(database),
        catalog=load_plans(settings.plans_file),
        policy=MeteringPolicy(
            clock_skew=settings.heartbeat_clock_skew, close_grace=settings.period_close_grace
        ),
        metrics=metrics,
        clock=clock,
    )
    cache = EntitlementsCache(
        settings.redis_url,
        metrics=metrics,
        ttl_seconds=settings.entitlements_cache_ttl_seconds,
        retry_interval=settings.cache_retry_seconds,
    )
    enforcement = Enforcement(service=service, cache=cache)
    housekeeper = Housekeeper(service, settings.housekeeping_interval_seconds, enforcement)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        cache.ping()  # so entitlements_cache_up is right from the first scrape
        if housekeeping:
            housekeeper.start()
        yield
        if housekeeping:
            housekeeper.stop()
        cache.close()

    app = FastAPI(
        title="Billing engine",
        version=__version__,
        description="Meters instance heartbeats into billable instance-minutes, applies plans "
        "and quota, and serves the billing views support and on-call need.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = service
    app.state.enforcement = enforcement
    app.state.database = database
    install_error_handlers(app)
    # POST /v1/heartbeats validates its raw body itself; publish the schema it documents.
    from billing_engine.api.schemas import HeartbeatBatch

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
    app.include_router(public)
    app.include_router(support)
    app.include_router(admin)
    app.include_router(health)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app
