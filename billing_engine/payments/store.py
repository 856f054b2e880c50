"""Payment attempts and refunds. Every statement is parameterised.

They are written inside the Stripe webhook transaction that handles their event (the functions
taking a connection), and read by support and deleted by retention (PaymentStore).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from billing_engine.db.database import Store
from billing_engine.payments.rules import PaymentAttempt, Refund
from billing_engine.payments.tables import payment_attempts, refunds


def add_payment(conn: Connection, attempt: PaymentAttempt, *, now: datetime) -> bool:
    """True when this is a new attempt; False when this event's attempt, or its charge, is
    already recorded.

    An attempt is its charge: charge.failed, payment_intent.payment_failed and
    invoice.payment_failed all describe one, so a later event about a recorded charge only fills
    in what the earlier ones lacked (the invoice, the intent, the decline) and is not counted."""
    exists = conn.execute(
        select(payment_attempts.c.id).where(
            payment_attempts.c.org_id == attempt.org_id,
            payment_attempts.c.event_id == attempt.event_id,
        )
    ).first()
    if exists is not None:
        return False
    if attempt.charge_id:
        same = conn.execute(
            select(payment_attempts).where(
                payment_attempts.c.org_id == attempt.org_id,
                payment_attempts.c.charge_id == attempt.charge_id,
            )
        ).first()
        if same is not None:
            _fill_in(conn, same, attempt)
            return False
    refunded = 0
    if attempt.charge_id or attempt.payment_intent_id:
        refunded = int(
            conn.execute(
                select(func.coalesce(func.sum(refunds.c.amount_cents), 0)).where(
                    refunds.c.org_id == attempt.org_id,
                    _refund_matches(attempt.charge_id, attempt.payment_intent_id),
                )
            ).scalar_one()
        )
    conn.execute(
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
            recorded_at=now,
        )
    )
    return True



def _fill_in(conn: Connection, row: Any, attempt: PaymentAttempt) -> None:
    values: dict[str, Any] = {}
    for name in (
        "customer_id", "invoice_id", "payment_intent_id", "attempt_number", "failure_code",
        "failure_reason", "failure_message",
    ):
        new = getattr(attempt, name)
        if getattr(row, name) is None and new is not None:
            values[name] = new
    if row.method == "other" and attempt.method != "other":
        values["method"] = attempt.method
    if row.failure_reason == "other" and attempt.failure_reason not in (None, "other"):
        values["failure_reason"] = attempt.failure_reason
        values["failure_code"] = attempt.failure_code
    if values:
        conn.execute(
            payment_attempts.update()
            .where(payment_attempts.c.org_id == row.org_id, payment_attempts.c.id == row.id)
            .values(**values)
        )


def refunded_for_charge(conn: Connection, charge_id: str, *, org_id: str) -> int:
    return int(
        conn.execute(
            select(func.coalesce(func.sum(refunds.c.amount_cents), 0)).where(
                refunds.c.org_id == org_id, refunds.c.charge_id == charge_id
            )
        ).scalar_one()
    )



def add_refund(conn: Connection, refund: Refund, *, now: datetime) -> bool:
    exists = conn.execute(
        select(refunds.c.refund_key).where(
            refunds.c.org_id == refund.org_id, refunds.c.refund_key == refund.refund_key
        )
    ).first()
    if exists is not None:
        return False
    conn.execute(
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
            recorded_at=now,
        )
    )
    return True



def set_refunded(
    conn: Connection, *, org_id: str, charge_id: str, payment_intent_id: str | None, cents: int
) -> None:
    """Record a charge's cumulative refunded amount on the attempt that paid it."""
    matches = [payment_attempts.c.charge_id == charge_id]
    if payment_intent_id:
        matches.append(payment_attempts.c.payment_intent_id == payment_intent_id)
    conn.execute(
        payment_attempts.update()
        .where(
            payment_attempts.c.org_id == org_id,
            or_(*matches),
            payment_attempts.c.outcome == "succeeded",
        )
        .values(refunded_cents=cents)
    )


def _refund_matches(charge_id: str | None, intent_id: str | None) -> Any:
    conditions = []
    if charge_id:
        conditions.append(refunds.c.charge_id == charge_id)
    if intent_id:
        conditions.append(refunds.c.payment_intent_id == intent_id)
    return or_(*conditions)


class PaymentStore(Store):
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

    def delete_before(self, cutoff: datetime) -> tuple[int, int]:
        """Delete payment attempts and refunds from before `cutoff`; returns both counts."""

        def work(conn: Connection) -> tuple[int, int]:
            attempts = conn.execute(
                payment_attempts.delete().where(payment_attempts.c.attempted_at < cutoff)
            ).rowcount
            gone_refunds = conn.execute(
                refunds.delete().where(refunds.c.refunded_at < cutoff)
            ).rowcount
            return int(attempts), int(gone_refunds)

        return self._run(work, write=True)
