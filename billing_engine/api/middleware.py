"""Request id, request metrics and one log line per request, as plain ASGI middleware."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from billing_core.logs import request_id_var
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
                self.metrics.http_duration.labels(method, endpoint).observe(elapsed)
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
