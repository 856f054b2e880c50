"""One JSON post to an HTTP receiver and its answer as a DeliveryResult (webhook, PagerDuty).

The answer maps as Slack's does: any 2xx is sent; 429 is `rate_limited`, retried after the
receiver's `Retry-After` (seconds or an HTTP date) or the caller's default wait; 5xx is
`server_error`, retried with the outbox's backoff; any other status is a permanent `rejected`.
Connection failures are `connection` and slow answers `timeout`, both retried. No detail ever
carries one of the `secrets` the caller names (a URL with a token in it, a routing key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from alerts import __version__
from alerts.delivery.message import DeliveryResult
from alerts.delivery.slack import parse_retry_after

USER_AGENT = f"billing-alerts/{__version__}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def post_json(client: httpx.Client, url: str, payload: Any, *, timeout: float,
              headers: Mapping[str, str] | None = None, auth: httpx.Auth | None = None,
              secrets: Iterable[str] = (), rate_limit_wait: float | None = None
              ) -> tuple[DeliveryResult, httpx.Response | None]:
    """Post once; how it went, and the response when there was one."""
    hidden = (url, *secrets)
    try:
        response = client.post(url, json=payload, timeout=timeout,
                               auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                               headers={"User-Agent": USER_AGENT, **(headers or {})})
    except httpx.TimeoutException as exc:
        return _failed("timeout", f"timed out: {type(exc).__name__}", hidden), None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return _failed("rejected", f"bad URL: {exc}", hidden, permanent=True), None
    except httpx.TransportError as exc:
        return _failed("connection", f"{type(exc).__name__}: {exc}", hidden), None
    return answer(response, secrets=hidden, rate_limit_wait=rate_limit_wait), response


def answer(response: httpx.Response, *, secrets: Iterable[str] = (),
           rate_limit_wait: float | None = None) -> DeliveryResult:
    """What an HTTP answer means for the message."""
    status = response.status_code
    said = f"HTTP {status}: {response.text[:200].strip()}"
    if 200 <= status < 300:
        return DeliveryResult(ok=True, detail=scrub(said, secrets))
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return DeliveryResult(ok=False, reason="rate_limited", detail=scrub(said, secrets),
                              retry_after=wait if wait is not None else rate_limit_wait)
    if status >= 500:
        return _failed("server_error", said, secrets)
    # 4xx (a payload or credential refused, an unknown endpoint) and anything unexpected:
    # posting the same thing again cannot change the answer.
    return _failed("rejected", said, secrets, permanent=True)


def _failed(reason: str, detail: str, secrets: Iterable[str], *,
            permanent: bool = False) -> DeliveryResult:
    return DeliveryResult(ok=False, permanent=permanent, reason=reason,
                          detail=scrub(detail, secrets))
