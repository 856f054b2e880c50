"""Generic webhook: each Message posted as Alertmanager's webhook payload, version 4, so a
receiver built for Alertmanager (a Teams bridge, a ticket system) takes it unchanged.

The body has what Alertmanager's webhook notifier sends (its `notify/webhook` package and the
`Data` and `Alert` types of its `template` package, up to 0.31): `version` "4", `groupKey`,
`truncatedAlerts`, `status`, `receiver`, `groupLabels`, `commonLabels`, `commonAnnotations`,
`externalURL` and `alerts`, each alert with `status`, `labels`, `annotations`, `startsAt`,
`endsAt`, `generatorURL` and `fingerprint`. Times are written as Go writes a `time.Time` in
JSON; a firing alert's `endsAt` is Go's zero time, as Alertmanager sends it.

Where our process differs from Alertmanager: a message carries the alerts of its group that
changed state together in one evaluation round, where Alertmanager repeats every alert of the
group in each notification; `externalURL` is the console's alerts page and `generatorURL` the
console's page for the alert (Prometheus puts a graph link there).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alerts.delivery.http import post_json
from alerts.delivery.message import AlertDetail, DeliveryResult, Message, alert_details

DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10.0
WEBHOOK_VERSION = "4"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def go_time(moment: datetime | None) -> str:
    """A time as Go's encoding/json writes a time.Time (RFC 3339, fraction without trailing
    zeros, UTC as Z); None is Go's zero time."""
    if moment is None:
        return GO_ZERO_TIME
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def label_set(labels: Mapping[str, str]) -> str:
    """Labels as Prometheus' model.LabelSet prints them: `{a="x", b="y"}`, sorted by name."""
    pairs = (f"{name}={json.dumps(labels[name], ensure_ascii=False)}" for name in sorted(labels))
    return "{" + ", ".join(pairs) + "}"


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def alertmanager_order(detail: AlertDetail) -> tuple[Any, ...]:
    """Alertmanager lists a group's alerts by job, then instance (an alert without one after
    those with), then by their whole label sets."""
    labels = detail.labels
    return ("job" not in labels, labels.get("job", ""), "instance" not in labels,
            labels.get("instance", ""), sorted(labels.items()))


def _alert(detail: AlertDetail) -> dict[str, Any]:
    return {
        "status": detail.status,
        "labels": dict(detail.labels),
        "annotations": dict(detail.annotations),
        "startsAt": go_time(detail.starts_at),
        "endsAt": go_time(detail.ends_at),
        "generatorURL": detail.console_url,
        "fingerprint": detail.fingerprint,
    }


def _external_url(message: Message) -> str:
    """The console's alerts page: the console URL of the message without its query."""
    parts = urlsplit(message.console_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def build_payload(message: Message, *, receiver: str) -> dict[str, Any]:
    """The webhook body for a message sent to the receiver of that name."""
    details = sorted(alert_details(message), key=alertmanager_order)
    group = dict(message.group_labels) or {"alertname": message.alertname}
    return {
        "version": WEBHOOK_VERSION,
        # Alertmanager's is "<route key>:<group labels>"; ours is a group of the root route.
        "groupKey": f"{{}}:{label_set(group)}",
        "truncatedAlerts": 0,
        "status": "firing" if any(d.status == "firing" for d in details) else "resolved",
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": _common([d.labels for d in details]),
        "commonAnnotations": _common([d.annotations for d in details]),
        "externalURL": _external_url(message),
        "alerts": [_alert(detail) for detail in details],
    }


class WebhookChannel:
    """Posts to one webhook URL, with a bearer token or basic auth when the routes file gives
    one. The URL and the credentials are secrets: never in a detail or a repr."""

    name = "webhook"

    def __init__(self, url: str, *, receiver: str, bearer_token: str = "",
                 basic_auth: tuple[str, str] | None = None,
                 timeout_seconds: float = DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
                 client: httpx.Client | None = None) -> None:
        self.url = url
        self.receiver = receiver
        self.timeout_seconds = timeout_seconds
        self._headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self._auth = httpx.BasicAuth(*basic_auth) if basic_auth else None
        self._secrets = tuple(s for s in (bearer_token, *(basic_auth or ())) if s)
        self._own_client = client is None
        self._client = client or httpx.Client(follow_redirects=False)

    def __repr__(self) -> str:
        return f"WebhookChannel(receiver={self.receiver!r}, timeout_seconds={self.timeout_seconds})"

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def send(self, message: Message) -> DeliveryResult:
        if not self.url:
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail="no webhook URL set")
        if message.kind == "budget" or message.state == "acked":
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail="webhooks are sent neither budget messages (email and "
                                         "Slack only) nor acknowledgements")
        try:
            payload = build_payload(message, receiver=self.receiver)
        except (KeyError, ValueError) as exc:
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail=f"cannot build: {exc!r}")
        result, _response = post_json(self._client, self.url, payload,
                                      timeout=self.timeout_seconds, headers=self._headers,
                                      auth=self._auth, secrets=self._secrets)
        return result
