"""PagerDuty's Events API v2 as its published reference describes it, for the local stand-in.

Sources: PagerDuty's OpenAPI document (github.com/PagerDuty/api-schema,
reference/events-v2/openapiv3.json) and developer docs (github.com/PagerDuty/developer-docs,
docs/events-API-v2/: "Send an Alert Event", the overview's response codes):

- `POST /v2/enqueue` with a JSON object: `routing_key` (required, the 32-character integration
  key), `event_action` (required: trigger, acknowledge or resolve), `dedup_key` (at most 255
  characters; required for acknowledge and resolve), `payload` (required for trigger:
  `summary` of at most 1024 characters, `source` and `severity` (critical, error, warning or
  info) required; `timestamp` (ISO 8601), `component`, `group`, `class`, `custom_details`
  optional), `client`, `client_url`, `links` (`href` required, `text`) and `images` (`src`
  required, `href`, `alt`).
- 202 `{"status": "success", "message": "Event processed", "dedup_key": ...}`; 400 with
  `status`, `message` and `errors` (a list of strings) for an event it refuses.
- A trigger opens an alert, or adds to the open alert with the same dedup key and routing key;
  acknowledge and resolve act on that open alert and are dropped when there is none; after a
  resolve, the next trigger opens a new alert.

One deliberate difference: PagerDuty ignores fields it does not know; the stand-in refuses
them, so a field we made up fails a test instead of vanishing in production.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ROUTING_KEY_LENGTH = 32
DEDUP_KEY_MAX = 255
SUMMARY_MAX = 1024
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
EVENT_FIELDS = {"routing_key", "event_action", "dedup_key", "payload", "client", "client_url",
                "links", "images"}
PAYLOAD_FIELDS = {"summary", "source", "severity", "timestamp", "component", "group", "class",
                  "custom_details"}


def event_errors(event: Any) -> list[str]:
    """Why PagerDuty would refuse this event (empty when it would accept it)."""
    if not isinstance(event, dict):
        return ["the event must be a JSON object"]
    errors = [f"unknown field '{name}'" for name in sorted(set(event) - EVENT_FIELDS)]
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str):
        errors.append("'routing_key' is required (a string)")
    elif len(routing_key) != ROUTING_KEY_LENGTH:
        errors.append(f"'routing_key' must be {ROUTING_KEY_LENGTH} characters long")
    action = event.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(EVENT_ACTIONS)}")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > DEDUP_KEY_MAX:
        errors.append(f"'dedup_key' must be at most {DEDUP_KEY_MAX} characters")
    elif action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is required to {action}")
    if action == "trigger" or "payload" in event:
        errors += _payload_errors(event.get("payload"))
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            errors.append(f"'{name}' must be a string")
    errors += _context_errors(event, "links", required="href", optional=("text",))
    errors += _context_errors(event, "images", required="src", optional=("href", "alt"))
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is required for a trigger (an object)"]
    errors = [f"unknown field 'payload.{name}'" for name in sorted(set(payload) - PAYLOAD_FIELDS)]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is required (a string)")
    elif len(summary) > SUMMARY_MAX:
        errors.append(f"'payload.summary' must be at most {SUMMARY_MAX} characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source:
        errors.append("'payload.source' is required (a string)")
    if payload.get("severity") not in SEVERITIES:
        errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    timestamp = payload.get("timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp))
        except ValueError:
            errors.append("'payload.timestamp' must be an ISO 8601 time")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _context_errors(event: dict[str, Any], name: str, *, required: str,
                    optional: tuple[str, ...]) -> list[str]:
    if name not in event:
        return []
    items = event[name]
    if not isinstance(items, list):
        return [f"'{name}' must be a list"]
    errors = []
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get(required), str):
            errors.append(f"'{where}.{required}' is required (a string)")
            continue
        for key in sorted(set(item) - {required, *optional}):
            errors.append(f"unknown field '{where}.{key}'")
    return errors


@dataclass
class PagerDutyAlert:
    """An alert as PagerDuty holds it: opened by a trigger, then acknowledged and resolved."""

    routing_key: str
    dedup_key: str
    status: str  # triggered | acknowledged | resolved
    summary: str
    severity: str
    actions: list[str] = field(default_factory=list)  # every event applied to it, in order


@dataclass
class AlertBook:
    """The events a service accepted and the alerts they made (thread-safe)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # ack/resolve with no open alert
    alerts: list[PagerDutyAlert] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ingest(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Take one request body; the status and JSON body PagerDuty would answer."""
        try:
            event = json.loads(body)
        except ValueError:
            return 400, {"status": "Unrecognized object",
                         "message": "Event object format is unrecognized",
                         "errors": ["JSON parse error"]}
        errors = event_errors(event)
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid",
                         "errors": errors}
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        with self._lock:
            self.events.append(event)
            self._apply(event, dedup_key)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}

    def latest(self, routing_key: str, dedup_key: str) -> PagerDutyAlert | None:
        with self._lock:
            found = [a for a in self.alerts
                     if a.routing_key == routing_key and a.dedup_key == dedup_key]
        return found[-1] if found else None

    def _apply(self, event: dict[str, Any], dedup_key: str) -> None:
        routing_key, action = event["routing_key"], event["event_action"]
        open_alert = next((a for a in reversed(self.alerts)
                           if a.routing_key == routing_key and a.dedup_key == dedup_key
                           and a.status != "resolved"), None)
        if action == "trigger":
            if open_alert is None:
                payload = event["payload"]
                open_alert = PagerDutyAlert(routing_key, dedup_key, "triggered",
                                            payload["summary"], payload["severity"])
                self.alerts.append(open_alert)
            open_alert.actions.append(action)
        elif open_alert is None:
            self.dropped.append(event)
        else:
            open_alert.status = "acknowledged" if action == "acknowledge" else "resolved"
            open_alert.actions.append(action)
