"""A local HTTP server that speaks Stripe's wire format for the parts the engine uses.

It is a real server on a free port: the official `stripe` library talks to it over HTTP when
STRIPE_API_BASE (or StripeProvider's api_base) points at `fake.url`. What it does like Stripe:

- `POST /v1/billing/meter_events` (form-encoded `event_name`, `payload[stripe_customer_id]`,
  `payload[value]`, `identifier`, `timestamp`) answers a `billing.meter_event` object. A repeated
  `Idempotency-Key` with the same parameters replays the first successful answer (header
  `Idempotent-Replayed: true`); with other parameters it is a 400 `idempotency_error`; refused
  requests are not kept, so they can be retried under the same key. A repeated
  `identifier` under another key is refused as Stripe does: 400 `invalid_request_error`, no
  `code`, message "An event already exists with identifier <identifier>.". Either way an event
  is counted once.
- `GET /v1/invoices` answers a list object (`object`, `data`, `has_more`, `url`), newest first,
  filtered by `customer`, `status` and `created[gt|gte|lt|lte]`, paged by `limit` and
  `starting_after`.
- `GET /v1/balance`, for the runbooks' "does the key work" check.
- `GET /v1/invoice_payments` (filtered by `invoice` and `status`, newest first, `limit`),
  `GET /v1/payment_intents/{id}` and `GET /v1/charges/{id}` answer the objects a test stored with
  `add_objects` (shaped by tests/support/stripe_events.py as the pinned version returns them); an
  unknown id is a 404 `resource_missing`, an unknown list parameter a 400 naming it.
- Errors use Stripe's shape `{"error": {"type", "code", "message", "param"}}`; a wrong or missing
  key is a 401.
- A `Stripe-Version` header naming a version Stripe does not know is refused like Stripe does:
  400 `invalid_request_error` "Invalid Stripe API version: ..." (no code); without the header the
  account's default version applies.

Tests program failures (`fail_next`, `rate_limit_next`, `drop_next`, `reject_customer`) and assert
on what it received (`requests`, `meter_events`, `totals_by_customer`).

    with FakeStripe() as fake:
        fake.fail_next(2, status=500)
        provider = StripeProvider(api_key=fake.api_key, api_base=fake.url, breaker=...)
        ...
        assert fake.totals_by_customer() == {"cus_1": 60}
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.fake_stripe_v2 import (
    CORE_EVENTS,
    SESSIONS,
    STREAM,
    MeterStream,
    parse_rfc3339,
)

DEFAULT_API_KEY = "sk_test_fake_0123456789"
METER_EVENTS = "/v1/billing/meter_events"
ADJUSTMENTS = "/v1/billing/meter_event_adjustments"
STRIPE_CANCEL_WINDOW_SECONDS = 24 * 3600
INVOICES = "/v1/invoices"
BALANCE = "/v1/balance"
INVOICE_PAYMENTS = "/v1/invoice_payments"
PAYMENT_INTENTS = "/v1/payment_intents/"
CHARGES = "/v1/charges/"
# Versions the stand-in knows (a few real ones; Stripe knows every release since 2011).
KNOWN_API_VERSIONS = frozenset({"2026-10-28.endive", "2025-03-31.basil", "2024-06-20"})
STRIPE_MAX_BACKDATE_SECONDS = 35 * 86400
STRIPE_MAX_FUTURE_SECONDS = 300


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    status: int  # what the fake answered (0: connection dropped)
    json: Any = None  # a JSON body (the v2 endpoints), parsed


@dataclass
class Fault:
    """An answer to give instead of the normal one, `remaining` more times."""

    remaining: int
    status: int | None  # None: drop the connection without answering
    error_type: str = "api_error"
    code: str | None = None
    message: str = "An unknown error occurred"
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # only requests to this path; None: any


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": error_type, "message": message}
        if code:
            self.body["code"] = code
        if param:
            self.body["param"] = param


def duplicate_error(identifier: str) -> StripeError:
    """Stripe's answer to a meter event whose identifier it holds already: a 400
    invalid_request_error without a code, worded as below (seen in production logs, e.g.
    langfuse/langfuse#16292; Stripe also sends `Stripe-Should-Retry: false`)."""
    return StripeError(
        400, "invalid_request_error", f"An event already exists with identifier {identifier}."
    )


class FakeStripe:
    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        clock: Callable[[], float] | None = None,
        latency_seconds: float = 0.0,
    ) -> None:
        """`clock` (epoch seconds) turns on Stripe's meter-event timestamp window (35 days back,
        5 minutes ahead); without it any timestamp is accepted. `latency_seconds` is added to
        every answer (a round trip to Stripe; the benchmark uses 80 ms)."""
        self.api_key = api_key
        self.clock = clock
        self.latency_seconds = latency_seconds
        self.v2 = MeterStream(self)
        # (customer, event_name) of v1 meter event requests being answered: Stripe allows one
        # at a time per customer and meter and answers 429 to a concurrent one.
        self._v1_in_flight: set[tuple[str, str]] = set()
        self.concurrent_refusals = 0
        self.v1_peak_in_flight = 0  # the most v1 meter events answered at once (customers apart)
        # Asynchronous validation: customers Stripe does not know (events are taken, then
        # reported), and the errors found and not reported yet.
        self._unknown_customers: set[str] = set()
        self._async_errors: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rejected_customers: dict[str, str] = {}
        self._requests: list[ReceivedRequest] = []
        self._events: list[dict[str, Any]] = []
        self._by_identifier: dict[str, dict[str, Any]] = {}
        # Idempotency-Key -> (request parameters, status, body) of the first answer.
        self._idempotent: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}
        self._invoices: list[dict[str, Any]] = []
        # Payment objects by type ("invoice_payment", "payment_intent", "charge") and id.
        self._objects: dict[str, dict[str, dict[str, Any]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Customers, balance credits, subscriptions, invoice lookups, meter summaries: the
        # support tools' endpoints (tests/support/fake_stripe_support.py).
        from tests.support.fake_stripe_support import SupportEndpoints

        self.support = SupportEndpoints(self)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-stripe", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- programming it ---------------------------------------------------------------------

    def fail_next(
        self,
        times: int,
        *,
        status: int = 500,
        error_type: str | None = None,
        code: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        path: str | None = METER_EVENTS,
    ) -> None:
        """Answer the next `times` requests (to `path`; None: any path) with this error."""
        default_type = "api_error" if status >= 500 else "invalid_request_error"
        with self._lock:
            self._faults.append(
                Fault(
                    remaining=times,
                    status=status,
                    error_type=error_type or default_type,
                    code=code,
                    message=message or f"fake Stripe answered {status} as programmed",
                    headers=dict(headers or {}),
                    path=path,
                )
            )

    def rate_limit_next(
        self, times: int, *, retry_after: int | None = None, path: str | None = METER_EVENTS
    ) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.fail_next(
            times,
            status=429,
            error_type="invalid_request_error",
            code="rate_limit",
            message="Too many requests hit the API too quickly.",
            headers=headers,
            path=path,
        )

    def drop_next(self, times: int, *, path: str | None = METER_EVENTS) -> None:
        """Close the next connections without answering: a network failure for the client."""
        with self._lock:
            self._faults.append(Fault(remaining=times, status=None, path=path))

    def reject_customer(self, customer_id: str, message: str | None = None) -> None:
        """Meter events for this customer are refused with 400 resource_missing."""
        with self._lock:
            self._rejected_customers[customer_id] = message or f"No such customer: '{customer_id}'"

    def add_invoice(
        self,
        *,
        customer: str,
        total: int,
        created: int,
        status: str = "open",
        currency: str = "usd",
        period_start: int | None = None,
        period_end: int | None = None,
        metadata: Mapping[str, str] | None = None,
        invoice_id: str | None = None,
    ) -> dict[str, Any]:
        invoice = {
            "id": invoice_id or f"in_{uuid.uuid4().hex[:14]}",
            "object": "invoice",
            "customer": customer,
            "status": status,
            "currency": currency,
            "total": total,
            "subtotal": total,
            "amount_due": total,
            "created": created,
            "period_start": created if period_start is None else period_start,
            "period_end": created if period_end is None else period_end,
            "metadata": dict(metadata or {}),
            "livemode": False,
        }
        with self._lock:
            self._invoices.append(invoice)
        return invoice

    def add_objects(self, *objects: Mapping[str, Any]) -> None:
        """Store invoice payments, payment intents and charges for the GET endpoints to serve;
        an object stored again under its id replaces the earlier one."""
        with self._lock:
            for obj in objects:
                kind = str(obj["object"])
                assert kind in ("invoice_payment", "payment_intent", "charge"), kind
                self._objects.setdefault(kind, {})[str(obj["id"])] = dict(obj)

    def reset(self) -> None:
        with self._lock:
            self._objects.clear()
            self._faults.clear()
            self._rejected_customers.clear()
            self._requests.clear()
            self._events.clear()
            self._by_identifier.clear()
            self._idempotent.clear()
            self._invoices.clear()
            self._unknown_customers.clear()
            self._async_errors.clear()
            self.concurrent_refusals = 0
            self.v1_peak_in_flight = 0
            self.support.reset()
        self.v2.reset()

    # -- what it received -------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def meter_events(self) -> list[dict[str, Any]]:
        """Accepted meter events, each once, in the order they were accepted."""
        with self._lock:
            return [dict(e) for e in self._events]

    def totals_by_customer(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for event in self.meter_events:
            customer = event["payload"]["stripe_customer_id"]
            totals[customer] = totals.get(customer, 0) + int(event["payload"]["value"])
        return totals

    # -- request handling (called from the server's threads) --------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.path is None or fault.path == path):
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _authorise(self, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization", "")
        if not auth:
            raise StripeError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if auth != f"Bearer {self.api_key}":
            raise StripeError(
                401, "invalid_request_error", "Invalid API Key provided.", code="api_key_invalid"
            )

    def _check_version(self, headers: Mapping[str, str]) -> None:
        version = headers.get("stripe-version")
        if version is not None and version not in KNOWN_API_VERSIONS:
            raise StripeError(400, "invalid_request_error",
                              f"Invalid Stripe API version: {version}")

    def _meter_event(self, form: dict[str, str]) -> dict[str, Any]:
        for name in ("event_name", "payload[stripe_customer_id]", "payload[value]"):
            if not form.get(name):
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"Missing required param: {name}.",
                    code="parameter_missing",
                    param=name,
                )
        value = form["payload[value]"]
        try:
            float(value)
        except ValueError:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Invalid value for payload[value]: {value!r} is not a number.",
                code="parameter_invalid_integer",
                param="payload[value]",
            ) from None
        now = self.clock() if self.clock is not None else time.time()
        timestamp = int(form.get("timestamp") or now)
        if self.clock is not None and not (
            now - STRIPE_MAX_BACKDATE_SECONDS <= timestamp <= now + STRIPE_MAX_FUTURE_SECONDS
        ):
            raise StripeError(
                400,
                "invalid_request_error",
                "Timestamp must be within the past 35 calendar days or up to 5 minutes in the "
                "future.",
                code="timestamp_invalid",
                param="timestamp",
            )
        customer = form["payload[stripe_customer_id]"]
        with self._lock:
            rejection = self._rejected_customers.get(customer)
        if rejection is not None:
            raise StripeError(
                400,
                "invalid_request_error",
                rejection,
                code="resource_missing",
                param="payload[stripe_customer_id]",
            )
        identifier = form.get("identifier") or f"evt_{uuid.uuid4().hex}"
        with self._lock:
            unknown_later = customer in self._unknown_customers
        if unknown_later:  # taken now, reported by the asynchronous validation
            self._async_errors_add_v1(identifier, customer)
        payload = {
            key[len("payload[") : -1]: v for key, v in form.items() if key.startswith("payload[")
        }
        event = {
            "object": "billing.meter_event",
            "created": int(now),
            "event_name": form["event_name"],
            "identifier": identifier,
            "livemode": False,
            "payload": payload,
            "timestamp": timestamp,
        }
        with self._lock:
            if identifier in self._by_identifier:
                # Stripe's own wording, with no error code (nor param): see duplicate_error().
                raise duplicate_error(identifier)
            self._by_identifier[identifier] = event
            if not unknown_later:
                self._events.append(event)
        return event

    def _async_errors_add_v1(self, identifier: str, customer: str) -> None:
        with self._lock:
            self._async_errors.append((
                "meter_event_customer_not_found",
                {"error_message": f"No customer with id {customer} was found.",
                 "request": {"identifier": identifier}},
            ))

    # -- concurrency, latency and asynchronous validation ------------------------------------

    def _now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    def _meter_event_alone(self, form: dict[str, str]) -> dict[str, Any]:
        """A v1 meter event, refused with 429 while another for the same customer and meter is
        being answered (Stripe allows one concurrent call per customer and meter)."""
        slot = (form.get("payload[stripe_customer_id]", ""), form.get("event_name", ""))
        with self._lock:
            busy = slot in self._v1_in_flight
            if busy:
                self.concurrent_refusals += 1
            else:
                self._v1_in_flight.add(slot)
                self.v1_peak_in_flight = max(self.v1_peak_in_flight, len(self._v1_in_flight))
        if busy:
            raise StripeError(
                429, "invalid_request_error",
                "Too many concurrent requests for this customer and meter.", code="rate_limit",
            )
        try:
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
            return self._meter_event(form)
        finally:
            with self._lock:
                self._v1_in_flight.discard(slot)

    def _cancel_event(self, form: dict[str, str]) -> dict[str, Any]:
        """A meter event adjustment of type cancel: the event stops counting. Stripe allows it
        within 24 hours of receiving the event."""
        for name in ("event_name", "type", "cancel[identifier]"):
            if not form.get(name):
                raise StripeError(400, "invalid_request_error", f"Missing required param: {name}.",
                                  code="parameter_missing", param=name)
        if form["type"] != "cancel":
            raise StripeError(400, "invalid_request_error", "Invalid type: must be cancel.",
                              code="parameter_invalid", param="type")
        identifier = form["cancel[identifier]"]
        now = self._now()
        with self._lock:
            event = self._by_identifier.get(identifier)
            if event is None:
                raise StripeError(400, "invalid_request_error",
                                  f"No meter event with identifier {identifier}.",
                                  code="resource_missing", param="cancel[identifier]")
            created = event["created"]
            if isinstance(created, str):  # a v2 event
                created = parse_rfc3339(created) or 0.0
            if now - created > STRIPE_CANCEL_WINDOW_SECONDS:
                raise StripeError(400, "invalid_request_error",
                                  "Meter events can only be cancelled within 24 hours of being "
                                  "received.", param="cancel[identifier]")
            self._events = [e for e in self._events if e["identifier"] != identifier]
        return {"object": "billing.meter_event_adjustment", "cancel": {"identifier": identifier},
                "event_name": form["event_name"], "livemode": False, "status": "pending",
                "type": "cancel"}

    def report_customer_unknown_later(self, customer_id: str) -> None:
        """Meter events for this customer are taken (200), then found invalid by the asynchronous
        validation: `meter_event_customer_not_found` in the next error report."""
        with self._lock:
            self._unknown_customers.add(customer_id)

    def _take_async(self, event: dict[str, Any], *, now: float) -> None:
        """What Stripe's asynchronous validation does with an event the stream took."""
        customer = event["payload"].get("stripe_customer_id")
        error: tuple[str, str] | None = None
        if not customer:
            error = ("meter_event_no_customer_defined",
                     "Customer mapping key stripe_customer_id not found in payload.")
        elif self.clock is not None and event["timestamp"] < now - STRIPE_MAX_BACKDATE_SECONDS:
            error = ("timestamp_too_far_in_past",
                     "Timestamp must be within the past 35 calendar days.")
        elif self.clock is not None and event["timestamp"] > now + STRIPE_MAX_FUTURE_SECONDS:
            error = ("timestamp_in_future", "Timestamp must not be more than 5 minutes ahead.")
        with self._lock:
            if error is None and customer in self._unknown_customers:
                error = ("meter_event_customer_not_found",
                         f"No customer with id {customer} was found.")
            if error is not None:
                self._async_errors.append(
                    (error[0], {"error_message": error[1],
                                "request": {"identifier": event["identifier"]}})
                )
                return
            if event["identifier"] in self._by_identifier:
                return
            self._by_identifier[event["identifier"]] = event
            self._events.append(event)

    def deliver_error_reports(
        self, to: str | Callable[[bytes, dict[str, str]], Any], *, secret: str
    ) -> dict[str, Any] | None:
        """What Stripe's asynchronous validation found since the last report, as one
        v1.billing.meter.error_report_triggered event: kept for GET /v2/core/events/{id}, and its
        thin notification POSTed, signed with `secret`, to the event destination `to` (a URL, or
        a callable taking the body and headers, e.g. a TestClient's post). None when nothing
        was found."""
        import stripe

        with self._lock:
            errors, self._async_errors = self._async_errors, []
        if not errors:
            return None
        now = self._now()
        event = self.v2.error_report(errors, start=now - 60, end=now)
        body = json.dumps(self.v2.thin(event)).encode()
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                body.decode(), secret, timestamp=int(time.time())),
        }
        if callable(to):
            to(body, headers)
        else:
            from urllib.request import Request, urlopen

            with urlopen(Request(to, data=body, headers=headers, method="POST"), timeout=10):
                pass
        return event

    def _list_invoices(self, query: dict[str, str]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", "10"))
        except ValueError:
            raise StripeError(
                400, "invalid_request_error", "Invalid integer: limit", param="limit"
            ) from None
        if not 1 <= limit <= 100:
            raise StripeError(
                400,
                "invalid_request_error",
                "This value must be greater than or equal to 1 and less than or equal to 100.",
                param="limit",
            )
        with self._lock:
            found = sorted(self._invoices, key=lambda i: (i["created"], i["id"]), reverse=True)
        bounds = {
            "gt": lambda c, v: c > v,
            "gte": lambda c, v: c >= v,
            "lt": lambda c, v: c < v,
            "lte": lambda c, v: c <= v,
        }
        for op, test in bounds.items():
            raw = query.get(f"created[{op}]")
            if raw is not None:
                found = [i for i in found if test(i["created"], int(raw))]
        if "created" in query:
            found = [i for i in found if i["created"] == int(query["created"])]
        if "customer" in query:
            found = [i for i in found if i["customer"] == query["customer"]]
        if "status" in query:
            found = [i for i in found if i["status"] == query["status"]]
        after = query.get("starting_after")
        if after is not None:
            ids = [i["id"] for i in found]
            if after not in ids:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"No such invoice: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            found = found[ids.index(after) + 1 :]
        return {
            "object": "list",
            "url": INVOICES,
            "has_more": len(found) > limit,
            "data": found[:limit],
        }

    def _list_invoice_payments(self, query: dict[str, str]) -> dict[str, Any]:
        for name in query:
            if name not in ("invoice", "status", "limit"):
                raise StripeError(
                    400, "invalid_request_error", f"Received unknown parameter: {name}",
                    param=name,
                )
        try:
            limit = int(query.get("limit", "10"))
        except ValueError:
            raise StripeError(
                400, "invalid_request_error", "Invalid integer: limit", param="limit"
            ) from None
        with self._lock:
            found = list(self._objects.get("invoice_payment", {}).values())
        found.sort(key=lambda p: (p["created"], p["id"]), reverse=True)
        for name in ("invoice", "status"):
            if name in query:
                found = [p for p in found if p[name] == query[name]]
        return {"object": "list", "url": INVOICE_PAYMENTS, "has_more": len(found) > limit,
                "data": found[:limit]}

    def _retrieve(self, kind: str, object_id: str, param: str) -> dict[str, Any]:
        with self._lock:
            found = self._objects.get(kind, {}).get(object_id)
        if found is None:
            raise StripeError(
                404, "invalid_request_error", f"No such {kind}: '{object_id}'",
                code="resource_missing", param=param,
            )
        return dict(found)

    def handle(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str],
        headers: dict[str, str],
        raw: bytes = b"",
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method == "POST" and path == STREAM:  # authenticated by a session token instead
            status, body = self.v2.stream(headers, raw, self._now())
            return status, body, {}
        self._authorise(headers)
        self._check_version(headers)
        answer = self.support.handle(method, path, query, form, headers)
        if answer is not None:
            return answer
        if method == "POST" and path == METER_EVENTS:
            key = headers.get("idempotency-key")
            if key is not None:
                with self._lock:
                    seen = self._idempotent.get(key)
                if seen is not None:
                    params, status, body = seen
                    if params != form:
                        raise StripeError(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        )
                    return status, body, {"Idempotent-Replayed": "true"}
            try:
                status, body = 200, self._meter_event_alone(form)
            except StripeError as exc:
                status, body = exc.status, {"error": exc.body}
            # Like Stripe, only a request that got past validation has its answer kept.
            if key is not None and status == 200:
                with self._lock:
                    self._idempotent.setdefault(key, (dict(form), status, body))
            return status, body, {}
        if method == "POST" and path == SESSIONS:
            return 200, self.v2.create_session(self._now()), {}
        if method == "GET" and path.startswith(CORE_EVENTS):
            return 200, self.v2.get_event(path), {}
        if method == "POST" and path == ADJUSTMENTS:
            return 200, self._cancel_event(form), {}
        if method == "GET" and path == INVOICES:
            return 200, self._list_invoices(query), {}
        if method == "GET" and path == INVOICE_PAYMENTS:
            return 200, self._list_invoice_payments(query), {}
        if method == "GET" and path.startswith(PAYMENT_INTENTS):
            return 200, self._retrieve("payment_intent", path[len(PAYMENT_INTENTS):], "intent"), {}
        if method == "GET" and path.startswith(CHARGES):
            return 200, self._retrieve("charge", path[len(CHARGES):], "charge"), {}
        if method == "GET" and path == BALANCE:
            return 200, {"object": "balance", "available": [], "pending": [],
                         "livemode": False}, {}
        raise StripeError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({method}: {path}).",
        )


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    owner: FakeStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        return

    def _serve(self, method: str) -> None:
        fake = self.owner
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        is_json = headers.get("content-type", "").startswith("application/json")
        form = (
            dict(parse_qsl(raw.decode(), keep_blank_values=True)) if raw and not is_json else {}
        )
        if fake.latency_seconds and not (method == "POST" and path == METER_EVENTS):
            time.sleep(fake.latency_seconds)  # v1 meter events sleep holding their slot

        fault = fake._take_fault(path)
        if fault is not None and fault.status is None:
            fake._record(ReceivedRequest(method, path, query, form, headers, 0, _json(raw)))
            self.close_connection = True
            self.connection.close()
            return
        extra: dict[str, str] = {}
        if fault is not None:
            assert fault.status is not None
            status = fault.status
            error: dict[str, Any] = {"type": fault.error_type, "message": fault.message}
            if fault.code:
                error["code"] = fault.code
            body: dict[str, Any] = {"error": error}
            extra = dict(fault.headers)
        else:
            try:
                status, body, extra = fake.handle(method, path, query, form, headers, raw)
            except StripeError as exc:
                status, body = exc.status, {"error": exc.body}
        fake._record(ReceivedRequest(method, path, query, form, headers, status,
                                     _json(raw) if is_json else None))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")
