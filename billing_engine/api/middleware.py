"""Plain ASGI middleware: request id, request metrics and one log line per request; and the
request body size limit.

The body limit: a request whose `Content-Length` is over it is answered 413 at once: no route
runs and no byte of its body is read. A body without a length (chunked) is counted as it streams
in; the chunk that crosses the limit stops the reading, whatever the route was doing with it is
dropped, and the answer is the same 413. Either way nothing is stored and no more than the limit
(plus one chunk) is ever held in memory.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from billing_core.errors import ContentTooLarge
from billing_core.http import error_json
from billing_core.logs import request_id_var
from billing_core.tracing import exemplar
from billing_engine.operability.metrics import EngineMetrics

log = logging.getLogger("billing_engine.http")
# Probes and scrapes are served but kept out of the SLO's request counts.
UNCOUNTED = frozenset({"/metrics", "/healthz", "/live", "/ready"})
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class ObservabilityMiddleware:
    def __init__(self, app: Any, metrics: EngineMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            if endpoint not in UNCOUNTED:
                self.metrics.http_requests.labels(method, endpoint, str(status)).inc()
                self.metrics.http_duration.labels(method, endpoint).observe(
                    elapsed, exemplar=exemplar(error=status >= 500))
                level = logging.WARNING if status >= 500 else logging.INFO
                log.log(
                    level,
                    "request",
                    extra={
                        "method": method,
                        "endpoint": endpoint,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """A request header from an ASGI scope, or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


# Bodies up to this size are parsed on the event loop; larger ones in a worker thread.
PARSE_ON_LOOP_BYTES = 64 * 1024


def describe(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def too_large(limit: int) -> ContentTooLarge:
    return ContentTooLarge(
        "body", f"is larger than the limit of {describe(limit)} ({limit} bytes, MAX_BODY_BYTES)"
    )


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        tripped = False
        started = False

        async def receive_within_limit() -> dict[str, Any]:
            nonlocal received, tripped
            if tripped:
                return {"type": "http.disconnect"}
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    tripped = True
                    raise too_large(self.max_bytes)
            return message

        async def send_unless_tripped(message: dict[str, Any]) -> None:
            nonlocal started
            if tripped and not started:
                return  # the app's answer to the interrupted body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_unless_tripped)
        except Exception:
            if not tripped or started:
                raise
        if tripped and not started:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(error_json(too_large(self.max_bytes))).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    value = header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None
