"""The support tools' part of the Stripe stand-in (`FakeStripe.support`), in Stripe's wire shape
for the pinned API version (fields as stripe-python 16 types them):

- customers: `GET /v1/customers/{id}`, with the `balance` their balance transactions left;
- `POST /v1/customers/{id}/balance_transactions` (`amount`, `currency`, `description`,
  `metadata[...]`) answers a CustomerBalanceTransaction; a negative amount is a credit. A
  repeated Idempotency-Key replays the first answer, with other parameters it is a 400
  `idempotency_error`, as for meter events;
- `create_invoice` finalizes an invoice the way Stripe applies a balance: `starting_balance` is
  the customer's balance, `amount_due` = total + balance (never below 0), what is left stays on
  the customer (`ending_balance`), and an `applied_to_invoice` transaction records it;
- `GET /v1/subscriptions?customer=&status=` (without `status` canceled ones are left out, as
  Stripe does), the period on each item since 2025-03-31;
- `GET /v1/invoices/{id}` and `GET /v1/invoices/search?query=number:"..."`;
- `GET /v1/billing/meters` and `GET /v1/billing/meters/{id}/event_summaries?customer=&start_time=
  &end_time=`: the sum of the meter events the stand-in accepted for that customer and event
  name with `start_time <= timestamp < end_time`, less the ones `invalidate_events` marked as
  refused by Stripe's asynchronous validation.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.fake_stripe import FakeStripe

CUSTOMER = re.compile(r"^/v1/customers/(?P<id>[^/]+)$")
BALANCE_TRANSACTIONS = re.compile(r"^/v1/customers/(?P<id>[^/]+)/balance_transactions$")
SUBSCRIPTIONS = "/v1/subscriptions"
INVOICE = re.compile(r"^/v1/invoices/(?P<id>in_[^/]+)$")
INVOICE_SEARCH = "/v1/invoices/search"
METERS = "/v1/billing/meters"
EVENT_SUMMARIES = re.compile(r"^/v1/billing/meters/(?P<id>[^/]+)/event_summaries$")
NUMBER_QUERY = re.compile(r'^number:"(?P<number>(?:[^"\\]|\\.)*)"$')


def _error(status: int, message: str, *, code: str | None = None, param: str | None = None,
           error_type: str = "invalid_request_error") -> Exception:
    from tests.support.fake_stripe import StripeError

    return StripeError(status, error_type, message, code=code, param=param)


def _missing(kind: str, object_id: str, param: str = "id") -> Exception:
    return _error(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


class SupportEndpoints:
    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        self.customers: dict[str, dict[str, Any]] = {}
        self.transactions: list[dict[str, Any]] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.meters: dict[str, dict[str, Any]] = {}
        self._idempotent: dict[str, tuple[dict[str, str], dict[str, Any]]] = {}
        self._invalid_customers: set[str] = set()
        self._numbers = 0

    def reset(self) -> None:
        self.customers.clear()
        self.transactions.clear()
        self.subscriptions.clear()
        self.meters.clear()
        self._idempotent.clear()
        self._invalid_customers.clear()

    # -- programming it ---------------------------------------------------------------------

    def add_customer(self, customer_id: str, *, email: str = "billing@example.com",
                     name: str = "Example", metadata: dict[str, str] | None = None,
                     created: int = 1_767_225_600) -> dict[str, Any]:
        customer = {
            "id": customer_id, "object": "customer", "address": None, "balance": 0,
            "created": created, "currency": "usd", "default_source": None, "delinquent": False,
            "description": None, "discount": None, "email": email,
            "invoice_prefix": customer_id[-4:].upper().rjust(4, "X"),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                 "footer": None, "rendering_options": None},
            "livemode": False, "metadata": dict(metadata or {}), "name": name,
            "next_invoice_sequence": 1, "phone": None, "preferred_locales": [],
            "shipping": None, "tax_exempt": "none", "test_clock": None,
        }
        with self.fake._lock:
            self.customers[customer_id] = customer
        return customer

    def add_subscription(self, *, customer: str, price: str, status: str = "active",
                         period_start: int, period_end: int, created: int | None = None,
                         cancel_at_period_end: bool = False, subscription_id: str | None = None,
                         metadata: dict[str, str] | None = None) -> dict[str, Any]:
        sub_id = subscription_id or f"sub_{uuid.uuid4().hex[:14]}"
        subscription = {
            "id": sub_id, "object": "subscription", "application": None,
            "billing_cycle_anchor": period_start, "cancel_at": None,
            "cancel_at_period_end": cancel_at_period_end, "canceled_at": None,
            "collection_method": "charge_automatically", "created": created or period_start,
            "currency": "usd", "customer": customer, "days_until_due": None,
            "default_payment_method": None, "description": None, "discounts": [],
            "ended_at": None,
            "items": {
                "object": "list", "has_more": False, "total_count": 1,
                "url": f"/v1/subscription_items?subscription={sub_id}",
                "data": [{
                    "id": f"si_{uuid.uuid4().hex[:14]}", "object": "subscription_item",
                    "created": created or period_start, "current_period_start": period_start,
                    "current_period_end": period_end, "discounts": [], "metadata": {},
                    "price": {"id": price, "object": "price", "active": True,
                              "currency": "usd", "product": "prod_plan", "type": "recurring",
                              "recurring": {"interval": "month", "interval_count": 1,
                                            "usage_type": "licensed"}},
                    "quantity": 1, "subscription": sub_id, "tax_rates": [],
                }],
            },
            "latest_invoice": None, "livemode": False, "metadata": dict(metadata or {}),
            "start_date": period_start, "status": status, "test_clock": None,
            "trial_end": None, "trial_start": None,
        }
        with self.fake._lock:
            self.subscriptions.append(subscription)
        return subscription

    def add_meter(self, event_name: str, *, meter_id: str | None = None) -> str:
        found = meter_id or f"mtr_{uuid.uuid4().hex[:14]}"
        with self.fake._lock:
            self.meters[found] = {
                "id": found, "object": "billing.meter", "created": 1_767_225_600,
                "customer_mapping": {"event_payload_key": "stripe_customer_id",
                                     "type": "by_id"},
                "default_aggregation": {"formula": "sum"}, "display_name": event_name,
                "event_name": event_name, "event_time_window": None, "livemode": False,
                "status": "active", "status_transitions": {"deactivated_at": None},
                "updated": 1_767_225_600, "value_settings": {"event_payload_key": "value"},
            }
        return found

    def invalidate_events(self, customer: str) -> None:
        """Stripe's asynchronous validation refused this customer's events: they were answered
        200 but are not aggregated (a wrong customer mapping, for one)."""
        with self.fake._lock:
            self._invalid_customers.add(customer)

    def create_invoice(self, *, customer: str, total: int, created: int,
                       status: str = "open", period: str | None = None,
                       period_start: int | None = None, period_end: int | None = None
                       ) -> dict[str, Any]:
        """A finalized invoice with the customer's balance applied, as Stripe does."""
        with self.fake._lock:
            holder = self.customers.get(customer)
            balance = 0 if holder is None else int(holder["balance"])
            applied = max(balance, -total) if balance < 0 else balance
            self._numbers += 1
            number = f"{(holder or {}).get('invoice_prefix', 'FAKE')}-{self._numbers:04d}"
        invoice = self.fake.add_invoice(
            customer=customer, total=total, created=created, status=status,
            period_start=period_start, period_end=period_end,
            metadata={"period": period} if period else None)
        with self.fake._lock:
            invoice.update({
                "number": number, "starting_balance": balance,
                "ending_balance": balance - applied, "amount_due": max(0, total + applied),
                "amount_paid": max(0, total + applied) if status == "paid" else 0,
                "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice['id']}",
            })
            if holder is not None and applied:
                holder["balance"] = balance - applied
                self.transactions.append(self._transaction(
                    customer, -applied, "applied_to_invoice", holder["balance"],
                    invoice=invoice["id"]))
        return invoice

    def balance_of(self, customer: str) -> int:
        with self.fake._lock:
            return int(self.customers[customer]["balance"])

    # -- request handling -------------------------------------------------------------------

    def _transaction(self, customer: str, amount: int, kind: str, ending: int, *,
                     invoice: str | None = None, description: str | None = None,
                     metadata: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "id": f"cbtxn_{uuid.uuid4().hex[:14]}", "object": "customer_balance_transaction",
            "amount": amount, "checkout_session": None,
            "created": int(self.fake.clock() if self.fake.clock else 1_767_225_600),
            "credit_note": None, "currency": "usd", "customer": customer,
            "description": description, "ending_balance": ending, "invoice": invoice,
            "livemode": False, "metadata": dict(metadata or {}), "type": kind,
        }

    def _create_transaction(self, customer: str, form: dict[str, str],
                            key: str | None) -> dict[str, Any]:
        if key is not None:
            with self.fake._lock:
                seen = self._idempotent.get(key)
            if seen is not None:
                if seen[0] != form:
                    raise _error(400, "Keys for idempotent requests can only be used with the "
                                 "same parameters they were first used with.",
                                 error_type="idempotency_error")
                return seen[1]
        for name in ("amount", "currency"):
            if not form.get(name):
                raise _error(400, f"Missing required param: {name}.", code="parameter_missing",
                             param=name)
        try:
            amount = int(form["amount"])
        except ValueError:
            raise _error(400, "Invalid integer: amount", code="parameter_invalid_integer",
                         param="amount") from None
        metadata = {k[len("metadata["):-1]: v for k, v in form.items()
                    if k.startswith("metadata[")}
        with self.fake._lock:
            holder = self.customers.get(customer)
            if holder is None:
                raise _missing("customer", customer, "customer")
            holder["balance"] = int(holder["balance"]) + amount
            made = self._transaction(customer, amount, "adjustment", holder["balance"],
                                     description=form.get("description"), metadata=metadata)
            self.transactions.append(made)
            if key is not None:
                self._idempotent[key] = (dict(form), made)
        return made

    def _list(self, url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
        return {"object": "list", "url": url, "has_more": False, "data": data}

    def _summaries(self, meter_id: str, query: dict[str, str]) -> dict[str, Any]:
        with self.fake._lock:
            meter = self.meters.get(meter_id)
            invalid = set(self._invalid_customers)
        if meter is None:
            raise _missing("billing.meter", meter_id)
        for name in ("customer", "start_time", "end_time"):
            if not query.get(name):
                raise _error(400, f"Missing required param: {name}.", code="parameter_missing",
                             param=name)
        start, end, customer = int(query["start_time"]), int(query["end_time"]), query["customer"]
        if start >= end:
            raise _error(400, "end_time must be after start_time.", param="end_time")
        total = 0.0
        if customer not in invalid:
            for event in self.fake.meter_events:
                if (event["event_name"] == meter["event_name"]
                        and event["payload"].get("stripe_customer_id") == customer
                        and start <= int(event["timestamp"]) < end):
                    total += float(event["payload"]["value"])
        summary = {"id": f"mtrusum_{uuid.uuid4().hex[:14]}",
                   "object": "billing.meter_event_summary", "aggregated_value": total,
                   "end_time": end, "livemode": False,
                   "meter": meter_id, "start_time": start}
        return self._list(f"/v1/billing/meters/{meter_id}/event_summaries", [summary])

    def handle(self, method: str, path: str, query: dict[str, str], form: dict[str, str],
               headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """The answer to a request of ours, or None when the path is not one of ours."""
        if method == "POST" and (m := BALANCE_TRANSACTIONS.match(path)):
            key = headers.get("idempotency-key")
            replayed = key is not None and key in self._idempotent
            made = self._create_transaction(m["id"], form, key)
            return 200, made, {"Idempotent-Replayed": "true"} if replayed else {}
        if method != "GET":
            return None
        if m := CUSTOMER.match(path):
            with self.fake._lock:
                customer = self.customers.get(m["id"])
            if customer is None:
                raise _missing("customer", m["id"])
            return 200, dict(customer), {}
        if path == SUBSCRIPTIONS:
            status = query.get("status")
            with self.fake._lock:
                found = [s for s in self.subscriptions
                         if s["customer"] == query.get("customer", s["customer"])
                         and (status == "all" or (status is None and s["status"] != "canceled")
                              or s["status"] == status)]
            return 200, self._list(SUBSCRIPTIONS, list(reversed(found))), {}
        if path == INVOICE_SEARCH:
            parsed = NUMBER_QUERY.match(query.get("query", ""))
            if parsed is None:
                raise _error(400, "This stand-in searches invoices by number only.",
                             param="query")
            number = parsed["number"].replace('\\"', '"').replace("\\\\", "\\")
            with self.fake._lock:
                found = [i for i in self.fake._invoices if i.get("number") == number]
            return 200, {"object": "search_result", "url": INVOICE_SEARCH, "has_more": False,
                         "next_page": None, "data": found}, {}
        if m := INVOICE.match(path):
            with self.fake._lock:
                found = [i for i in self.fake._invoices if i["id"] == m["id"]]
            if not found:
                raise _missing("invoice", m["id"])
            return 200, dict(found[0]), {}
        if path == METERS:
            with self.fake._lock:
                meters = list(self.meters.values())
            return 200, self._list(METERS, meters), {}
        if m := EVENT_SUMMARIES.match(path):
            return 200, self._summaries(m["id"], query), {}
        return None
