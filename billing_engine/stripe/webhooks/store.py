"""Queries and writes for the Stripe inbox, subscriptions, payments and refunds.

Handling an event is one transaction: claim the inbox row, apply the effect through `Tx`, mark
the row handled. Every statement is parameterised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, func, or_, select, text

from billing_engine.db.repository import OrgRecord, Repository, _org
from billing_engine.db.schema import orgs
from billing_engine.stripe.webhooks.tables import (
    payment_attempts,
    refunds,
    stripe_events,
    subscriptions,
)
from billing_engine.subscriptions.rules import (
    PaymentAttempt,
    Refund,
    SubscriptionState,
)

T = TypeVar("T")
PENDING, HANDLED, IGNORED, FAILED = "pending", "handled", "ignored", "failed"
DONE = (HANDLED, IGNORED)
OPEN = (PENDING, FAILED)
# A pending row younger than this is an attempt still running, not a failing event.
PENDING_GRACE_SECONDS = 60


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


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
        created=_utc(row.created_at),
        livemode=bool(row.livemode),
        customer_id=row.customer_id,
        payload=row.payload,
        status=row.status,
        attempts=int(row.attempts),
        last_error=row.last_error,
        effect=row.effect,
        org_id=row.org_id,
        received_at=_utc(row.received_at),
        last_attempt_at=_utc_or_none(row.last_attempt_at),
        handled_at=_utc_or_none(row.handled_at),
    )


def _subscription(row: Any) -> SubscriptionState:
    return SubscriptionState(
        subscription_id=row.id,
        customer_id=row.customer_id,
        status=row.status,
        price_ids=tuple(row.price_ids.split()) if row.price_ids else (),
        current_period_start=_utc_or_none(row.current_period_start),
        current_period_end=_utc_or_none(row.current_period_end),
        cancel_at_period_end=bool(row.cancel_at_period_end),
        event_created=_utc(row.event_created_at),
    )


class Tx:
    """What an event handler may do, inside the transaction that marks the event handled."""

    def __init__(self, conn: Connection, store: StripeStore, now: datetime) -> None:
        self.conn = conn
        self.store = store
        self.now = now

    def org(self, org_id: str) -> OrgRecord | None:
        row = self.conn.execute(select(orgs).where(orgs.c.id == org_id)).first()
        return None if row is None else _org(row)

    def org_for_customer(self, customer_id: str) -> OrgRecord | None:
        row = self.conn.execute(
            select(orgs).where(orgs.c.stripe_customer_id == customer_id).order_by(orgs.c.id)
        ).first()
        return None if row is None else _org(row)

    def link_customer(self, org_id: str, customer_id: str) -> None:
        self.conn.execute(
            orgs.update()
            .where(orgs.c.id == org_id)
            .values(stripe_customer_id=customer_id, updated_at=self.now)
        )

    def set_org_plan(self, org_id: str, plan: str) -> None:
        self.conn.execute(
            orgs.update().where(orgs.c.id == org_id).values(plan=plan, updated_at=self.now)
        )

    # -- subscriptions ----------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> tuple[SubscriptionState, str] | None:
        """The stored state and the event id it came from."""
        row = self.conn.execute(
            select(subscriptions).where(subscriptions.c.id == subscription_id)
        ).first()
        return None if row is None else (_subscription(row), row.event_id)

    def save_subscription(
        self, state: SubscriptionState, *, org_id: str, plan: str | None, event_id: str
    ) -> None:
        values = {
            "org_id": org_id,
            "customer_id": state.customer_id,
            "status": state.status[:32],
            "price_ids": " ".join(state.price_ids)[:1000],
            "plan": plan,
            "current_period_start": state.current_period_start,
            "current_period_end": state.current_period_end,
            "cancel_at_period_end": state.cancel_at_period_end,
            "event_created_at": state.event_created,
            "event_id": event_id,
            "updated_at": self.now,
        }
        updated = self.conn.execute(
            subscriptions.update()
            .where(subscriptions.c.id == state.subscription_id)
            .values(**values)
        )
        if updated.rowcount == 0:
            self.conn.execute(subscriptions.insert().values(id=state.subscription_id, **values))

    def org_subscriptions(self, org_id: str) -> list[SubscriptionState]:
        rows = self.conn.execute(select(subscriptions).where(subscriptions.c.org_id == org_id))
        return [_subscription(r) for r in rows]

    # -- payments ---------------------------------------------------------------------------

    def add_payment(self, attempt: PaymentAttempt) -> bool:
        """False when this event's attempt is already recorded."""
        exists = self.conn.execute(
            select(payment_attempts.c.id).where(payment_attempts.c.event_id == attempt.event_id)
        ).first()
        if exists is not None:
            return False
        refunded = 0
        if attempt.charge_id or attempt.payment_intent_id:
            refunded = int(
                self.conn.execute(
                    select(func.coalesce(func.sum(refunds.c.amount_cents), 0)).where(
                        _refund_matches(attempt.charge_id, attempt.payment_intent_id)
                    )
                ).scalar_one()
            )
        self.conn.execute(
            payment_attempts.insert().values(
                event_id=attempt.event_id,
                org_id=attempt.org_id,
                customer_id=attempt.customer_id,
                invoice_id=attempt.invoice_id,
                charge_id=attempt.charge_id,
                payment_intent_id=attempt.payment_intent_id,
                amount_cents=attempt.amount_cents,
                currency=attempt.currency,
                outcome=attempt.outcome.value,
                method=attempt.method,
                failure_code=attempt.failure_code,
                failure_reason=attempt.failure_reason,
                failure_message=attempt.failure_message,
                attempt_number=attempt.attempt_number,
                refunded_cents=refunded,
                attempted_at=attempt.attempted_at,
                recorded_at=self.now,
            )
        )
        return True

    def refunded_for_charge(self, charge_id: str) -> int:
        return int(
            self.conn.execute(
                select(func.coalesce(func.sum(refunds.c.amount_cents), 0)).where(
                    refunds.c.charge_id == charge_id
                )
            ).scalar_one()
        )

    def add_refund(self, refund: Refund) -> bool:
        exists = self.conn.execute(
            select(refunds.c.refund_key).where(refunds.c.refund_key == refund.refund_key)
        ).first()
        if exists is not None:
            return False
        self.conn.execute(
            refunds.insert().values(
                refund_key=refund.refund_key,
                event_id=refund.event_id,
                org_id=refund.org_id,
                charge_id=refund.charge_id,
                payment_intent_id=refund.payment_intent_id,
                amount_cents=refund.amount_cents,
                currency=refund.currency,
                reason=refund.reason,
                refunded_at=refund.refunded_at,
                recorded_at=self.now,
            )
        )
        return True

    def set_refunded(self, *, charge_id: str, payment_intent_id: str | None, cents: int) -> None:
        """Record a charge's cumulative refunded amount on the attempt that paid it."""
        matches = [payment_attempts.c.charge_id == charge_id]
        if payment_intent_id:
            matches.append(payment_attempts.c.payment_intent_id == payment_intent_id)
        self.conn.execute(
            payment_attempts.update()
            .where(or_(*matches), payment_attempts.c.outcome == "succeeded")
            .values(refunded_cents=cents)
        )


def _refund_matches(charge_id: str | None, intent_id: str | None) -> Any:
    conditions = []
    if charge_id:
        conditions.append(refunds.c.charge_id == charge_id)
    if intent_id:
        conditions.append(refunds.c.payment_intent_id == intent_id)
    return or_(*conditions)


class StripeStore:
    def __init__(self, repository: Repository, *, lock_timeout_ms: int = 5000) -> None:
        self.repo = repository
        self.db = repository.db
        self.lock_timeout_ms = lock_timeout_ms

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        return self.repo._run(work, write=write)

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
            stmt = self.repo._insert(stripe_events).values(
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
            status, effect, org_id, extra = apply(Tx(conn, self, now), event)
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
        return int(count), _utc_or_none(oldest)

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

    # -- reads for the API and entitlements -------------------------------------------------

    def subscriptions_of(self, org_ids: Iterable[str]) -> dict[str, list[SubscriptionState]]:
        wanted = sorted(set(org_ids))
        if not wanted:
            return {}
        query = select(subscriptions).where(subscriptions.c.org_id.in_(wanted))
        found: dict[str, list[SubscriptionState]] = {}
        for row in self._run(lambda c: c.execute(query).all()):
            found.setdefault(row.org_id, []).append(_subscription(row))
        return found

    def orgs_with_subscriptions(
        self, org_ids: Iterable[str]
    ) -> dict[str, tuple[OrgRecord, list[SubscriptionState]]]:
        """Orgs and their subscriptions in one query (entitlements on a cache miss)."""
        wanted = sorted(set(org_ids))
        if not wanted:
            return {}
        sub_cols = [c.label(f"sub_{c.name}") for c in subscriptions.c]
        query = (
            select(orgs, *sub_cols)
            .select_from(orgs.outerjoin(subscriptions, subscriptions.c.org_id == orgs.c.id))
            .where(orgs.c.id.in_(wanted))
        )
        found: dict[str, tuple[OrgRecord, list[SubscriptionState]]] = {}
        for row in self._run(lambda c: c.execute(query).all()):
            org_id = row.id
            if org_id not in found:
                found[org_id] = (_org(row), [])
            if row.sub_id is not None:
                sub = {c.name: getattr(row, f"sub_{c.name}") for c in subscriptions.c}
                found[org_id][1].append(_subscription(_Row(sub)))
        return found

    def payments_of(self, org_id: str, *, limit: int) -> tuple[list[Any], list[Any]]:
        attempts = (
            select(payment_attempts)
            .where(payment_attempts.c.org_id == org_id)
            .order_by(payment_attempts.c.attempted_at.desc(), payment_attempts.c.id.desc())
            .limit(limit)
        )
        refund_rows = (
            select(refunds)
            .where(refunds.c.org_id == org_id)
            .order_by(refunds.c.refunded_at.desc(), refunds.c.refund_key)
            .limit(limit)
        )

        def work(conn: Connection) -> tuple[list[Any], list[Any]]:
            return list(conn.execute(attempts).all()), list(conn.execute(refund_rows).all())

        return self._run(work)

    # -- retention --------------------------------------------------------------------------

    def delete_payments_before(self, cutoff: datetime) -> tuple[int, int, int]:
        """Delete payment attempts and refunds from before `cutoff`, and inbox rows of events
        done before it; returns the three counts."""

        def work(conn: Connection) -> tuple[int, int, int]:
            attempts = conn.execute(
                payment_attempts.delete().where(payment_attempts.c.attempted_at < cutoff)
            ).rowcount
            gone_refunds = conn.execute(
                refunds.delete().where(refunds.c.refunded_at < cutoff)
            ).rowcount
            events = conn.execute(
                stripe_events.delete().where(
                    stripe_events.c.status.in_(DONE), stripe_events.c.handled_at < cutoff
                )
            ).rowcount
            return int(attempts), int(gone_refunds), int(events)

        return self._run(work, write=True)


class _Row:
    """Attribute access over a dict, so joined columns reuse the row readers."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
