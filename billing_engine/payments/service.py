"""What support reads about an org's money: payment attempts and refunds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from billing_core.clock import Clock, utc_now
from billing_engine.customers.service import Customers
from billing_engine.payments.store import PaymentStore


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()


class Payments:
    def __init__(
        self, *, store: PaymentStore, customers: Customers, clock: Clock = utc_now
    ) -> None:
        self.store = store
        self.customers = customers
        self.clock = clock

    def payments(self, org_id: str, *, limit: int) -> dict[str, Any]:
        self.customers.require(org_id)
        attempts, refunds = self.store.payments_of(org_id, limit=limit)
        rows = [
            {
                "attempted_at": _iso(a.attempted_at),
                "amount_cents": int(a.amount_cents),
                "currency": a.currency,
                "outcome": a.outcome,
                "method": a.method,
                "failure_reason": a.failure_reason,
                "failure_code": a.failure_code,
                "failure_message": a.failure_message,
                "refunded_cents": int(a.refunded_cents),
                "attempt_number": a.attempt_number,
                "invoice_id": a.invoice_id,
                "charge_id": a.charge_id,
                "payment_intent_id": a.payment_intent_id,
                "stripe_event_id": a.event_id,
            }
            for a in attempts
        ]
        refund_rows = [
            {
                "refunded_at": _iso(r.refunded_at),
                "amount_cents": int(r.amount_cents),
                "currency": r.currency,
                "reason": r.reason,
                "charge_id": r.charge_id,
                "refund": r.refund_key,
                "stripe_event_id": r.event_id,
            }
            for r in refunds
        ]
        succeeded = sum(r["amount_cents"] for r in rows if r["outcome"] == "succeeded")
        return {
            "org_id": org_id,
            "payments": rows,
            "refunds": refund_rows,
            "totals": {
                "attempts": len(rows),
                "succeeded": sum(1 for r in rows if r["outcome"] == "succeeded"),
                "failed": sum(1 for r in rows if r["outcome"] == "failed"),
                "succeeded_cents": succeeded,
                "refunded_cents": sum(r["amount_cents"] for r in refund_rows),
            },
            "retention": "records older than PAYMENT_RETENTION_DAYS are deleted",
            "as_of": self.clock().isoformat(),
        }
