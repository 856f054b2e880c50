"""The Stripe webhook inbox, and what an event's effect may do inside its transaction.

Handling an event is one transaction: claim the inbox row, apply the effect through `Tx`, mark
the row handled. `Tx` only offers what the effects need, each write done by the store of the
concept it belongs to (orgs, subscriptions, payments, invoices). Every statement is parameterised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, func, or_, select, text

from billing_core.sql import utc, utc_or_none
from billing_engine.customers import store as org_rows
from billing_engine.customers.store import OrgRecord
from billing_engine.db.database import Database, Store
from billing_engine.invoicing import store as invoice_rows
from billing_engine.invoicing.rules import StripeInvoice
from billing_engine.payments import store as payment_rows
from billing_engine.payments.rules import PaymentAttempt, Refund
from billing_engine.stripe.webhooks.tables import stripe_events
from billing_engine.subscriptions import store as subscription_rows
from billing_engine.subscriptions.rules import SubscriptionState

T = TypeVar("T")
PENDING, HANDLED, IGNORED, FAILED = "pending", "handled", "ignored", "failed"
DONE = (HANDLED, IGNORED)
OPEN = (PENDING, FAILED)
# A pending row younger than this is an attempt still running, not a failing event.
PENDING_GRACE_SECONDS = 60


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    type: str
    created: datetime
    livemode: bool
    customer_id: str | None
    payload: str
    status: str
    attempts: int
    last_error: str | None
    effect: str | None
    org_id: str | None
    received_at: datetime
    last_attempt_at: datetime | None
    handled_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "status": self.status,
            "created": self.created.isoformat(),
            "livemode": self.livemode,
            "customer_id": self.customer_id,
            "org_id": self.org_id,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "effect": self.effect,
            "received_at": self.received_at.isoformat(),
            "last_attempt_at": _iso(self.last_attempt_at),
            "handled_at": _iso(self.handled_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        event_id=row.event_id,
        type=row.type,
        created=utc(row.created_at),
        livemode=bool(row.livemode),
        customer_id=row.customer_id,
        payload=row.payload,
        status=row.status,
        attempts=int(row.attempts),
        last_error=row.last_error,
        effect=row.effect,
        org_id=row.org_id,
        received_at=utc(row.received_at),
        last_attempt_at=utc_or_none(row.last_attempt_at),
        handled_at=utc_or_none(row.handled_at),
    )


class Tx:
    """What an event's effect may do, inside the transaction that marks the event handled."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def org(self, org_id: str) -> OrgRecord | None:
        return org_rows.org_by_id(self.conn, org_id)

    def org_for_customer(self, customer_id: str) -> OrgRecord | None:
        return org_rows.org_for_customer(self.conn, customer_id)

    def link_customer(self, org_id: str, customer_id: str) -> None:
        org_rows.link_customer(self.conn, org_id, customer_id, now=self.now)

    def set_org_plan(self, org_id: str, plan: str) -> None:
        org_rows.set_org_plan(self.conn, org_id, plan, now=self.now)

    def subscription(
        self, subscription_id: str, *, org_id: str
    ) -> tuple[SubscriptionState, str] | None:
        return subscription_rows.subscription_by_id(self.conn, subscription_id, org_id=org_id)

    def save_subscription(
        self, state: SubscriptionState, *, org_id: str, plan: str | None, event_id: str
    ) -> None:
        subscription_rows.save_subscription(
            self.conn, state, org_id=org_id, plan=plan, event_id=event_id, now=self.now
        )

    def org_subscriptions(self, org_id: str) -> list[SubscriptionState]:
        return subscription_rows.subscriptions_of_org(self.conn, org_id)

    def add_payment(self, attempt: PaymentAttempt) -> bool:
        return payment_rows.add_payment(self.conn, attempt, now=self.now)

    def refunded_for_charge(self, charge_id: str, *, org_id: str) -> int:
        return payment_rows.refunded_for_charge(self.conn, charge_id, org_id=org_id)

    def add_refund(self, refund: Refund) -> bool:
        return payment_rows.add_refund(self.conn, refund, now=self.now)

    def set_refunded(
        self, *, org_id: str, charge_id: str, payment_intent_id: str | None, cents: int
    ) -> None:
        payment_rows.set_refunded(
            self.conn, org_id=org_id, charge_id=charge_id, payment_intent_id=payment_intent_id,
            cents=cents,
        )

    def save_stripe_invoice(self, invoice: StripeInvoice) -> bool:
        return invoice_rows.save_stripe_invoice(self.conn, invoice, now=self.now)

    def link_stripe_invoice(
        self, *, org_id: str, period_key: str, stripe_invoice_id: str, status: str | None
    ) -> bool:
        return invoice_rows.link_stripe_invoice(
            self.conn, org_id=org_id, period_key=period_key,
            stripe_invoice_id=stripe_invoice_id, status=status,
        )


class InboxStore(Store):
    def __init__(self, database: Database, *, lock_timeout_ms: int = 5000) -> None:
        super().__init__(database)
        self.lock_timeout_ms = lock_timeout_ms

    # -- inbox ------------------------------------------------------------------------------

    def store_event(
        self,
        *,
        event_id: str,
        type: str,
        created: datetime,
        livemode: bool,
        customer_id: str | None,
        payload: str,
        now: datetime,
    ) -> str:
        """Write the event unless its id is already stored; returns the row's status."""

        def work(conn: Connection) -> str:
            existing = conn.execute(
                select(stripe_events.c.status).where(stripe_events.c.event_id == event_id)
            ).first()
            if existing is not None:
                return str(existing.status)
            stmt = self._insert(stripe_events).values(
                event_id=event_id,
                type=type,
                created_at=created,
                livemode=livemode,
                customer_id=customer_id,
                payload=payload,
                status=PENDING,
                attempts=0,
                received_at=now,
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[stripe_events.c.event_id]))
            status = conn.execute(
                select(stripe_events.c.status).where(stripe_events.c.event_id == event_id)
            ).scalar_one()
            return str(status)

        return self._run(work, write=True)

    def handle(
        self,
        event_id: str,
        apply: Callable[[Tx, StoredEvent], tuple[str, str, str | None, T]],
        *,
        now: datetime,
    ) -> tuple[StoredEvent, T] | None:
        """Claim an open event, apply it and mark it done, in one transaction.

        `apply` returns (status, effect description, org id, anything for the caller). None
        when the event is already done (handled by an earlier or a concurrent delivery)."""

        def work(conn: Connection) -> tuple[StoredEvent, T] | None:
            if self.db.is_postgres:
                # A webhook must not wait on a lock for long: Stripe gives up and retries anyway.
                conn.execute(text(f"SET LOCAL lock_timeout = {int(self.lock_timeout_ms)}"))
            # Writing first takes the row lock (PostgreSQL) or the write lock (SQLite), so two
            # deliveries of one event cannot both apply it.
            claimed = conn.execute(
                stripe_events.update()
                .where(stripe_events.c.event_id == event_id, stripe_events.c.status.in_(OPEN))
                .values(last_attempt_at=now)
            )
            if claimed.rowcount == 0:
                return None
            row = conn.execute(
                select(stripe_events).where(stripe_events.c.event_id == event_id)
            ).one()
            event = _event(row)
            status, effect, org_id, extra = apply(Tx(conn, now), event)
            conn.execute(
                stripe_events.update()
                .where(stripe_events.c.event_id == event_id)
                .values(
                    status=status,
                    attempts=stripe_events.c.attempts + 1,
                    effect=effect[:200],
                    org_id=org_id,
                    handled_at=now,
                )
            )
            return event, extra

        return self._run(work, write=True)

    def record_failure(self, event_id: str, error: str, *, now: datetime) -> None:
        self._run(
            lambda conn: conn.execute(
                stripe_events.update()
                .where(stripe_events.c.event_id == event_id, stripe_events.c.status.in_(OPEN))
                .values(
                    status=FAILED,
                    attempts=stripe_events.c.attempts + 1,
                    last_error=error[:1000],
                    last_attempt_at=now,
                )
            ),
            write=True,
        )

    def get_event(self, event_id: str) -> StoredEvent | None:
        row = self._run(
            lambda c: c.execute(
                select(stripe_events).where(stripe_events.c.event_id == event_id)
            ).first()
        )
        return None if row is None else _event(row)

    def _failing_condition(self, now: datetime) -> Any:
        cutoff = now.timestamp() - PENDING_GRACE_SECONDS
        return or_(
            stripe_events.c.status == FAILED,
            and_(
                stripe_events.c.status == PENDING,
                stripe_events.c.received_at < datetime.fromtimestamp(cutoff, UTC),
            ),
        )

    def failing_summary(self, *, now: datetime) -> tuple[int, datetime | None]:
        """How many events keep failing, and when the oldest of them arrived."""
        query = select(func.count(), func.min(stripe_events.c.received_at)).where(
            self._failing_condition(now)
        )
        count, oldest = self._run(lambda c: c.execute(query).one())
        return int(count), utc_or_none(oldest)

    def list_failing(self, *, now: datetime, limit: int) -> list[StoredEvent]:
        query = (
            select(stripe_events)
            .where(self._failing_condition(now))
            .order_by(stripe_events.c.created_at, stripe_events.c.event_id)
            .limit(limit)
        )
        return [_event(r) for r in self._run(lambda c: c.execute(query).all())]

    def open_events_of_customer(self, customer_id: str) -> list[str]:
        """Stored events of a customer that are not done yet, oldest event first."""
        query = (
            select(stripe_events.c.event_id)
            .where(stripe_events.c.customer_id == customer_id, stripe_events.c.status.in_(OPEN))
            .order_by(stripe_events.c.created_at, stripe_events.c.event_id)
            .limit(100)
        )
        return [r.event_id for r in self._run(lambda c: c.execute(query).all())]

    def delete_done_before(self, cutoff: datetime) -> int:
        """Delete inbox rows of events done before `cutoff` (Stripe stopped redelivering)."""
        stmt = stripe_events.delete().where(
            stripe_events.c.status.in_(DONE), stripe_events.c.handled_at < cutoff
        )
        return int(self._run(lambda c: c.execute(stmt).rowcount, write=True))
