"""Stripe's meter error reports: usage Stripe took, then found invalid, so never billed.

Meter events are validated after Stripe answered (always for the v2 stream, partly for v1).
What fails is reported by the thin event `v1.billing.meter.error_report_triggered`, delivered to
an event destination (POST /webhooks/stripe/thin here, signed like any Stripe delivery). A thin
event carries only the event id; the report itself is fetched with GET /v2/core/events/{id}:
`data.reason.error_types[]`, each with its `code`, `error_count` and up to a few
`sample_errors[]` naming the `request.identifier` of an event at fault, plus
`developer_message_summary` and the validation window.

Each sampled record is marked `rejected` with the code and message; for an error about the
customer itself (`meter_event_customer_not_found`) every record sent to that customer within
the validation window is marked too, since Stripe samples only a few. Rejected records are
counted (`usage_meter_rejected`, `meter_error_reports_total{code}`), alerted on
(UsageMeterErrorReported), and sent again under a new identifier by the admin requeue once the
mapping is repaired.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from billing_core.errors import BadRequest, NotConfigured
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.client import PaymentProvider
from billing_engine.stripe.meters.rules import (
    CUSTOMER_ERROR_CODES,
    METER_ERROR_CODES,
    outbox_identifier,
)
from billing_engine.stripe.meters.store import MeterStore
from billing_engine.stripe.webhooks.signature import verify

log = logging.getLogger("billing_engine.meters")
ERROR_REPORT = "v1.billing.meter.error_report_triggered"
# Our sent_at and Stripe's receipt differ by a request's time in flight and clock skew.
WINDOW_SLACK = timedelta(minutes=5)
REMEMBERED_EVENTS = 1000


class ThinEventsNotConfigured(NotConfigured):
    code = "thin_events_not_configured"

    def __init__(self) -> None:
        super().__init__("STRIPE_THIN_WEBHOOK_SECRET is not set", field="Stripe-Signature")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class MeterErrorReports:
    def __init__(
        self,
        *,
        store: MeterStore,
        provider: PaymentProvider,
        metrics: EngineMetrics,
        secret: str | None,
        refresh_gauges: Callable[[], None],
    ) -> None:
        self.store = store
        self.provider = provider
        self.metrics = metrics
        self.secret = secret
        self.refresh_gauges = refresh_gauges
        # Event ids handled by this process: a redelivery is not counted twice (marking
        # records again would change nothing anyway).
        self._handled: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def receive(self, body: bytes, signature: str | None) -> dict[str, Any]:
        if not self.secret:
            raise ThinEventsNotConfigured()
        verify(body, signature, self.secret)
        try:
            notification = json.loads(body)
        except ValueError:
            raise BadRequest("body", "is not JSON") from None
        if not isinstance(notification, dict):
            raise BadRequest("body", "a thin event is a JSON object")
        event_id, event_type = notification.get("id"), notification.get("type")
        if not isinstance(event_id, str) or not event_id:
            raise BadRequest("id", "a thin event names its id")
        if not isinstance(event_type, str) or not event_type:
            raise BadRequest("type", "a thin event names its type")
        if event_type != ERROR_REPORT:
            return {"event_id": event_id, "type": event_type, "outcome": "ignored",
                    "rejected": 0}
        with self._lock:
            if event_id in self._handled:
                return {"event_id": event_id, "type": event_type, "outcome": "duplicate",
                        "rejected": 0}
        event = self.provider.retrieve_event(event_id)  # ProviderError: 502, Stripe retries
        rejected = self.apply(event)
        with self._lock:
            self._handled[event_id] = None
            while len(self._handled) > REMEMBERED_EVENTS:
                self._handled.popitem(last=False)
        self.refresh_gauges()
        return {"event_id": event_id, "type": event_type, "outcome": "handled",
                "rejected": rejected}

    def apply(self, event: dict[str, Any]) -> int:
        """Mark the records an error report names; returns how many changed."""
        data = event.get("data") or {}
        reason = data.get("reason") or {}
        start, end = _time(data.get("validation_start")), _time(data.get("validation_end"))
        summary = str(data.get("developer_message_summary") or "")
        changed = 0
        for error_type in reason.get("error_types") or []:
            code = str(error_type.get("code") or "other")
            counted = code if code in METER_ERROR_CODES else "other"
            self.metrics.meter_error_reports.labels(counted).inc(
                int(error_type.get("error_count") or 0)
            )
            for sample in error_type.get("sample_errors") or []:
                sent = str((sample.get("request") or {}).get("identifier") or "")
                if not sent:
                    continue
                why = f"stripe error report {code}: {sample.get('error_message') or summary}"
                identifier = outbox_identifier(sent)
                changed += self.store.mark_rejected([identifier], reason=why)
                if code in CUSTOMER_ERROR_CODES and start is not None and end is not None:
                    for record in self.store.by_identifiers([identifier]):
                        if record.stripe_customer_id:
                            changed += self.store.mark_rejected_for_customer(
                                record.stripe_customer_id,
                                sent_from=start - WINDOW_SLACK,
                                sent_to=end + WINDOW_SLACK,
                                reason=why,
                            )
        log.warning(
            "stripe reported invalid usage events",
            extra={"event_id": event.get("id"), "summary": summary[:200],
                   "records_rejected": changed},
        )
        return changed
