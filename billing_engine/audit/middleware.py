"""Plain ASGI middleware that completes the audit row of every admin mutation with its status and
request summary (the row itself is written ahead by the access check; the rule is in
`billing_engine.audit.service`)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from billing_engine.api.middleware import header
from billing_engine.audit.keys import STATE_AUDIT_ID
from billing_engine.audit.service import (
    AUDITED_METHODS,
    AUDITED_PREFIXES,
    MAX_BODY_CAPTURE,
    AuditLog,
    summarise,
)


class AuditMiddleware:
    """Plain ASGI: records admin mutations through an AuditLog (see the module's rule)."""

    def __init__(self, app: Any, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in AUDITED_METHODS
            or not str(scope.get("path", "")).startswith(AUDITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        captured = bytearray()
        received = 0
        recorded = False

        async def receive_and_keep() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if len(captured) < MAX_BODY_CAPTURE:
                    captured.extend(chunk[: MAX_BODY_CAPTURE - len(captured)])
            return message

        async def record(status: int) -> None:
            nonlocal recorded
            entry_id = state.get(STATE_AUDIT_ID)
            if recorded or entry_id is None:  # refused, or matched no route: no row
                return
            recorded = True
            summary = summarise(
                body=bytes(captured),
                body_bytes=received,
                content_type=header(scope, b"content-type"),
                query=scope.get("query_string", b"").decode("latin-1"),
            )
            await anyio.to_thread.run_sync(
                lambda: self.audit.complete(
                    entry_id, path_params=dict(scope.get("path_params") or {}),
                    summary=summary, status=status))

        async def send_after_recording(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # Written before the answer leaves: a caller who saw the status can find it.
                await record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_after_recording)
        except Exception:
            await record(500)
            raise
