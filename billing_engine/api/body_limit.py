"""The request body size limit, as plain ASGI middleware.

A request whose `Content-Length` is over the limit is answered 413 at once: no route runs and
no byte of its body is read. A body without a length (chunked) is counted as it streams in; the
chunk that crosses the limit stops the reading, whatever the route was doing with it is dropped,
and the answer is the same 413. Either way nothing is stored and no more than the limit (plus one
chunk) is ever held in memory.
"""

from __future__ import annotations

import json
from typing import Any

from billing_core.errors import ContentTooLarge
from billing_core.http import error_json

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
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
