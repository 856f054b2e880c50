"""Slack through its Web API (`chat.postMessage` with a bot token), for what needs threads: an
incident's updates go to the thread its declaration opened, its resolution is also shown in the
channel. The blocks are the incoming-webhook ones (`slack.build_payload`).

Slack answers HTTP 200 with `{"ok": false, "error": ...}` for most refusals: a bad token, a
channel the bot is not in, a bad payload are permanent; `ratelimited` (HTTP 429 with
Retry-After) and Slack's own trouble are retried. The token is a secret: never in a detail.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from alerts.delivery.message import DeliveryResult, Message
from alerts.delivery.slack import DEFAULT_SLACK_TIMEOUT_SECONDS, build_payload, parse_retry_after

DEFAULT_SLACK_API_URL = "https://slack.com/api"
# Slack's errors worth a retry; any other error is the configuration's or the payload's.
RETRYABLE = frozenset({"internal_error", "fatal_error", "service_unavailable",
                       "request_timeout", "ratelimited"})


class IncidentThreads(Protocol):
    """Where each incident's Slack thread is kept (the incidents store)."""

    def slack_thread(self, incident_id: int) -> str | None: ...

    def set_slack_thread(self, incident_id: int, thread: str) -> None: ...


class SlackApiChannel:
    name = "slack"

    def __init__(self, token: str, channel: str, *, api_url: str = DEFAULT_SLACK_API_URL,
                 threads: IncidentThreads | None = None,
                 timeout_seconds: float = DEFAULT_SLACK_TIMEOUT_SECONDS) -> None:
        self.token = token
        self.channel = channel
        self.url = f"{api_url.rstrip('/')}/chat.postMessage"
        self.threads = threads
        self.timeout_seconds = timeout_seconds
        self._client = httpx.Client(follow_redirects=False)

    def __repr__(self) -> str:
        return f"SlackApiChannel(channel={self.channel!r})"

    def close(self) -> None:
        self._client.close()

    def _incident(self, message: Message) -> tuple[int | None, str]:
        if message.kind != "incident":
            return None, ""
        raw = message.labels.get("incident_id", "")
        return (int(raw) if raw.isdigit() else None), message.labels.get("incident_what", "")

    def send(self, message: Message) -> DeliveryResult:
        try:
            body: dict[str, Any] = {**build_payload(message), "channel": self.channel}
        except (KeyError, ValueError) as exc:
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail=f"cannot build: {exc!r}")
        incident_id, what = self._incident(message)
        if incident_id is not None and what != "declared" and self.threads is not None:
            thread = self.threads.slack_thread(incident_id)
            if thread:  # the declaration was posted: this goes to its thread
                body["thread_ts"] = thread
                if what == "resolved":
                    body["reply_broadcast"] = True  # and the channel sees it is over
        try:
            response = self._client.post(self.url, json=body, timeout=self.timeout_seconds,
                                         headers={"Authorization": f"Bearer {self.token}"})
        except httpx.TimeoutException as exc:
            return DeliveryResult(ok=False, reason="timeout",
                                  detail=f"timed out: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return DeliveryResult(ok=False, reason="connection",
                                  detail=self._safe(f"{type(exc).__name__}: {exc}"))
        result = self._answer(response)
        if result.ok and incident_id is not None and what == "declared" and self.threads:
            ts = response.json().get("ts")
            if isinstance(ts, str) and ts:
                self.threads.set_slack_thread(incident_id, ts)
        return result

    def _answer(self, response: httpx.Response) -> DeliveryResult:
        status = response.status_code
        if status == 429:
            return DeliveryResult(ok=False, reason="rate_limited",
                                  retry_after=parse_retry_after(
                                      response.headers.get("Retry-After")),
                                  detail="HTTP 429: ratelimited")
        if status >= 500:
            return DeliveryResult(ok=False, reason="server_error", detail=f"HTTP {status}")
        try:
            answer = response.json()
        except ValueError:
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail=self._safe(f"HTTP {status}: {response.text[:200]}"))
        if status == 200 and answer.get("ok") is True:
            return DeliveryResult(ok=True, detail=f"posted to {self.channel} "
                                                  f"(ts {answer.get('ts', '?')})")
        error = str(answer.get("error") or f"HTTP {status}")[:200]
        if error in RETRYABLE:
            return DeliveryResult(ok=False, reason="server_error", detail=f"Slack: {error}")
        return DeliveryResult(ok=False, permanent=True, reason="rejected",
                              detail=self._safe(f"Slack: {error}"))

    def _safe(self, detail: str) -> str:
        return detail.replace(self.token, "<token>") if self.token else detail
