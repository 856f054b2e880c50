"""Build the FastAPI application from settings; everything it needs is passed in or made here."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from billing_core.catalogue import load_plans
from billing_engine import __version__
from billing_engine.api.errors import install_error_handlers
from billing_engine.api.middleware import ObservabilityMiddleware
from billing_engine.api.routes import admin, health, public
from billing_engine.audit.log import AuditLog, AuditMiddleware
from billing_engine.audit.store import AuditStore
from billing_engine.customers.service import BillingService, Clock, utc_now
from billing_engine.db import Database, Repository, create_database
from billing_engine.entitlements.cache import EntitlementsCache
from billing_engine.invoicing.routes import invoices_admin, invoices_public
from billing_engine.invoicing.service import InvoiceService
from billing_engine.invoicing.store import InvoiceStore
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.payments.retention import PaymentRetention
from billing_engine.payments.service import PaymentsView
from billing_engine.settings import Settings
from billing_engine.stripe.circuit_breaker import CircuitBreaker
from billing_engine.stripe.client import (
    PaymentProvider,
    log_breaker_change,
    provider_from_settings,
)
from billing_engine.stripe.meters.routes import meters
from billing_engine.stripe.meters.service import MeterConfig, MeterFlusher, MeterReporting
from billing_engine.stripe.meters.store import MeterStore
from billing_engine.stripe.reconcile.service import MirroredInvoices, Reconciler
from billing_engine.stripe.webhooks.dedup import WebhookDedup
from billing_engine.stripe.webhooks.routes import stripe_admin, stripe_public
from billing_engine.stripe.webhooks.service import StripeWebhooks
from billing_engine.stripe.webhooks.store import StripeStore
from billing_engine.throttling.service import Enforcement
from billing_engine.usage.routes_instances import support
from billing_engine.usage.rules import MeteringPolicy

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
        # Further jobs run each round, each on its own: one failing does not stop the others.
        self.tasks: list[tuple[str, Callable[[], object]]] = []

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
            for name, task in self.tasks:
                try:
                    task()
                except Exception as exc:
                    log.warning(
                        "housekeeping task failed", extra={"task": name, "reason": str(exc)[:200]}
                    )
            self._stop.wait(self.interval)


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    metrics: EngineMetrics | None = None,
    clock: Clock = utc_now,
    housekeeping: bool = True,
    payment_provider: PaymentProvider | None = None,
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
    stripe_store = StripeStore(service.repo)
    enforcement = Enforcement(service=service, cache=cache, subscriptions=stripe_store)
    housekeeper = Housekeeper(service, settings.housekeeping_interval_seconds, enforcement)
    dedup = WebhookDedup(settings.redis_url, retry_interval=settings.cache_retry_seconds)
    webhooks = StripeWebhooks(
        store=stripe_store,
        service=service,
        dedup=dedup,
        metrics=metrics,
        secret=settings.stripe_webhook_secret,
    )
    retention = PaymentRetention(stripe_store, days=settings.payment_retention_days, clock=clock)
    housekeeper.tasks.append(("webhook_gauges", webhooks.refresh_gauges))
    housekeeper.tasks.append(("payment_retention", retention.run_if_due))
    meter_store = MeterStore(database)
    provider = payment_provider or provider_from_settings(
        secret_key=settings.stripe_secret_key,
        api_base=settings.stripe_api_base,
        timeout_seconds=settings.stripe_timeout_seconds,
        breaker=CircuitBreaker(
            failure_threshold=settings.stripe_breaker_failures,
            cooldown_seconds=settings.stripe_breaker_cooldown_seconds,
            clock=lambda: clock().timestamp(),
            on_change=log_breaker_change,
        ),
        invoice_source=MirroredInvoices(meter_store),
    )
    meter_reporting = MeterReporting(
        store=meter_store,
        provider=provider,
        metrics=metrics,
        config=MeterConfig(
            event_name=settings.stripe_meter_event_name,
            close_delay=settings.meter_close_delay,
            period_close_grace=settings.period_close_grace,
            batch_size=settings.meter_flush_batch_size,
        ),
        clock=clock,
    )
    meter_flusher = MeterFlusher(meter_reporting, settings.meter_flush_interval_seconds)
    housekeeper.tasks.append(("meter_gauges", meter_reporting.refresh_gauges))
    invoice_service = InvoiceService(
        store=InvoiceStore(database), service=service, close_grace=settings.period_close_grace
    )
    # Closes last month once its grace has passed; a no-op check on every other round.
    housekeeper.tasks.append(("close_period", invoice_service.close_due_period))
    audit = AuditLog(
        AuditStore(database), metrics=metrics, clock=clock, secrets=settings.secret_values()
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        cache.ping()  # so entitlements_cache_up is right from the first scrape
        if not webhooks.configured:
            log.warning("STRIPE_WEBHOOK_SECRET is not set: POST /webhooks/stripe answers 503")
        if housekeeping:
            housekeeper.start()
            meter_flusher.start()
        yield
        if housekeeping:
            meter_flusher.stop()
            housekeeper.stop()
        cache.close()
        dedup.close()

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
    app.state.stripe_webhooks = webhooks
    app.state.payments_view = payments_view = PaymentsView(service=service, store=stripe_store)
    service.billing_sections["subscription"] = payments_view.subscription
    app.state.payment_retention = retention
    app.state.payment_provider = provider
    app.state.meters = meter_reporting
    app.state.reconciler = Reconciler(store=meter_store, provider=provider, clock=clock)
    app.state.invoices = invoice_service
    app.state.audit = audit
    service.billing_sections["invoice_preview"] = invoice_service.preview
    install_error_handlers(app)
    # POST /v1/heartbeats validates its raw body itself; publish the schema it documents.
    from billing_engine.usage.schemas import HeartbeatBatch

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
    app.include_router(stripe_public)
    app.include_router(stripe_admin)
    app.include_router(meters)
    app.include_router(invoices_public)
    app.include_router(invoices_admin)
    app.add_middleware(AuditMiddleware, audit=audit)  # inside: sees the request id
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app
