"""The v2 parts of the Stripe stand-in: meter event sessions and the meter event stream.

Wire format as Stripe's (stripe-python 16, `stripe/v2/billing/_meter_event_session*.py`,
`_meter_event_stream_service.py`, docs.stripe.com/api/v2/billing-meter-stream):

- `POST /v2/billing/meter_event_session` with the API key answers a
  `v2.billing.meter_event_session`: `id`, `authentication_token`, `created` and `expires_at` in
  RFC 3339, 15 minutes after creation.
- `POST /v2/billing/meter_event_stream` (JSON `{"events": [...]}`, at most 100, each with
  `event_name`, `identifier`, `timestamp` in RFC 3339 and a `payload` of strings) authenticated
  by `Bearer <authentication_token>` answers 200 `{}`. The API key is not accepted there. An
  expired token gets 401 type `temporary_session_expired`, code
  `billing_meter_event_session_expired`. Malformed requests are refused whole with 400; the
  events' meaning (customer, timestamp window) is checked later, asynchronously, and reported
  in meter error reports (see FakeStripe.deliver_error_reports). An identifier already counted
  is not counted again.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.fake_stripe import FakeStripe

CORE_EVENTS = "/v2/core/events/"
SESSIONS = "/v2/billing/meter_event_session"
STREAM = "/v2/billing/meter_event_stream"
SESSION_SECONDS = 15 * 60
STREAM_MAX_EVENTS = 100


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def parse_rfc3339(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


class MeterStream:
    """State and handlers of the v2 meter event endpoints, owned by a FakeStripe."""

    def __init__(self, owner: FakeStripe) -> None:
        self.owner = owner
        self.sessions: dict[str, float] = {}  # authentication_token -> expires_at (epoch)
        self.stream_requests = 0
        self.events: dict[str, dict[str, Any]] = {}  # v2 events, for GET /v2/core/events/{id}
        self.meter_id = f"mtr_test_{uuid.uuid4().hex[:24]}"

    def reset(self) -> None:
        self.sessions.clear()
        self.stream_requests = 0
        self.events.clear()

    # -- meter error reports ------------------------------------------------------------------

    def error_report(
        self, errors: list[tuple[str, dict[str, Any]]], *, start: float, end: float
    ) -> dict[str, Any]:
        """A v1.billing.meter.error_report_triggered v2 event as GET /v2/core/events/{id}
        answers it (stripe-python 16, events/_v1_billing_meter_error_report_triggered_event.py;
        the example in docs.stripe.com/api/v2/core/events/object)."""
        by_code: dict[str, list[dict[str, Any]]] = {}
        for code, sample in errors:
            by_code.setdefault(code, []).append(sample)
        event_id = f"evt_test_{uuid.uuid4().hex}"
        count = len(errors)
        event = {
            "id": event_id,
            "object": "v2.core.event",
            "context": None,
            "created": rfc3339(end),
            "data": {
                "developer_message_summary": (
                    f"There {'is' if count == 1 else 'are'} {count} invalid "
                    f"event{'' if count == 1 else 's'}"
                ),
                "reason": {
                    "error_count": count,
                    "error_types": [
                        # Stripe sends a few samples per code, not every event at fault.
                        {"code": code, "error_count": len(samples),
                         "sample_errors": samples[:3]}
                        for code, samples in by_code.items()
                    ],
                },
                "validation_start": rfc3339(start),
                "validation_end": rfc3339(end),
            },
            "livemode": False,
            "reason": None,
            "related_object": {"id": self.meter_id, "type": "billing.meter",
                               "url": f"/v1/billing/meters/{self.meter_id}"},
            "type": "v1.billing.meter.error_report_triggered",
        }
        with self.owner._lock:
            self.events[event_id] = event
        return event

    @staticmethod
    def thin(event: dict[str, Any]) -> dict[str, Any]:
        """The thin notification an event destination receives: no data, fetch it."""
        return {key: event[key] for key in
                ("id", "object", "type", "created", "livemode", "context", "reason",
                 "related_object")}

    def get_event(self, path: str) -> dict[str, Any]:
        from tests.support.fake_stripe import StripeError

        event_id = path[len(CORE_EVENTS):]
        with self.owner._lock:
            event = self.events.get(event_id)
        if event is None:
            raise StripeError(404, "invalid_request_error", f"No such event: '{event_id}'",
                              code="resource_missing", param="id")
        return event

    def create_session(self, now: float) -> dict[str, Any]:
        token = f"mes_tok_{uuid.uuid4().hex}"
        expires = now + SESSION_SECONDS
        with self.owner._lock:
            self.sessions[token] = expires
        return {
            "id": f"mes_{uuid.uuid4().hex[:24]}",
            "object": "v2.billing.meter_event_session",
            "authentication_token": token,
            "created": rfc3339(now),
            "expires_at": rfc3339(expires),
            "livemode": False,
        }

    def expire_sessions(self) -> None:
        """Every session token issued so far is expired from now on."""
        with self.owner._lock:
            for token in self.sessions:
                self.sessions[token] = 0.0

    def stream(
        self, headers: dict[str, str], raw: bytes, now: float
    ) -> tuple[int, dict[str, Any]]:
        from tests.support.fake_stripe import StripeError

        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self.owner._lock:
            expires = self.sessions.get(token)
        if expires is None:
            raise StripeError(401, "invalid_request_error",
                              "The meter event stream needs a meter event session token.")
        if now >= expires:
            raise StripeError(401, "temporary_session_expired",
                              "The meter event session token has expired.",
                              code="billing_meter_event_session_expired")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise StripeError(400, "invalid_request_error", "The body is not JSON.") from None
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events:
            raise StripeError(400, "invalid_request_error", "events is required.",
                              param="events")
        if len(events) > STREAM_MAX_EVENTS:
            raise StripeError(400, "invalid_request_error",
                              "events may hold at most 100 events.", param="events")
        accepted = []
        for index, event in enumerate(events):
            where = f"events[{index}]"
            if not isinstance(event, dict) or not event.get("event_name"):
                raise StripeError(400, "invalid_request_error", f"{where}.event_name is required.",
                                  param=f"{where}.event_name")
            payload = event.get("payload")
            if not isinstance(payload, dict) or not all(
                isinstance(v, str) for v in payload.values()
            ):
                raise StripeError(400, "invalid_request_error",
                                  f"{where}.payload must be a map of strings.",
                                  param=f"{where}.payload")
            timestamp = parse_rfc3339(event.get("timestamp", rfc3339(now)))
            if timestamp is None:
                raise StripeError(400, "invalid_request_error",
                                  f"{where}.timestamp must be an RFC 3339 timestamp.",
                                  param=f"{where}.timestamp")
            accepted.append({
                "object": "v2.billing.meter_event",
                "created": rfc3339(now),
                "event_name": event["event_name"],
                "identifier": event.get("identifier") or f"mev_{uuid.uuid4().hex}",
                "livemode": False,
                "payload": dict(payload),
                "timestamp": int(timestamp),
            })
        with self.owner._lock:
            self.stream_requests += 1
        for event in accepted:
            self.owner._take_async(event, now=now)
        return 200, {}
