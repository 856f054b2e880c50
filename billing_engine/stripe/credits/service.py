"""Credits applied in Stripe, so the invoice the customer pays matches ours.

Each credit we grant becomes one customer balance transaction
(`POST /v1/customers/{id}/balance_transactions`, a negative amount): Stripe holds it on the
customer's balance and takes it off the next invoices it finalizes, as our invoice takes the
credit off the next period it closes. docs/stripe.md#credits-resync-and-customer-search says why
this and not credit notes.

Sending is an outbox over the credits table: the grant tries at once; if Stripe is unavailable
the credit stays `pending` and the `stripe_credits` housekeeping job retries it with backoff (once
across replicas). The Idempotency-Key is the credit's id and its customer, so a retry never
credits twice. A 4xx that is the request's fault marks it `failed` for a person to look at;
`retry_failed` puts it back.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from billing_core.clock import Clock, utc_now
from billing_core.errors import Conflict, NotFound
from billing_engine.invoicing.rules import CURRENCY
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.accounts import BalanceCredit, StripeAccounts
from billing_engine.stripe.client import ErrorKind, ProviderError
from billing_engine.stripe.credits.store import (
    FAILED,
    LEGACY,
    PENDING,
    SENT,
    CreditToSend,
    StripeCreditStore,
)

log = logging.getLogger("billing_engine.stripe.credits")
BATCH = 50
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)
STATUSES = (PENDING, SENT, FAILED, LEGACY)


def idempotency_key(credit: CreditToSend) -> str:
    """Stable across the automatic retries of one credit for one customer, so Stripe applies it
    once. A credit sent after its org was linked to another customer is another request, and so
    is one an admin sends again after Stripe refused it (Stripe would replay the refusal)."""
    key = f"credit:{credit.credit_id}:{credit.stripe_customer_id}"
    return key if credit.retries == 0 else f"{key}:retry{credit.retries}"


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... at most an hour."""
    return min(FIRST_RETRY * (2 ** max(0, attempts)), LAST_RETRY)


class StripeCredits:
    def __init__(
        self,
        *,
        store: StripeCreditStore,
        accounts: StripeAccounts,
        metrics: EngineMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.metrics = metrics
        self.clock = clock

    def send_one(self, credit_id: int) -> None:
        """Right after a grant: try this credit now (it stays pending on any failure)."""
        for credit in self.store.claim(now=self.clock(), limit=1, credit_id=credit_id):
            self._send(credit)

    def send_due(self) -> int:
        """The housekeeping job: every credit due, in batches; returns how many went out."""
        sent = 0
        while True:
            batch = self.store.claim(now=self.clock(), limit=BATCH)
            sent += sum(1 for credit in batch if self._send(credit))
            if len(batch) < BATCH:
                return sent

    def _send(self, credit: CreditToSend) -> bool:
        request = BalanceCredit(
            customer=credit.stripe_customer_id,
            amount_cents=credit.amount_cents,
            currency=CURRENCY,
            description=f"Credit #{credit.credit_id}: {' '.join(credit.reason.split())[:300]}",
            metadata={"org_id": credit.org_id, "credit_id": str(credit.credit_id)},
            idempotency_key=idempotency_key(credit),
        )
        now = self.clock()
        try:
            made = self.accounts.credit_balance(request)
        except ProviderError as exc:
            if exc.record_is_at_fault:
                self.store.mark_failed(credit, error=exc.describe())
                self.metrics.stripe_credits_sent.labels("failed").inc()
                log.warning("credit refused by Stripe", extra={
                    "credit_id": credit.credit_id, "reason": exc.describe()})
            else:
                # Nothing reached Stripe when the breaker refused: not an attempt.
                counted = exc.kind is not ErrorKind.CIRCUIT_OPEN
                delay = backoff(credit.attempts)
                if exc.retry_after_seconds is not None:
                    delay = max(delay, timedelta(seconds=exc.retry_after_seconds))
                self.store.mark_retry(credit, error=exc.describe(),
                                      next_attempt_at=now + delay, counted=counted)
                self.metrics.stripe_credits_sent.labels("retry").inc()
            return False
        self.store.mark_sent(credit, transaction_id=str(made["id"]), now=now)
        self.metrics.stripe_credits_sent.labels("sent").inc()
        log.info("credit applied in Stripe", extra={
            "credit_id": credit.credit_id, "balance_transaction": made["id"]})
        return True

    def retry_failed(self, credit_id: int) -> tuple[str, str | None]:
        """A credit Stripe refused, sent again now that its cause is fixed: its new state.
        Raises NotFound for no such credit, Conflict when it is not `failed`."""
        found = self.store.status_of(credit_id)
        if found is None:
            raise NotFound("credit_id", f"no credit {credit_id}")
        if not self.store.retry_failed(credit_id):
            raise Conflict("credit_id", f"credit {credit_id} is {found[0]} in Stripe, not "
                           "failed: nothing to retry")
        self.send_one(credit_id)
        after = self.store.status_of(credit_id)
        assert after is not None
        return after

    def refresh_gauges(self) -> None:
        counts = self.store.counts()
        for status in STATUSES:
            self.metrics.stripe_credits.labels(status).set(counts.get(status, 0))
