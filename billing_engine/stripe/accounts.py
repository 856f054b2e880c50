"""Stripe calls of the support tools: customer balance credits, the reads of a resync, the
lookups of customer search and the meter summaries reconciliation compares against.

They go through StripeProvider's client and its circuit breaker (`StripeProvider._call`), so they
raise the same ProviderError as usage reporting and trip the same breaker. Without Stripe keys
`SimulatedAccounts` answers as Stripe would for an account that holds only what we sent it.
Objects come back as plain dicts in Stripe's wire shape (the pinned API version's).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from billing_engine.stripe.client import (
    PaymentProvider,
    ProviderError,
    StripeProvider,
)

Json = dict[str, Any]
# Stripe's list endpoints answer at most 100 objects a page.
PAGE = 100


@dataclass(frozen=True)
class BalanceCredit:
    """What we ask Stripe for: `amount_cents` taken off the customer's next invoices."""

    customer: str
    amount_cents: int  # positive: the credit; sent to Stripe as a negative amount
    currency: str
    description: str
    metadata: Mapping[str, str]
    idempotency_key: str


class StripeAccounts(Protocol):
    @property
    def simulated(self) -> bool: ...

    def credit_balance(self, credit: BalanceCredit) -> Json:
        """POST /v1/customers/{id}/balance_transactions; the CustomerBalanceTransaction."""

    def customer(self, customer_id: str) -> Json:
        """GET /v1/customers/{id} (a deleted customer comes back with `deleted: true`)."""

    def subscriptions(self, customer_id: str) -> list[Json]:
        """GET /v1/subscriptions?customer=&status=all, every page."""

    def recent_invoices(self, customer_id: str, *, limit: int) -> list[Json]:
        """GET /v1/invoices?customer=, newest first, one page."""

    def invoice(self, invoice_id: str) -> Json | None:
        """GET /v1/invoices/{id}; None when Stripe has no such invoice."""

    def invoices_numbered(self, number: str) -> list[Json]:
        """GET /v1/invoices/search?query=number:"..."."""

    def meter_total(
        self, *, event_name: str, customer: str, start: datetime, end: datetime
    ) -> int | None:
        """What Stripe aggregated for the customer on the meter of `event_name` in
        [start, end); None when no meter has that event name."""


class StripeAccountsApi:
    """The real calls, through the provider's client and breaker."""

    simulated = False

    def __init__(self, provider: StripeProvider) -> None:
        self.provider = provider
        self._meters: dict[str, str] = {}  # event name -> meter id, found once
        self._lock = threading.Lock()

    @property
    def _v1(self) -> Any:
        return self.provider._client.v1

    def _call(self, work: Any) -> Any:
        return self.provider._call(work)

    def credit_balance(self, credit: BalanceCredit) -> Json:
        params: Any = {
            "amount": -credit.amount_cents,
            "currency": credit.currency,
            "description": credit.description,
            "metadata": dict(credit.metadata),
        }
        made = self._call(lambda: self._v1.customers.balance_transactions.create(
            credit.customer, params, options={"idempotency_key": credit.idempotency_key}))
        return dict(made.to_dict())

    def customer(self, customer_id: str) -> Json:
        return dict(self._call(lambda: self._v1.customers.retrieve(customer_id)).to_dict())

    def subscriptions(self, customer_id: str) -> list[Json]:
        params: Any = {"customer": customer_id, "status": "all", "limit": PAGE}

        def fetch() -> list[Json]:
            page = self._v1.subscriptions.list(params)
            return [s.to_dict() for s in page.auto_paging_iter()]

        found: list[Json] = self._call(fetch)
        return found

    def recent_invoices(self, customer_id: str, *, limit: int) -> list[Json]:
        params: Any = {"customer": customer_id, "limit": limit}
        page = self._call(lambda: self._v1.invoices.list(params))
        return [i.to_dict() for i in page.data]

    def invoice(self, invoice_id: str) -> Json | None:
        try:
            return dict(self._call(lambda: self._v1.invoices.retrieve(invoice_id)).to_dict())
        except ProviderError as exc:
            if exc.http_status == 404:
                return None
            raise

    def invoices_numbered(self, number: str) -> list[Json]:
        escaped = number.replace("\\", "\\\\").replace('"', '\\"')
        params: Any = {"query": f'number:"{escaped}"', "limit": 10}
        page = self._call(lambda: self._v1.invoices.search(params))
        return [i.to_dict() for i in page.data]

    def _meter_id(self, event_name: str) -> str | None:
        with self._lock:
            if event_name in self._meters:
                return self._meters[event_name]

        def fetch() -> str | None:
            page = self._v1.billing.meters.list({"status": "active", "limit": PAGE})
            for meter in page.auto_paging_iter():
                if meter.event_name == event_name:
                    return str(meter.id)
            return None

        found: str | None = self._call(fetch)
        if found is not None:
            with self._lock:
                self._meters[event_name] = found
        return found

    def meter_total(
        self, *, event_name: str, customer: str, start: datetime, end: datetime
    ) -> int | None:
        meter_id = self._meter_id(event_name)
        if meter_id is None:
            return None
        params: Any = {
            "customer": customer,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
            "limit": PAGE,
        }

        def fetch() -> float:
            page = self._v1.billing.meters.event_summaries.list(meter_id, params)
            return sum(float(s.aggregated_value or 0) for s in page.auto_paging_iter())

        total: float = self._call(fetch)
        return round(total)


class SimulatedAccounts:
    """Without Stripe keys: credits are accepted (with a simulated id), the customer has no
    subscription or invoice of its own, and there is no meter summary to compare."""

    simulated = True

    def __init__(self, provider: PaymentProvider) -> None:
        self.provider = provider
        self._balance: dict[str, int] = {}
        self._made: dict[str, Json] = {}
        self._lock = threading.Lock()

    def credit_balance(self, credit: BalanceCredit) -> Json:
        with self._lock:
            if credit.idempotency_key in self._made:
                return self._made[credit.idempotency_key]
            balance = self._balance.get(credit.customer, 0) - credit.amount_cents
            self._balance[credit.customer] = balance
            made = {
                "id": f"cbtxn_sim_{len(self._made) + 1}",
                "object": "customer_balance_transaction",
                "amount": -credit.amount_cents,
                "currency": credit.currency,
                "customer": credit.customer,
                "ending_balance": balance,
                "type": "adjustment",
                "metadata": dict(credit.metadata),
            }
            self._made[credit.idempotency_key] = made
            return made

    def customer(self, customer_id: str) -> Json:
        with self._lock:
            balance = self._balance.get(customer_id, 0)
        return {"id": customer_id, "object": "customer", "balance": balance, "metadata": {}}

    def subscriptions(self, customer_id: str) -> list[Json]:
        return []

    def recent_invoices(self, customer_id: str, *, limit: int) -> list[Json]:
        return []

    def invoice(self, invoice_id: str) -> Json | None:
        return None

    def invoices_numbered(self, number: str) -> list[Json]:
        return []

    def meter_total(
        self, *, event_name: str, customer: str, start: datetime, end: datetime
    ) -> int | None:
        """Not compared: the simulated provider keeps its events in one process's memory, so
        another process (the CLI) or a restart would see a meter emptier than what was sent."""
        return None


def accounts_for(provider: PaymentProvider) -> StripeAccounts:
    if isinstance(provider, StripeProvider):
        return StripeAccountsApi(provider)
    return SimulatedAccounts(provider)


def find_invoice_customer(accounts: StripeAccounts, quoted: str) -> tuple[str | None, str]:
    """Customer search's question to Stripe: whose is this invoice id (`in_...`) or number?
    (the customer id or None, and a note saying what Stripe answered)."""
    if accounts.simulated:
        return None, ("no Stripe keys: an invoice id or number is only found through the "
                      "links our invoices hold")
    try:
        if quoted.startswith("in_"):
            one = accounts.invoice(quoted)
            found = [] if one is None else [one]
        else:
            found = accounts.invoices_numbered(quoted.upper())
    except ProviderError as exc:
        return None, f"Stripe could not be asked about {quoted}: {exc.describe()}"
    customers = sorted({str(c if isinstance(c, str) else c.get("id"))
                        for i in found if (c := i.get("customer"))})
    if not customers:
        return None, f"Stripe has no invoice {quoted}"
    invoice_ids = ", ".join(sorted(str(i["id"]) for i in found))
    note = f"{quoted} is Stripe invoice {invoice_ids} of customer {customers[0]}"
    if len(customers) > 1:
        note += f" (also {', '.join(customers[1:])}: only the first is shown)"
    return customers[0], note
