"""A local HTTP server that speaks Stripe's wire format for the parts the engine uses.

It is a real server on a free port: the official `stripe` library talks to it over HTTP when
STRIPE_API_BASE (or StripeProvider's api_base) points at `fake.url`. What it does like Stripe:

- `POST /v1/billing/meter_events` (form-encoded `event_name`, `payload[stripe_customer_id]`,
  `payload[value]`, `identifier`, `timestamp`) answers a `billing.meter_event` object. A repeated
  `Idempotency-Key` with the same parameters replays the first successful answer (header
  `Idempotent-Replayed: true`); with other parameters it is a 400 `idempotency_error`; refused
  requests are not kept, so they can be retried under the same key. A repeated
  `identifier` under another key is refused with 400 `resource_already_exists`. Either way an event
  is counted once.
- `GET /v1/invoices` answers a list object (`object`, `data`, `has_more`, `url`), newest first,
  filtered by `customer`, `status` and `created[gt|gte|lt|lte]`, paged by `limit` and
  `starting_after`.
- `GET /v1/balance`, for the runbooks' "does the key work" check.
- Errors use Stripe's shape `{"error": {"type", "code", "message", "param"}}`; a wrong or missing
  key is a 401.

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

DEFAULT_API_KEY = "sk_test_fake_0123456789"
METER_EVENTS = "/v1/billing/meter_events"
INVOICES = "/v1/invoices"
BALANCE = "/v1/balance"
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


class FakeStripe:
    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock` (epoch seconds) turns on Stripe's meter-event timestamp window (35 days back,
        5 minutes ahead); without it any timestamp is accepted."""
        self.api_key = api_key
        self.clock = clock
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rejected_customers: dict[str, str] = {}
        self._requests: list[ReceivedRequest] = []
        self._events: list[dict[str, Any]] = []
        self._by_identifier: dict[str, dict[str, Any]] = {}
        # Idempotency-Key -> (request parameters, status, body) of the first answer.
        self._idempotent: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}
        self._invoices: list[dict[str, Any]] = []
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

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rejected_customers.clear()
            self._requests.clear()
            self._events.clear()
            self._by_identifier.clear()
            self._idempotent.clear()
            self._invoices.clear()
            self.support.reset()

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
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"An event with identifier '{identifier}' already exists.",
                    code="resource_already_exists",
                    param="identifier",
                )
            self._by_identifier[identifier] = event
            self._events.append(event)
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

    def handle(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str],
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self._authorise(headers)
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
                status, body = 200, self._meter_event(form)
            except StripeError as exc:
                status, body = exc.status, {"error": exc.body}
            # Like Stripe, only a request that got past validation has its answer kept.
            if key is not None and status == 200:
                with self._lock:
                    self._idempotent.setdefault(key, (dict(form), status, body))
            return status, body, {}
        if method == "GET" and path == INVOICES:
            return 200, self._list_invoices(query), {}
        if method == "GET" and path == BALANCE:
            return 200, {"object": "balance", "available": [], "pending": [],
                         "livemode": False}, {}
        raise StripeError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({method}: {path}).",
        )


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
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True)) if raw else {}
        headers = {k.lower(): v for k, v in self.headers.items()}

        fault = fake._take_fault(path)
        if fault is not None and fault.status is None:
            fake._record(ReceivedRequest(method, path, query, form, headers, 0))
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
                status, body, extra = fake.handle(method, path, query, form, headers)
            except StripeError as exc:
                status, body = exc.status, {"error": exc.body}
        fake._record(ReceivedRequest(method, path, query, form, headers, status))
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
