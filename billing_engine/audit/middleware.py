"""Plain ASGI middleware that records every admin mutation through the AuditLog (the rule is in
`billing_engine.audit.service`)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from billing_core.logs import request_id_var
from billing_engine.api.middleware import header
from billing_engine.audit.keys import STATE_ACTOR, STATE_REFUSAL
from billing_engine.audit.service import (
    AUDITED_METHODS,
    AUDITED_PREFIXES,
    MAX_BODY_CAPTURE,
    REFUSED_STATUSES,
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
            actor = state.get(STATE_ACTOR)
            if recorded or scope.get("route") is None or actor is None:
                return  # unauthenticated: counted (auth_failures_total), never stored
            recorded = True
            refusal = state.get(STATE_REFUSAL)
            if refusal is not None or status in REFUSED_STATUSES:
                # Refused: what was asked for is not kept, only that it was refused and why.
                summary = summarise(body=b"", body_bytes=0, content_type=None, query="",
                                    refusal=refusal or str(status))
            else:
                summary = summarise(
                    body=bytes(captured),
                    body_bytes=received,
                    content_type=header(scope, b"content-type"),
                    query=scope.get("query_string", b"").decode("latin-1"),
                )
            await anyio.to_thread.run_sync(
                lambda: self.audit.record(
                    actor=actor,
                    method=scope["method"],
                    path=scope["path"],
                    path_params=dict(scope.get("path_params") or {}),
                    summary=summary,
                    status=status,
                    request_id=request_id_var.get(),
                )
            )

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
