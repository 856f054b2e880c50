"""Every error answers JSON that names the field and the reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from billing_engine.customers.service import NotFound
from billing_engine.db import DatabaseUnavailable

log = logging.getLogger("billing_engine.api")


class ApiError(Exception):
    def __init__(self, status: int, error: str, *, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.field = field
        self.reason = reason


def error_body(error: str, message: str, fields: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    return {"error": error, "message": message, "errors": list(fields)}


def field_path(loc: Sequence[Any]) -> str:
    """('body', 'heartbeats', 3, 'state') -> 'heartbeats[3].state'."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors()[:50]:
            reason = str(err.get("msg", "invalid"))
            loc = err.get("loc", ())
            if err.get("type") == "missing":
                reason = "is required"
            if err.get("type") == "json_invalid":
                # loc is ('body', character offset): name the body, keep the offset in the reason.
                detail = (err.get("ctx") or {}).get("error", "malformed")
                where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
                reason = f"is not valid JSON ({detail}{where})"
                loc = ("body",)
            fields.append({"field": field_path(loc), "reason": reason})
        message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5])
        return JSONResponse(status_code=422, content=error_body("invalid_request", message, fields))

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        fields = [{"field": exc.field, "reason": exc.reason}] if exc.field else []
        message = f"{exc.field}: {exc.reason}" if exc.field else exc.reason
        headers = {"WWW-Authenticate": "X-Admin-Key"} if exc.status == 401 else None
        return JSONResponse(
            status_code=exc.status,
            content=error_body(exc.error, message, fields),
            headers=headers,
        )

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(
            status_code=404,
            content=error_body(
                "not_found", exc.message, [{"field": exc.field, "reason": exc.message}]
            ),
        )

    @app.exception_handler(DatabaseUnavailable)
    async def _db(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.error("database unavailable", extra={"reason": str(exc)})
        return JSONResponse(
            status_code=503,
            content=error_body(
                "database_unavailable", "the database is unreachable; nothing was stored"
            ),
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return JSONResponse(status_code=404, content=error_body("not_found", "no such route"))
        if exc.status_code == 405:
            return JSONResponse(
                status_code=405, content=error_body("method_not_allowed", str(exc.detail))
            )
        return JSONResponse(
            status_code=exc.status_code, content=error_body("http_error", str(exc.detail))
        )
