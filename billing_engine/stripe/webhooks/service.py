"""Stripe webhooks: verify, store in the inbox, then apply each event exactly once.

A delivery is verified with the official library, written to the inbox under its event id, and
then handled in one transaction that also marks it handled, so an event is handled only when its
effect committed. Counters and cache invalidations follow the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from billing_core.clock import Clock, utc_now
from billing_core.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidRequest,
    NotConfigured,
    NotFound,
    UnavailableError,
)
from billing_core.plans import PlanCatalog
from billing_engine.customers.service import Customers
from billing_engine.customers.store import OrgRecord
from billing_engine.invoicing.rules import STATUS_AFTER_STRIPE_EVENT
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.payments.rules import PaymentAttempt, PaymentOutcome, Refund
from billing_engine.stripe.client import API_VERSION, ErrorKind, PaymentProvider, ProviderError
from billing_engine.stripe.webhooks.dedup import WebhookDedup
from billing_engine.stripe.webhooks.fields import StripeFields
from billing_engine.stripe.webhooks.payloads import (
    InboxEvent,
    Json,
    PayloadError,
    checkout_org,
    org_hints,
    parse_object,
    read_event,
    subscription_state,
    version_relation,
)
from billing_engine.stripe.webhooks.payment_events import (
    CHARGE_EVENTS,
    INTENT_EVENTS,
    INVOICE_EVENTS,
    INVOICE_PAYMENT_EVENTS,
    FetchedPayment,
    attempt_from_charge,
    attempt_from_intent,
    attempt_from_invoice,
    charge_outcome,
    invoice_amount,
    refunds_of_charge,
    stripe_invoice_of,
)
from billing_engine.stripe.webhooks.signature import SignatureRejected, verify
from billing_engine.stripe.webhooks.store import (
    DONE,
    FAILED,
    HANDLED,
    IGNORED,
    InboxStore,
    StoredEvent,
    Tx,
)
from billing_engine.subscriptions.rules import (
    Verdict,
    compare,
    plan_after_change,
    plan_for_prices,
)

log = logging.getLogger("billing_engine.webhooks")


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    FAILED = "failed"


class WebhooksNotConfigured(NotConfigured):
    code = "webhooks_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "STRIPE_WEBHOOK_SECRET is not set, so no delivery can be verified; nothing was stored"
        )


class TransientFailure(UnavailableError):
    """The database failed while handling; the event is not handled and Stripe should retry."""

    code = "database_unavailable"

    def __init__(self, detail: str, *, stored: bool) -> None:
        super().__init__(detail)
        self.stored = stored

    @property
    def public_message(self) -> str:
        if self.stored:
            return "the event is stored but could not be handled now; Stripe retries it"
        return "the database is unreachable; nothing was stored"


class HandlingError(InvalidRequest):
    """The event cannot take effect as it is; names the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)


class WaitingForOrg(HandlingError):
    """The event belongs to an org we cannot find yet; it applies once the org is known."""


class AlreadyDone(Conflict):
    code = "already_done"

    def __init__(self, event: StoredEvent) -> None:
        super().__init__(
            "event_id", f"was already {event.status}; replaying it would change nothing"
        )
        self.event = event


@dataclass
class Applied:
    status: str = HANDLED
    effect: str = ""
    payments: list[PaymentAttempt] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    orgs_changed: set[str] = field(default_factory=set)
    linked_customer: str | None = None
    # The invoice's payment fetched from Stripe before the transaction (invoice payment events).
    fetched: FetchedPayment | None = None


@dataclass(frozen=True)
class Delivery:
    event_id: str
    type: str
    outcome: Outcome
    status: str  # the inbox status after this delivery
    http_status: int = 200
    effect: str | None = None
    error_field: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "outcome": self.outcome.value,
            "status": self.status,
        }
        if self.effect is not None:
            body["effect"] = self.effect
        if self.error is not None:
            body["error"] = {"field": self.error_field, "reason": self.error}
        return body


Handler = Callable[[Tx, StoredEvent, Json, Applied], tuple[str, str | None]]
# Every type the engine acts on: the events to enable on the Stripe webhook endpoint
# (docs/stripe.md lists them; a test keeps the two equal).
HANDLED_TYPES = (
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    *INVOICE_EVENTS,
    *CHARGE_EVENTS,
    *INTENT_EVENTS,
    "charge.refunded",
)
TRANSIENT_KINDS = (
    ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR, ErrorKind.NETWORK, ErrorKind.CIRCUIT_OPEN
)


class StripeWebhooks:
    def __init__(
        self,
        *,
        store: InboxStore,
        customers: Customers,
        catalog: PlanCatalog,
        dedup: WebhookDedup,
        metrics: EngineMetrics,
        secret: str | None,
        provider: PaymentProvider | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.provider = provider
        self.store = store
        self.customers = customers
        self.catalog = catalog
        self.clock = clock
        self.dedup = dedup
        self.metrics = metrics
        self._secret = secret
        self._handlers: dict[str, Handler] = {
            "checkout.session.completed": self._checkout_completed,
            "customer.subscription.created": self._subscription_changed,
            "customer.subscription.updated": self._subscription_changed,
            "customer.subscription.deleted": self._subscription_changed,
            **{event_type: self._invoice_event for event_type in INVOICE_EVENTS},
            **{event_type: self._charge_event for event_type in CHARGE_EVENTS},
            "payment_intent.payment_failed": self._intent_failed,
            "charge.refunded": self._charge_refunded,
        }

    @property
    def configured(self) -> bool:
        return bool(self._secret)

    # -- deliveries -------------------------------------------------------------------------

    def receive(self, body: bytes, signature: str | None) -> Delivery:
        if not self._secret:
            raise WebhooksNotConfigured()
        try:
            verify(body, signature, self._secret)
        except SignatureRejected as exc:
            self.metrics.webhook_signature_failures.labels(exc.failure.value).inc()
            log.warning("webhook signature refused", extra={"reason": exc.failure.value})
            raise
        event = read_event(body)
        if self.dedup.seen(event.event_id):
            return self._duplicate(event.event_id, event.type, "already handled (fast path)")
        try:
            status = self.store.store_event(
                event_id=event.event_id,
                type=event.type,
                created=event.created,
                livemode=event.livemode,
                customer_id=event.customer_id,
                payload=event.payload,
                now=self.clock(),
            )
        except DatabaseUnavailable as exc:
            self.metrics.webhook_events.labels(Outcome.FAILED.value).inc()
            raise TransientFailure(str(exc), stored=False) from exc
        if status in DONE:
            self.dedup.remember(event.event_id)
            return self._duplicate(event.event_id, event.type, f"already {status}")
        self._check_version(event)
        return self.process(event.event_id, event_type=event.type)

    def _check_version(self, event: InboxEvent) -> None:
        """An event at another API version than the endpoint's pinned one (an endpoint created
        at another version, or Stripe's upgrade of the account) is handled as far as it reads,
        and logged and counted, so the shape drift is seen before it costs data."""
        relation = version_relation(event.api_version, API_VERSION)
        if relation is None:
            return
        self.metrics.webhook_other_version.labels(relation).inc()
        log.warning(
            "stripe event at another API version",
            extra={
                "event_id": event.event_id,
                "type": event.type,
                "api_version": event.api_version or "missing",
                "pinned_version": API_VERSION,
            },
        )

    def _duplicate(self, event_id: str, event_type: str, effect: str) -> Delivery:
        self.metrics.webhook_events.labels(Outcome.DUPLICATE.value).inc()
        return Delivery(event_id, event_type, Outcome.DUPLICATE, HANDLED, effect=effect)

    def process(
        self, event_id: str, *, event_type: str = "", follow_links: bool = True
    ) -> Delivery:
        """Handle a stored event that is not done yet (a delivery, a replay, or a waiting event
        whose org just became known)."""
        now = self.clock()
        try:
            fetched = self._fetch_payment(event_id, event_type)
        except ProviderError as exc:
            reason = f"the invoice's payment could not be fetched from Stripe ({exc.describe()})"
            self._failed(event_id, reason, now)
            return Delivery(
                event_id, event_type, Outcome.FAILED, FAILED, 503,
                error_field="data.object.id", error=reason,
            )
        except DatabaseUnavailable as exc:
            self._failed(event_id, f"database unavailable: {exc}", now)
            raise TransientFailure(str(exc), stored=True) from exc
        try:
            result = self.store.handle(
                event_id, lambda tx, stored: self._apply(tx, stored, fetched), now=now
            )
        except DatabaseUnavailable as exc:
            self._failed(event_id, f"database unavailable: {exc}", now)
            raise TransientFailure(str(exc), stored=True) from exc
        except WaitingForOrg as exc:
            self._failed(event_id, exc.reason, now)
            return Delivery(
                event_id, event_type, Outcome.FAILED, FAILED, 202,
                error_field=exc.field, error=exc.reason,
            )
        except (HandlingError, PayloadError) as exc:
            self._failed(event_id, f"{exc.field}: {exc.reason}", now)
            return Delivery(
                event_id, event_type, Outcome.FAILED, FAILED, 500,
                error_field=exc.field, error=exc.reason,
            )
        except Exception as exc:
            log.exception("webhook handler failed", extra={"event_id": event_id})
            self._failed(event_id, f"{exc.__class__.__name__}: {exc}", now)
            return Delivery(
                event_id, event_type, Outcome.FAILED, FAILED, 500,
                error_field="event", error=f"the handler failed ({exc.__class__.__name__})",
            )
        if result is None:
            self.dedup.remember(event_id)
            return self._duplicate(event_id, event_type, "already handled")
        event, applied = result
        self._after_commit(applied)
        self.dedup.remember(event_id)
        outcome = Outcome.IGNORED if applied.status == IGNORED else Outcome.HANDLED
        self.metrics.webhook_events.labels(outcome.value).inc()
        if event.status == FAILED:  # it was counted as failing until now
            self._refresh_quietly(now)
        log.info("webhook event " + outcome.value, extra={"event_id": event_id, "type": event.type})
        if follow_links and applied.linked_customer:
            self._run_waiting(applied.linked_customer)
        return Delivery(event_id, event.type, outcome, applied.status, effect=applied.effect)

    def _fetch_payment(self, event_id: str, event_type: str) -> FetchedPayment | None:
        """For invoice.paid and invoice.payment_failed, the charge behind the invoice, fetched
        through the Stripe client before the handling transaction opens (a slow Stripe must not
        hold a database transaction). None when there is nothing to fetch or no client to fetch
        it with; ProviderError (after the client's own retries) when Stripe failed, so the event
        fails and Stripe redelivers it. A refusal (a 4xx) is not retried: the event is handled
        without the payment, which its charge event still records."""
        if self.provider is None or (event_type and event_type not in INVOICE_PAYMENT_EVENTS):
            return None
        stored = self.store.get_event(event_id)
        if stored is None or stored.type not in INVOICE_PAYMENT_EVENTS or stored.status in DONE:
            return None
        obj = parse_object(stored.payload)
        invoice_id = StripeFields("invoice", obj).id("id")
        paid = stored.type == "invoice.paid"
        outcome = PaymentOutcome.SUCCEEDED if paid else PaymentOutcome.FAILED
        try:
            if invoice_id is None or invoice_amount(obj, outcome) <= 0:
                return None  # nothing to collect, or nothing to ask about: the handler says so
        except PayloadError:
            return None
        try:
            objects = self.provider.invoice_payment(invoice_id, paid=paid)
        except ProviderError as exc:
            if exc.kind in TRANSIENT_KINDS:
                raise
            log.warning(
                "stripe refused the invoice payment lookup",
                extra={"event_id": event_id, "reason": exc.describe()},
            )
            return None
        if objects is None:
            return None
        return FetchedPayment(payment_intent=objects.payment_intent, charge=objects.charge)

    def replay(self, event_id: str) -> Delivery:
        """Run a stored event that is not done yet again, now."""
        stored = self.store.get_event(event_id)
        if stored is None:
            raise NotFound("event_id", f"no stored Stripe event {event_id!r}")
        if stored.status in DONE:
            raise AlreadyDone(stored)
        log.info("webhook event replayed", extra={"event_id": event_id})
        return self.process(event_id, event_type=stored.type)

    def _failed(self, event_id: str, error: str, now: datetime) -> None:
        self.metrics.webhook_events.labels(Outcome.FAILED.value).inc()
        log.warning("webhook event failed", extra={"event_id": event_id, "reason": error[:300]})
        try:
            self.store.record_failure(event_id, error, now=now)
        except DatabaseUnavailable:
            return  # still pending; the gauges count it once its grace has passed
        self._refresh_quietly(now)

    def _run_waiting(self, customer_id: str) -> None:
        """Events that waited for this customer's org, oldest first, now that it is known."""
        try:
            for waiting in self.store.open_events_of_customer(customer_id):
                self.process(waiting, follow_links=False)
        except (DatabaseUnavailable, TransientFailure):
            log.warning("waiting events left for a later delivery or replay")

    def _after_commit(self, applied: Applied) -> None:
        m = self.metrics
        for attempt in applied.payments:
            m.payments.labels(attempt.outcome.value, attempt.method).inc()
            m.payment_amount_cents.labels(attempt.outcome.value).inc(attempt.amount_cents)
            if attempt.failure_reason is not None:
                m.payment_failures.labels(attempt.failure_reason).inc()
        for refund in applied.refunds:
            m.refunds.inc()
            m.refund_amount_cents.inc(refund.amount_cents)
        for org_id in sorted(applied.orgs_changed):
            self.customers.changed(org_id)

    # -- gauges -----------------------------------------------------------------------------

    def refresh_gauges(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        count, oldest = self.store.failing_summary(now=now)
        self.metrics.webhook_events_failing.set(count)
        age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        self.metrics.webhook_oldest_failing_age.set(age)

    def _refresh_quietly(self, now: datetime) -> None:
        try:
            self.refresh_gauges(now)
        except DatabaseUnavailable:
            pass

    def failing(self, *, limit: int) -> dict[str, Any]:
        now = self.clock()
        count, oldest = self.store.failing_summary(now=now)
        events = self.store.list_failing(now=now, limit=limit)
        return {
            "count": count,
            "oldest_received_at": None if oldest is None else oldest.isoformat(),
            "events": [e.as_json() for e in events],
            "hint": "fix the cause, then POST /admin/webhooks/{event_id}/replay, oldest first",
            "as_of": now.isoformat(),
        }

    # -- effects (inside the handling transaction) ------------------------------------------

    def _apply(
        self, tx: Tx, event: StoredEvent, fetched: FetchedPayment | None = None
    ) -> tuple[str, str, str | None, Applied]:
        applied = Applied(fetched=fetched)
        handler = self._handlers.get(event.type)
        if handler is None:
            applied.status, applied.effect = IGNORED, f"{event.type} is not acted on"
            return applied.status, applied.effect, None, applied
        effect, org_id = handler(tx, event, parse_object(event.payload), applied)
        applied.effect = effect[:200]
        return HANDLED, applied.effect, org_id, applied

    def _org_of(self, tx: Tx, obj: Json, applied: Applied, kind: str) -> OrgRecord:
        """By the Stripe customer first, then by metadata.org_id (linking the customer to an org
        that has none yet)."""
        customer = StripeFields(kind, obj).id("customer")
        if customer:
            org = tx.org_for_customer(customer)
            if org is not None:
                return org
        hints = org_hints(obj, kind)
        for hint in hints:
            org = tx.org(hint)
            if org is None:
                continue
            if customer and org.stripe_customer_id is None:
                tx.link_customer(org.id, customer)
                applied.linked_customer = customer
                applied.orgs_changed.add(org.id)
            return org
        named = f"metadata.org_id {hints[0]!r} names no org here" if hints else "no metadata.org_id"
        if customer:
            raise WaitingForOrg(
                "data.object.customer", f"no org is linked to Stripe customer {customer} ({named})"
            )
        raise WaitingForOrg("data.object.metadata.org_id", f"no Stripe customer and {named}")

    def _checkout_completed(
        self, tx: Tx, event: StoredEvent, obj: Json, applied: Applied
    ) -> tuple[str, str | None]:
        org_id = checkout_org(obj)
        customer = StripeFields("checkout.session", obj).id("customer")
        if org_id is None:
            org = self._org_of(tx, obj, applied, "checkout.session")
        else:
            found = tx.org(org_id)
            if found is None:
                raise WaitingForOrg(
                    "data.object.client_reference_id", f"names org {org_id!r}, which does not exist"
                )
            org = found
        if not customer:
            return "checkout completed without a Stripe customer: nothing to link", org.id
        if org.stripe_customer_id == customer:
            return f"org already linked to {customer}", org.id
        if org.stripe_customer_id:
            log.warning("org linked to a new Stripe customer", extra={"org_id": org.id})
        tx.link_customer(org.id, customer)
        applied.linked_customer = customer
        applied.orgs_changed.add(org.id)
        return f"linked org to Stripe customer {customer}", org.id

    def _subscription_changed(
        self, tx: Tx, event: StoredEvent, obj: Json, applied: Applied
    ) -> tuple[str, str | None]:
        state = subscription_state(obj, event_created=event.created)
        org = self._org_of(tx, obj, applied, "subscription")
        stored = tx.subscription(state.subscription_id, org_id=org.id)
        verdict = compare(stored[0] if stored else None, state)
        if verdict is not Verdict.APPLY and stored is not None:
            kept, source = stored
            return (
                f"{verdict.value}: kept {kept.status} from {source} for {state.subscription_id}",
                org.id,
            )
        catalog = self.catalog
        plan = plan_for_prices(catalog, state.price_ids)
        if plan is None and state.live:
            raise HandlingError(
                "data.object.items",
                f"prices {list(state.price_ids)} map to no plan: set stripe_price_id in the plans "
                "file",
            )
        tx.save_subscription(
            state, org_id=org.id, plan=None if plan is None else plan.code, event_id=event.event_id
        )
        new_plan = plan_after_change(catalog, tx.org_subscriptions(org.id))
        if new_plan is not None and new_plan != org.plan:
            tx.set_org_plan(org.id, new_plan)
        applied.orgs_changed.add(org.id)
        return (
            f"subscription {state.subscription_id} {state.status}; org on {new_plan or org.plan}",
            org.id,
        )

    def _record_attempt(self, tx: Tx, attempt: PaymentAttempt, applied: Applied) -> str:
        if attempt.amount_cents <= 0:
            return "nothing to collect (amount 0): no payment attempt"
        if not tx.add_payment(attempt):
            what = f"charge {attempt.charge_id}" if attempt.charge_id else "this event's attempt"
            return f"payment attempt already recorded for {what}; details filled in"
        applied.payments.append(attempt)
        what = f"{attempt.outcome.value} payment of {attempt.amount_cents} {attempt.currency}"
        what += f" by {attempt.method}"
        if attempt.failure_reason:
            what += f" ({attempt.failure_reason})"
        return what

    def _invoice_event(
        self, tx: Tx, event: StoredEvent, obj: Json, applied: Applied
    ) -> tuple[str, str | None]:
        """Stripe's invoice stored and linked to ours; for .paid and .payment_failed, the payment
        attempt behind it from the charge fetched before the transaction."""
        org = self._org_of(tx, obj, applied, "invoice")
        invoice = stripe_invoice_of(obj, org_id=org.id, event_created=event.created)
        name = invoice.number or invoice.stripe_invoice_id
        if not tx.save_stripe_invoice(invoice):
            effect = f"Stripe invoice {name}: a newer event already recorded it"
        elif invoice.period and tx.link_stripe_invoice(
            org_id=org.id, period_key=invoice.period,
            stripe_invoice_id=invoice.stripe_invoice_id,
            status=STATUS_AFTER_STRIPE_EVENT.get(event.type),
        ):
            effect = f"Stripe invoice {name} {invoice.status}, linked to our {invoice.period}"
        else:
            effect = f"Stripe invoice {name} {invoice.status} recorded"
        if event.type not in INVOICE_PAYMENT_EVENTS:
            return effect, org.id
        outcome = (
            PaymentOutcome.SUCCEEDED if event.type == "invoice.paid" else PaymentOutcome.FAILED
        )
        if invoice_amount(obj, outcome) <= 0:
            return f"{effect}; nothing to collect (amount 0): no payment attempt", org.id
        if applied.fetched is None:
            return f"{effect}; the payment is recorded from its charge event", org.id
        attempt = attempt_from_invoice(
            obj, applied.fetched, event_id=event.event_id, org_id=org.id, outcome=outcome,
            at=event.created,
        )
        if attempt is None:
            return f"{effect}; Stripe lists no charge for it", org.id
        return f"{effect}; {self._record_attempt(tx, attempt, applied)}", org.id

    def _charge_event(
        self, tx: Tx, event: StoredEvent, obj: Json, applied: Applied
    ) -> tuple[str, str | None]:
        org = self._org_of(tx, obj, applied, "charge")
        if charge_outcome(obj) is None:
            return "charge still pending: recorded when it succeeds or fails", org.id
        attempt = attempt_from_charge(
            obj, event_id=event.event_id, org_id=org.id, at=event.created
        )
        return self._record_attempt(tx, attempt, applied), org.id

    def _intent_failed(
        self, tx: Tx, event: StoredEvent, obj: Json, applied: Applied
    ) -> tuple[str, str | None]:
        org = self._org_of(tx, obj, applied, "payment_intent")
        attempt = attempt_from_intent(
            obj, event_id=event.event_id, org_id=org.id, at=event.created
        )
        return self._record_attempt(tx, attempt, applied), org.id

    def _charge_refunded(
        self, tx: Tx, event: StoredEvent, obj: Json, applied: Applied
    ) -> tuple[str, str | None]:
        org = self._org_of(tx, obj, applied, "charge")
        charge = StripeFields("charge", obj)
        charge_id = charge.id("id")
        already = tx.refunded_for_charge(charge_id, org_id=org.id) if charge_id else 0
        found, total = refunds_of_charge(
            obj, event_id=event.event_id, org_id=org.id, already_refunded_cents=already,
            at=event.created,
        )
        for refund in found:
            if tx.add_refund(refund):
                applied.refunds.append(refund)
        if charge_id:
            recorded = tx.refunded_for_charge(charge_id, org_id=org.id)
            tx.set_refunded(
                org_id=org.id,
                charge_id=charge_id,
                payment_intent_id=charge.id("payment_intent"),
                cents=max(total, recorded),
            )
        cents = sum(r.amount_cents for r in applied.refunds)
        return f"{len(applied.refunds)} refund(s) recorded, {cents} cents", org.id
