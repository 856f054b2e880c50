"""Wiring: every service of the engine, built once from Settings.

The app, the CLIs (close-period, reconcile), the demo and the tests all build the engine here,
so they run the same objects with the same settings. Services get what they share (the clock,
the plan catalogue, the customer directory) passed in; none reaches into another's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from billing_core.access.oidc import OidcVerifier
from billing_core.catalogue import load_plans
from billing_core.clock import Clock, utc_now
from billing_core.plans import PlanCatalog
from billing_core.resources import sqlite_volume
from billing_engine.access.limits import FailedAuthLimiter
from billing_engine.access.service import AccessKeys
from billing_engine.access.store import KeyStore
from billing_engine.audit.service import AuditLog
from billing_engine.audit.store import AuditStore
from billing_engine.billing_view.service import BillingCards
from billing_engine.billing_view.store import BillingCardStore
from billing_engine.customers.service import Customers
from billing_engine.customers.store import CustomerStore
from billing_engine.db.database import Database, create_database
from billing_engine.entitlements.cache import EntitlementsCache
from billing_engine.entitlements.service import EntitlementsService
from billing_engine.invoicing.service import Invoicing
from billing_engine.invoicing.store import InvoiceStore
from billing_engine.operability.housekeeping import Housekeeper
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.payments.retention import PaymentRetention
from billing_engine.payments.service import Payments
from billing_engine.payments.store import PaymentStore
from billing_engine.settings import Settings
from billing_engine.stripe.accounts import StripeAccounts, accounts_for, find_invoice_customer
from billing_engine.stripe.circuit_breaker import CircuitBreaker
from billing_engine.stripe.client import PaymentProvider, log_breaker_change, provider_from_settings
from billing_engine.stripe.credits.service import StripeCredits
from billing_engine.stripe.credits.store import StripeCreditStore
from billing_engine.stripe.meters.errors import MeterErrorReports
from billing_engine.stripe.meters.service import MeterConfig, MeterFlusher, MeterReporting
from billing_engine.stripe.meters.store import MeterStore
from billing_engine.stripe.reconcile.service import MirroredInvoices, Reconciler
from billing_engine.stripe.reconcile.store import ReconciliationStore
from billing_engine.stripe.resync.service import Resync
from billing_engine.stripe.resync.store import ResyncStore
from billing_engine.stripe.webhooks.dedup import WebhookDedup
from billing_engine.stripe.webhooks.service import StripeWebhooks
from billing_engine.stripe.webhooks.store import InboxStore
from billing_engine.subscriptions.store import SubscriptionStore
from billing_engine.throttling.service import Throttling
from billing_engine.throttling.store import ThrottleStore
from billing_engine.usage.archive import UsageArchive
from billing_engine.usage.partitions import PartitionStore
from billing_engine.usage.retention import UsageRetention
from billing_engine.usage.rules import MeteringPolicy
from billing_engine.usage.service import Usage
from billing_engine.usage.store import UsageStore


@dataclass
class Services:
    settings: Settings
    database: Database
    metrics: EngineMetrics
    clock: Clock
    catalog: PlanCatalog
    customers: Customers
    usage: Usage
    billing: BillingCards
    entitlements: EntitlementsService
    throttling: Throttling
    payments: Payments
    invoicing: Invoicing
    webhooks: StripeWebhooks
    provider: PaymentProvider
    meters: MeterReporting
    meter_errors: MeterErrorReports
    reconciler: Reconciler
    retention: PaymentRetention
    usage_retention: UsageRetention
    audit: AuditLog
    access: AccessKeys
    auth_limits: FailedAuthLimiter
    cache: EntitlementsCache
    dedup: WebhookDedup
    housekeeper: Housekeeper
    meter_flusher: MeterFlusher
    # Support tools against Stripe (issue 12): credits, resync, search, scheduled reconciling.
    accounts: StripeAccounts
    stripe_credits: StripeCredits
    resync: Resync

    def start_background(self) -> None:
        self.housekeeper.start()
        self.meter_flusher.start()

    def stop_background(self) -> None:
        self.meter_flusher.stop()
        self.housekeeper.stop()

    def close(self) -> None:
        """Let go of Redis (the database belongs to whoever passed it in, or to `dispose`)."""
        self.cache.close()
        self.dedup.close()
        self.meters.close()

    def dispose(self) -> None:
        self.close()
        self.database.dispose()


def build_services(
    settings: Settings,
    *,
    database: Database | None = None,
    metrics: EngineMetrics | None = None,
    clock: Clock = utc_now,
    payment_provider: PaymentProvider | None = None,
    pool_size: int | None = None,
) -> Services:
    database = database or create_database(
        settings.database_url, pool_size=pool_size or settings.db_pool_size
    )
    metrics = metrics or EngineMetrics()
    metrics.watch_pool(database.connections_in_use, database.connections_max)
    embedded = sqlite_volume(settings.database_url)
    if embedded is not None:  # the embedded database's disk: VolumeAlmostFull watches it
        metrics.watch_volume("database", embedded)
    catalog = load_plans(settings.plans_file)

    customers = Customers(store=CustomerStore(database), clock=clock)
    usage = Usage(
        store=UsageStore(database),
        customers=customers,
        catalog=catalog,
        policy=MeteringPolicy(
            clock_skew=settings.heartbeat_clock_skew, close_grace=settings.period_close_grace
        ),
        metrics=metrics,
        clock=clock,
    )
    subscriptions = SubscriptionStore(database)
    cache = EntitlementsCache(
        settings.redis_url,
        metrics=metrics,
        ttl_seconds=settings.entitlements_cache_ttl_seconds,
        retry_interval=settings.cache_retry_seconds,
    )
    entitlements = EntitlementsService(
        cache=cache, customers=customers, catalog=catalog, subscriptions=subscriptions
    )
    throttling = Throttling(
        store=ThrottleStore(database),
        entitlements=entitlements,
        customers=customers,
        metrics=metrics,
        clock=clock,
    )
    inbox = InboxStore(database)
    dedup = WebhookDedup(settings.redis_url, retry_interval=settings.cache_retry_seconds)
    payment_store = PaymentStore(database)
    reconciliation_store = ReconciliationStore(database)
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
        invoice_source=MirroredInvoices(reconciliation_store),
        clock=lambda: clock().timestamp(),
    )
    webhooks = StripeWebhooks(
        store=inbox,
        customers=customers,
        catalog=catalog,
        dedup=dedup,
        metrics=metrics,
        secret=settings.stripe_webhook_secret,
        provider=provider,
        clock=clock,
    )
    meters = MeterReporting(
        store=MeterStore(database),
        provider=provider,
        metrics=metrics,
        config=MeterConfig(
            event_name=settings.stripe_meter_event_name,
            close_delay=settings.meter_close_delay,
            period_close_grace=settings.period_close_grace,
            batch_size=settings.meter_flush_batch_size,
            concurrency=settings.meter_concurrency,
            stream_min_records=settings.meter_stream_min_records,
        ),
        clock=clock,
    )
    reconciler = Reconciler(
        store=reconciliation_store, provider=provider, metrics=metrics, clock=clock
    )
    invoicing = Invoicing(
        store=InvoiceStore(database),
        customers=customers,
        catalog=catalog,
        metrics=metrics,
        close_grace=settings.period_close_grace,
        clock=clock,
    )
    retention = PaymentRetention(
        payment_store, inbox=inbox, days=settings.payment_retention_days, clock=clock
    )
    housekeeper = Housekeeper(
        database=database,
        metrics=metrics,
        interval=settings.housekeeping_interval_seconds,
        clock=clock,
    )
    # Gauges: every round, on every replica (each exports its own metrics).
    housekeeper.add("usage_gauges", usage.refresh_gauges)
    housekeeper.add("entitlements_cache", cache.ping)
    housekeeper.add("throttle_gauges", throttling.refresh_over_limit)
    housekeeper.add("webhook_gauges", webhooks.refresh_gauges)
    housekeeper.add("meter_gauges", meters.refresh_gauges)
    housekeeper.add("reconciliation_gauge", reconciler.refresh_gauge)
    housekeeper.add("job_gauges", housekeeper.refresh_job_gauges)
    # Jobs: once per period across every replica and worker (operability/housekeeping.py).
    # Closing last month once its grace has passed is a no-op check on every other run.
    housekeeper.add_job("close_period", invoicing.close_due_period,
                        every=4 * settings.housekeeping_interval_seconds)
    housekeeper.add_job("payment_retention", retention.run, every=3600)
    invoice_store = InvoiceStore(database)
    usage_retention = UsageRetention(
        store=PartitionStore(database),
        archive=UsageArchive(settings.usage_archive_dir),
        keep_months=settings.usage_retention_months,
        is_period_closed=invoice_store.is_period_closed,
        metrics=metrics,
        clock=clock,
    )
    # Partitions ahead, storage gauges, and months past retention archived and dropped.
    housekeeper.add_job("usage_retention", usage_retention.run, every=3600)
    housekeeper.add_job("forget_old_refusals", usage.forget_old_refusals, every=3600)
    housekeeper.add_job("forget_old_job_claims", housekeeper.forget_old_claims, every=3600)
    # Credits applied in Stripe: the grant tries at once, this job retries what Stripe missed.
    accounts = accounts_for(provider)
    stripe_credits = StripeCredits(
        store=StripeCreditStore(database), accounts=accounts, metrics=metrics, clock=clock
    )
    invoicing.after_grant = stripe_credits.send_one
    # Customer search asks Stripe whose an invoice id or number is when we hold no link to it.
    customers.stripe_invoice_lookup = lambda quoted: find_invoice_customer(accounts, quoted)
    housekeeper.add("stripe_credit_gauges", stripe_credits.refresh_gauges)
    housekeeper.add_job("stripe_credits", stripe_credits.send_due,
                        every=4 * settings.housekeeping_interval_seconds)
    # Reconciliation by itself: each period once it is closed, and the last closed period
    # daily; Stripe's meter summaries give the third usage number.
    reconciler.accounts = accounts
    reconciler.meter_event_name = settings.stripe_meter_event_name
    reconciler.is_period_closed = invoice_store.is_period_closed
    housekeeper.add_job("reconcile_after_close", reconciler.run_after_close,
                        every=4 * settings.housekeeping_interval_seconds)
    if settings.reconciliation_interval_seconds > 0:
        housekeeper.add_job("reconcile_daily", reconciler.run_daily,
                            every=settings.reconciliation_interval_seconds)
    return Services(
        settings=settings,
        database=database,
        metrics=metrics,
        clock=clock,
        catalog=catalog,
        customers=customers,
        usage=usage,
        billing=BillingCards(store=BillingCardStore(database), catalog=catalog, clock=clock),
        entitlements=entitlements,
        throttling=throttling,
        payments=Payments(store=payment_store, customers=customers, clock=clock),
        invoicing=invoicing,
        webhooks=webhooks,
        provider=provider,
        meters=meters,
        meter_errors=MeterErrorReports(
            store=meters.store,
            provider=provider,
            metrics=metrics,
            secret=settings.stripe_thin_webhook_secret,
            refresh_gauges=meters.refresh_gauges,
        ),
        reconciler=reconciler,
        retention=retention,
        usage_retention=usage_retention,
        audit=AuditLog(
            AuditStore(database), metrics=metrics, clock=clock, secrets=settings.secret_values()
        ),
        access=AccessKeys(
            KeyStore(database),
            customers=customers,
            configured_keys=settings.admin_keys(),
            clock=clock,
            oidc=OidcVerifier(settings.oidc) if settings.oidc is not None else None,
        ),
        auth_limits=FailedAuthLimiter(
            per_address=settings.auth_failure_limit_per_address,
            per_prefix=settings.auth_failure_limit_per_key_prefix,
            window=timedelta(seconds=settings.auth_failure_window_seconds),
            clock=clock,
        ),
        cache=cache,
        dedup=dedup,
        housekeeper=housekeeper,
        meter_flusher=MeterFlusher(
            meters,
            settings.meter_flush_interval_seconds,
            claim=lambda: housekeeper.holds(
                "meter_flush", every=settings.meter_flush_interval_seconds
            ),
        ),
        accounts=accounts,
        stripe_credits=stripe_credits,
        resync=Resync(
            store=ResyncStore(database),
            invoices=invoice_store,
            accounts=accounts,
            customers=customers,
            entitlements=entitlements,
            catalog=catalog,
            metrics=metrics,
            clock=clock,
        ),
    )
