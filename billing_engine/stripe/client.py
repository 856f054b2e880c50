"""The Stripe adapter: the small interface the engine needs from a payment provider, the real
implementation over the official `stripe` library, and a simulated one for running without keys.

Callers see one exception, ProviderError, whose `kind` is the reason the metrics and the outbox
act on: rate_limited, server_error, client_error, network or circuit_open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import stripe

from billing_core.errors import UpstreamError
from billing_engine.stripe.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpen
from billing_engine.stripe.webhooks.fields import StripeFields

if TYPE_CHECKING:  # the library exports the type only from a private module
    from stripe._base_address import BaseAddresses

log = logging.getLogger("billing_engine.stripe")

# The one Stripe API version we speak: sent as Stripe-Version on every call, the version to set
# on the webhook endpoint (docs/stripe.md), and the version the event parser is checked against.
# pyproject.toml bounds the library to the releases generated for it.
API_VERSION = "2026-10-28.endive"


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    NETWORK = "network"
    CIRCUIT_OPEN = "circuit_open"


# 401 and 403 say the key is wrong, not the request: every request fails the same way until the
# key is fixed, so they are not held against a single record.
ACCOUNT_STATUSES = frozenset({401, 403})


class ProviderError(UpstreamError):
    """Stripe refused or failed a call; `kind` is what the outbox and the metrics act on."""

    code = "stripe_unavailable"

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        status: int | None = None,
        stripe_code: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        self.kind = kind
        self.detail = detail
        self.http_status = status
        self.stripe_code = stripe_code
        self.retry_after_seconds = retry_after_seconds
        super().__init__(self.describe())

    @property
    def record_is_at_fault(self) -> bool:
        """Stripe refused this request for good: sending it again gives the same answer."""
        return self.kind is ErrorKind.CLIENT_ERROR and self.http_status not in ACCOUNT_STATUSES

    def describe(self) -> str:
        status = f"HTTP {self.http_status} " if self.http_status is not None else ""
        code = f"({self.stripe_code}) " if self.stripe_code else ""
        message = " ".join(self.detail.split())  # the library's network messages span lines
        return f"{self.kind.value}: {status}{code}{message}"[:500]


@dataclass(frozen=True)
class MeterEvent:
    identifier: str  # unique per record: Stripe counts an identifier once
    event_name: str
    stripe_customer_id: str
    value: int
    timestamp: int  # seconds since the epoch

    @property
    def idempotency_key(self) -> str:
        """The same for every retry of the same request. A record re-sent for another customer
        (after an admin repaired the link) is another request, so it gets another key."""
        return f"{self.identifier}:{self.stripe_customer_id}"

    def stream_params(self) -> dict[str, Any]:
        """One event of a v2 meter event stream request: the timestamp in RFC 3339."""
        return {
            "event_name": self.event_name,
            "identifier": self.identifier,
            "timestamp": datetime.fromtimestamp(self.timestamp, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "payload": {"stripe_customer_id": self.stripe_customer_id, "value": str(self.value)},
        }


@dataclass(frozen=True)
class ProviderInvoice:
    id: str
    customer: str | None
    status: str | None
    total_cents: int
    currency: str
    created: datetime
    period_start: datetime | None
    period_end: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    # What the customer is asked to pay: the total less their balance (credits), as Stripe
    # applied it when finalizing; None when not known (the simulated provider's mirror).
    amount_due_cents: int | None = None


# The v2 meter event stream: at most 100 events a request; its session tokens live 15 minutes
# and are renewed this long before they expire.
STREAM_MAX_EVENTS = 100
SESSION_RENEW_BEFORE = 60.0  # seconds


def _session_expired(exc: stripe.StripeError) -> bool:
    """Stripe's answer to a stream request under an expired session token."""
    return isinstance(exc, stripe.TemporarySessionExpiredError) or (
        exc.code == "billing_meter_event_session_expired"
    )


class MeterReporter(Protocol):
    """Where usage records go."""

    @property
    def simulated(self) -> bool: ...

    def report_meter_event(self, event: MeterEvent) -> None:
        """Returns when the provider accepted the event; raises ProviderError otherwise."""

    def report_meter_event_batch(self, events: Sequence[MeterEvent]) -> None:
        """Up to 100 events in one request (Stripe's v2 meter event stream), validated by
        Stripe later: returns when the request was taken; raises ProviderError otherwise."""


class PaymentProvider(MeterReporter, Protocol):
    """What the engine needs from Stripe (or its stand-in)."""

    @property
    def name(self) -> str: ...

    def breaker_state(self) -> BreakerState: ...

    def list_invoices(
        self, *, created_from: datetime, created_before: datetime, customer: str | None = None
    ) -> list[ProviderInvoice]: ...

    def invoice_payment(self, invoice_id: str, *, paid: bool) -> InvoicePaymentObjects | None:
        """The payment intent and charge of the invoice's newest payment (its paid one when
        `paid`); None when this provider cannot look them up (the simulated one)."""

    def retrieve_event(self, event_id: str) -> dict[str, Any]:
        """A v2 event (the data behind a thin event), as Stripe's API returns it."""

    def cancel_meter_event(self, *, event_name: str, identifier: str) -> None:
        """Withdraw a meter event Stripe received less than 24 hours ago."""


@dataclass(frozen=True)
class InvoicePaymentObjects:
    """Stripe's objects as JSON, as the pinned API version returns them."""

    payment_intent: dict[str, Any] | None
    charge: dict[str, Any] | None


# Fetches made while handling a webhook retry a transient failure a few times, briefly: Stripe
# waits for our answer, and redelivers the event later anyway if we answer 503.
FETCH_ATTEMPTS = 3
FETCH_BACKOFF_SECONDS = (0.25, 1.0)
FETCH_MAX_WAIT_SECONDS = 2.0


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def classify_stripe_error(exc: stripe.StripeError) -> ProviderError:
    status = exc.http_status
    message = exc.user_message or exc.__class__.__name__
    if isinstance(exc, stripe.APIConnectionError):
        return ProviderError(ErrorKind.NETWORK, message, stripe_code=exc.code)
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return ProviderError(
            ErrorKind.RATE_LIMITED,
            message,
            status=status,
            stripe_code=exc.code,
            retry_after_seconds=_retry_after(exc.headers),
        )
    if status is not None and 400 <= status < 500:
        return ProviderError(ErrorKind.CLIENT_ERROR, message, status=status, stripe_code=exc.code)
    return ProviderError(ErrorKind.SERVER_ERROR, message, status=status, stripe_code=exc.code)


def _ts(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def _invoice(obj: dict[str, Any]) -> ProviderInvoice:
    customer = obj.get("customer")
    if isinstance(customer, dict):  # expanded
        customer = customer.get("id")
    metadata = obj.get("metadata") or {}
    created = _ts(obj.get("created"))
    assert created is not None, "a Stripe invoice always has `created`"
    return ProviderInvoice(
        id=str(obj["id"]),
        customer=customer,
        status=obj.get("status"),
        total_cents=int(obj.get("total") or 0),
        currency=str(obj.get("currency") or "usd"),
        created=created,
        period_start=_ts(obj.get("period_start")),
        period_end=_ts(obj.get("period_end")),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        amount_due_cents=None if obj.get("amount_due") is None else int(obj["amount_due"]),
    )


class StripeProvider:
    """The official library pointed at api.stripe.com or at STRIPE_API_BASE, behind a breaker.

    The library's own retries are off: the outbox retries with its own backoff and honours
    Retry-After, and every retry reuses the record's identifier as its Idempotency-Key.
    """

    simulated = False
    name = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        breaker: CircuitBreaker,
        api_base: str | None = None,
        timeout_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sleep = sleep
        self._clock = clock
        self._session_lock = threading.Lock()
        self._session: tuple[str | None, float] = (None, 0.0)  # meter event session token
        self.sessions_created = 0
        base_addresses: BaseAddresses = {}
        if api_base:
            base = api_base.rstrip("/")
            base_addresses = {"api": base, "meter_events": base, "files": base, "connect": base}
        self.api_base = api_base or stripe.DEFAULT_API_BASE
        self.breaker = breaker
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=API_VERSION,
            base_addresses=base_addresses,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    def breaker_state(self) -> BreakerState:
        return self.breaker.state()

    def _call(self, work: Callable[[], Any]) -> Any:
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            raise ProviderError(ErrorKind.CIRCUIT_OPEN, str(exc)) from None
        try:
            result = work()
        except stripe.StripeError as exc:
            error = classify_stripe_error(exc)
            if error.kind is ErrorKind.CLIENT_ERROR:
                self.breaker.record_success()  # Stripe answered; the request was at fault
            else:
                self.breaker.record_failure()
            raise error from None
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return result

    def report_meter_event(self, event: MeterEvent) -> None:
        params: Any = {
            "event_name": event.event_name,
            "identifier": event.identifier,
            "timestamp": event.timestamp,
            "payload": {
                "stripe_customer_id": event.stripe_customer_id,
                "value": str(event.value),
            },
        }
        self._call(
            lambda: self._client.v1.billing.meter_events.create(
                params, options={"idempotency_key": event.idempotency_key}
            )
        )

    # -- the v2 meter event stream ----------------------------------------------------------

    def report_meter_event_batch(self, events: Sequence[MeterEvent]) -> None:
        """POST /v2/billing/meter_event_stream on the meter_events host, authenticated by a
        meter event session's token (created with the API key, valid 15 minutes, renewed
        `SESSION_RENEW_BEFORE` ahead of its expiry, and once more if Stripe calls it expired).
        Stripe validates the events later: errors come back as meter error reports."""
        if not events:
            return
        if len(events) > STREAM_MAX_EVENTS:
            raise ValueError(f"at most {STREAM_MAX_EVENTS} events per stream request")
        params: Any = {"events": [e.stream_params() for e in events]}

        def send() -> None:
            token = self._session_token()
            try:
                self._client.v2.billing.meter_event_stream.create(
                    params, options={"api_key": token}
                )
            except stripe.StripeError as exc:
                if not _session_expired(exc):
                    raise
                self._forget_session(token)
                self._client.v2.billing.meter_event_stream.create(
                    params, options={"api_key": self._session_token()}
                )

        self._call(send)

    def cancel_meter_event(self, *, event_name: str, identifier: str) -> None:
        """POST /v1/billing/meter_event_adjustments, type cancel: Stripe withdraws the event
        with this identifier (only within 24 hours of receiving it)."""
        params: Any = {"event_name": event_name, "type": "cancel",
                       "cancel": {"identifier": identifier}}
        self._call(lambda: self._client.v1.billing.meter_event_adjustments.create(
            params, options={"idempotency_key": f"cancel:{identifier}"}))

    def retrieve_event(self, event_id: str) -> dict[str, Any]:
        """GET /v2/core/events/{id}: the whole event behind a thin event notification."""
        found = self._call(lambda: self._client.v2.core.events.retrieve(event_id))
        event: dict[str, Any] = found.to_dict()
        return event

    def _session_token(self) -> str:
        with self._session_lock:
            token, expires_at = self._session
            if token is None or self._clock() >= expires_at - SESSION_RENEW_BEFORE:
                session = self._client.v2.billing.meter_event_session.create()
                expires = datetime.fromisoformat(session.expires_at.replace("Z", "+00:00"))
                self._session = (session.authentication_token, expires.timestamp())
                self.sessions_created += 1
            token = self._session[0]
            assert token is not None
            return token

    def _forget_session(self, token: str) -> None:
        with self._session_lock:
            if self._session[0] == token:
                self._session = (None, 0.0)

    def list_invoices(
        self, *, created_from: datetime, created_before: datetime, customer: str | None = None
    ) -> list[ProviderInvoice]:
        params: Any = {
            "limit": 100,
            "created": {
                "gte": int(created_from.timestamp()),
                "lt": int(created_before.timestamp()),
            },
        }
        if customer:
            params["customer"] = customer

        def fetch() -> list[ProviderInvoice]:
            page = self._client.v1.invoices.list(params)
            return [_invoice(inv.to_dict()) for inv in page.auto_paging_iter()]

        result: list[ProviderInvoice] = self._call(fetch)
        return result

    def _fetch(self, work: Callable[[], Any]) -> dict[str, Any]:
        """One GET through the breaker, retried on a transient failure (not on an open circuit
        or a refusal), honouring a short Retry-After."""
        for attempt in range(FETCH_ATTEMPTS):
            try:
                found: Any = self._call(work)
                return dict(found.to_dict())
            except ProviderError as exc:
                last = attempt == FETCH_ATTEMPTS - 1
                if last or exc.kind in (ErrorKind.CLIENT_ERROR, ErrorKind.CIRCUIT_OPEN):
                    raise
                wait = FETCH_BACKOFF_SECONDS[min(attempt, len(FETCH_BACKOFF_SECONDS) - 1)]
                if exc.retry_after_seconds is not None:
                    wait = max(wait, exc.retry_after_seconds)
                self._sleep(min(wait, FETCH_MAX_WAIT_SECONDS))
        raise AssertionError("unreachable")

    def invoice_payment(self, invoice_id: str, *, paid: bool) -> InvoicePaymentObjects | None:
        params: Any = invoice_payment_list_params(invoice_id, paid=paid)
        page = self._fetch(lambda: self._client.v1.invoice_payments.list(params))
        listed = page.get("data") or []
        payments = [StripeFields("invoice_payment", p) for p in listed if isinstance(p, dict)]
        if not payments:
            return InvoicePaymentObjects(payment_intent=None, charge=None)
        # The newest payment holds the attempt the event is about.
        payment = max(payments, key=lambda p: p.integer("created") or 0)
        intent = charge = None
        intent_id = payment.id("payment.payment_intent")
        charge_id = payment.id("payment.charge")
        if intent_id:
            intent = self._fetch(lambda: self._client.v1.payment_intents.retrieve(intent_id))
            charge_id = charge_id or StripeFields("payment_intent", intent).id("latest_charge")
        if charge_id:
            charge = self._fetch(lambda: self._client.v1.charges.retrieve(charge_id))
        return InvoicePaymentObjects(payment_intent=intent, charge=charge)


def invoice_payment_list_params(invoice_id: str, *, paid: bool) -> dict[str, Any]:
    """GET /v1/invoice_payments for one invoice (its paid payment when `paid`); a test checks
    these against the library's InvoicePaymentListParams."""
    params: dict[str, Any] = {"invoice": invoice_id, "limit": 10}
    if paid:
        params["status"] = "paid"
    return params


class SimulatedProvider:
    """Stands in for Stripe when no STRIPE_SECRET_KEY is set: accepts every meter event once per
    identifier (as Stripe does) and keeps them in memory. Its invoices are whatever
    `invoice_source` says, by default none; reconciliation gives it a view of its own."""

    simulated = True
    name = "simulated"

    def __init__(
        self,
        invoice_source: Callable[[datetime, datetime], Iterable[ProviderInvoice]] | None = None,
    ) -> None:
        self._events: dict[str, MeterEvent] = {}
        self._lock = threading.Lock()
        self._invoice_source = invoice_source

    def breaker_state(self) -> BreakerState:
        return BreakerState.CLOSED

    @property
    def events(self) -> list[MeterEvent]:
        with self._lock:
            return list(self._events.values())

    def report_meter_event(self, event: MeterEvent) -> None:
        with self._lock:
            self._events.setdefault(event.identifier, event)

    def report_meter_event_batch(self, events: Sequence[MeterEvent]) -> None:
        for event in events:
            self.report_meter_event(event)

    def cancel_meter_event(self, *, event_name: str, identifier: str) -> None:
        with self._lock:
            self._events.pop(identifier, None)

    def retrieve_event(self, event_id: str) -> dict[str, Any]:
        raise ProviderError(ErrorKind.CLIENT_ERROR, "the simulated provider holds no events",
                            status=404)

    def list_invoices(
        self, *, created_from: datetime, created_before: datetime, customer: str | None = None
    ) -> list[ProviderInvoice]:
        if self._invoice_source is None:
            return []
        found = self._invoice_source(created_from, created_before)
        return [i for i in found if customer is None or i.customer == customer]

    def invoice_payment(self, invoice_id: str, *, paid: bool) -> InvoicePaymentObjects | None:
        return None  # no Stripe to ask: payment details come with the charge events


def log_breaker_change(state: BreakerState) -> None:
    """on_change hook of the breaker around Stripe: each transition is one log line."""
    if state is BreakerState.CLOSED:
        log.info("stripe circuit breaker closed: calls to Stripe go through again")
    elif state is BreakerState.OPEN:
        log.warning("stripe circuit breaker open: calls to Stripe are refused until a probe")
    else:
        log.info("stripe circuit breaker half-open: one probe call goes to Stripe")


def provider_from_settings(
    *,
    secret_key: str | None,
    api_base: str | None,
    timeout_seconds: float,
    breaker: CircuitBreaker,
    invoice_source: Callable[[datetime, datetime], Iterable[ProviderInvoice]] | None = None,
    clock: Callable[[], float] | None = None,
) -> PaymentProvider:
    """Stripe when a secret key is set, else the simulated provider (whose invoices, if any,
    come from `invoice_source`)."""
    if not secret_key:
        return SimulatedProvider(invoice_source)
    return StripeProvider(
        api_key=secret_key,
        api_base=api_base,
        timeout_seconds=timeout_seconds,
        breaker=breaker,
        clock=clock or time.time,
    )
