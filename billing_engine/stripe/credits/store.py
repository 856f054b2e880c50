"""The Stripe side of credits: which credits are due to be sent, their lease, their outcome.

A credit is sent by whoever holds its lease (`stripe_claimed_until`): the request that granted
it, or the housekeeping job that retries. The lease is taken by a conditional UPDATE, so two
senders never hold one credit at once; should a sender die after Stripe answered, the retry
sends the same Idempotency-Key and Stripe answers with the transaction it already made.
Every statement is parameterised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.invoicing.tables import credits

PENDING, SENT, FAILED, LEGACY = "pending", "sent", "failed", "legacy"
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class CreditToSend:
    credit_id: int
    org_id: str
    stripe_customer_id: str
    amount_cents: int
    reason: str
    attempts: int
    retries: int = 0  # admin retries after a refusal


def _this(credit: CreditToSend) -> ColumnElement[bool]:
    """The credit by its key (org and id), which its index leads with."""
    return and_(credits.c.org_id == credit.org_id, credits.c.id == credit.credit_id)


class StripeCreditStore(Store):
    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        c = credits.c
        return and_(
            c.stripe_status == PENDING,
            or_(c.stripe_next_attempt_at.is_(None), c.stripe_next_attempt_at <= now),
            or_(c.stripe_claimed_until.is_(None), c.stripe_claimed_until < now),
        )

    def claim(self, *, now: datetime, limit: int, credit_id: int | None = None
              ) -> list[CreditToSend]:
        """Lease up to `limit` due credits of orgs linked to a Stripe customer (or just
        `credit_id`), oldest first. A credit of an org without a customer waits."""
        c = credits.c

        def work(conn: Connection) -> list[CreditToSend]:
            query = (
                select(c.id, c.org_id, c.amount_cents, c.reason, c.stripe_attempts,
                       c.stripe_retries, orgs.c.stripe_customer_id)
                .join(orgs, orgs.c.id == c.org_id)
                .where(self._claimable(now), orgs.c.stripe_customer_id.is_not(None))
                .order_by(c.granted_at, c.id)
                .limit(limit)
            )
            if credit_id is not None:
                query = query.where(c.id == credit_id)
            claimed = []
            for row in conn.execute(query).all():
                taken = conn.execute(
                    credits.update()
                    .where(c.org_id == row.org_id, c.id == row.id, self._claimable(now))
                    .values(stripe_claimed_until=now + LEASE)
                )
                if taken.rowcount == 1:
                    claimed.append(CreditToSend(
                        credit_id=int(row.id), org_id=row.org_id,
                        stripe_customer_id=row.stripe_customer_id,
                        amount_cents=int(row.amount_cents), reason=row.reason,
                        attempts=int(row.stripe_attempts), retries=int(row.stripe_retries),
                    ))
            return claimed

        return self._run(work, write=True)

    def mark_sent(self, credit: CreditToSend, *, transaction_id: str, now: datetime) -> None:
        c = credits.c
        self._run(lambda conn: conn.execute(
            credits.update().where(_this(credit), c.stripe_status == PENDING).values(
                stripe_status=SENT, stripe_balance_transaction_id=transaction_id[:64],
                stripe_attempts=c.stripe_attempts + 1, stripe_sent_at=now,
                stripe_claimed_until=None, stripe_last_error=None,
            )), write=True)

    def mark_retry(self, credit: CreditToSend, *, error: str, next_attempt_at: datetime,
                   counted: bool) -> None:
        c = credits.c
        attempts = c.stripe_attempts + 1 if counted else c.stripe_attempts
        self._run(lambda conn: conn.execute(
            credits.update().where(_this(credit), c.stripe_status == PENDING).values(
                stripe_attempts=attempts, stripe_next_attempt_at=next_attempt_at,
                stripe_claimed_until=None, stripe_last_error=error[:500],
            )), write=True)

    def mark_failed(self, credit: CreditToSend, *, error: str) -> None:
        c = credits.c
        self._run(lambda conn: conn.execute(
            credits.update().where(_this(credit), c.stripe_status == PENDING).values(
                stripe_status=FAILED, stripe_attempts=c.stripe_attempts + 1,
                stripe_claimed_until=None, stripe_last_error=error[:500],
            )), write=True)

    def retry_failed(self, credit_id: int) -> bool:
        """Put a credit Stripe refused back in the queue (after its cause was fixed)."""
        c = credits.c
        stmt = credits.update().where(c.id == credit_id, c.stripe_status == FAILED).values(
            stripe_status=PENDING, stripe_next_attempt_at=None, stripe_claimed_until=None,
            stripe_retries=c.stripe_retries + 1)
        return bool(self._run(lambda conn: conn.execute(stmt).rowcount, write=True))

    def status_of(self, credit_id: int) -> tuple[str, str | None] | None:
        """(stripe_status, stripe_last_error) of a credit; None when there is no such credit."""
        c = credits.c
        query = select(c.stripe_status, c.stripe_last_error).where(c.id == credit_id)
        row = self._run(lambda conn: conn.execute(query).first())
        return None if row is None else (row.stripe_status, row.stripe_last_error)

    def counts(self) -> dict[str, int]:
        """Credits per Stripe status (the gauge)."""
        query = select(credits.c.stripe_status, func.count()).group_by(credits.c.stripe_status)
        return {r[0]: int(r[1]) for r in self._run(lambda conn: conn.execute(query).all())}
