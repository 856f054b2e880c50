"""The HTTP side of `billing_core.errors`: one error body, one set of handlers, and the OpenAPI
declarations that say which error answers a route gives. Both processes' apps install these."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from billing_core.errors import BillingError, DatabaseUnavailable, UnavailableError

log = logging.getLogger("billing_core.http")
MAX_FIELD_ERRORS = 50
UNPARSABLE_BODY = "There was an error parsing the body"


class ResponseModel(BaseModel):
    """Base of every response body: a field the model does not declare is a bug, not data."""

    model_config = ConfigDict(extra="forbid")


# A time as both APIs have always written it: `datetime.isoformat()`, with its UTC offset
# (`2026-11-18T12:00:00+00:00`), documented as an RFC 3339 date-time.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# NUL (PostgreSQL cannot store it in text), other control characters but tab and newlines, and
# lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def storable(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL, control characters or unpaired surrogates")
    return value


# Free text a person typed that will be stored or searched: refused rather than half-stored.
# `Storable` goes last in an Annotated that also constrains the string (strip, lengths).
Storable = AfterValidator(storable)
StorableText = Annotated[str, Storable]


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is: `heartbeats[3].ts`, `org_id`, ...")
    reason: str = Field(description="What is wrong with it, in words")


class ErrorBody(BaseModel):
    """Every answer that is not 2xx has this shape."""

    error: str = Field(description="A stable code: invalid_request, not_found, unauthorized, ...")
    message: str = Field(description="The same, for people")
    errors: list[FieldError] = Field(description="One entry per field at fault (may be empty)")


# What each status means in the API, for the OpenAPI description of a route's answers.
STATUS_MEANINGS = {
    400: "The request is malformed: not signed as it must be, or not what the route reads",
    401: "The credential is missing or wrong",
    403: "The credential does not allow this",
    404: "The thing named in the path or query does not exist",
    409: "The request conflicts with what is stored",
    413: "The body is larger than the configured limit (`MAX_BODY_BYTES`)",
    415: "The body is not `application/json`",
    422: "A field is missing, of the wrong type or out of range; `errors` names each",
    429: "Too many failed authentications from this address or key prefix; see Retry-After",
    500: "The request was stored but could not be handled; it is safe to retry",
    502: "A service we call (Stripe, an SMTP relay, Slack) failed",
    503: "The database or a required setting is unavailable; nothing was stored",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its meaning and the error schema."""
    return {
        status: {"model": ErrorBody, "description": STATUS_MEANINGS[status]}
        for status in sorted(set(statuses))
    }


def error_body(error: str, message: str, fields: Iterable[dict[str, str]] = ()) -> dict[str, Any]:
    return {"error": error, "message": message, "errors": list(fields)}


def error_json(exc: BillingError) -> dict[str, Any]:
    fields = [{"field": exc.field, "reason": exc.reason}] if exc.field else []
    return error_body(exc.code, exc.public_message, fields)


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


def validation_fields(errors: Sequence[Any]) -> list[dict[str, str]]:
    fields = []
    for err in errors[:MAX_FIELD_ERRORS]:
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
    return fields


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = validation_fields(exc.errors())
        message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5])
        return JSONResponse(status_code=422, content=error_body("invalid_request", message, fields))

    @app.exception_handler(BillingError)
    async def _billing(_: Request, exc: BillingError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailable):
            log.error("database unavailable", extra={"reason": exc.reason[:200]})
        elif isinstance(exc, UnavailableError) or exc.status >= 500:
            log.warning("request failed", extra={"error": exc.code, "reason": exc.reason[:200]})
        headers = dict(exc.headers) if exc.headers else None
        return JSONResponse(status_code=exc.status, content=error_json(exc), headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and str(exc.detail).startswith(UNPARSABLE_BODY):
            # FastAPI could not read the body at all (e.g. a number too long to convert): the
            # body is what is wrong, like any other body that is not valid JSON.
            fields = [{"field": "body", "reason": "is not valid JSON that can be read"}]
            return JSONResponse(
                status_code=422, content=error_body("invalid_request", "body: unreadable", fields)
            )
        if exc.status_code == 404:
            return JSONResponse(status_code=404, content=error_body("not_found", "no such route"))
        # Starlette's own headers (the 405's `Allow`, which RFC 9110 requires) go out with it.
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            allowed = (headers or {}).get("Allow", "")
            reason = f"is not served here; allowed: {allowed}" if allowed else "is not served here"
            return JSONResponse(
                status_code=405, headers=headers,
                content=error_body("method_not_allowed", str(exc.detail),
                                   [{"field": "method", "reason": reason}]),
            )
        return JSONResponse(
            status_code=exc.status_code, content=error_body("http_error", str(exc.detail)),
            headers=headers,
        )


def api_routes(routes: Sequence[Any]) -> list[APIRoute]:
    """Every APIRoute of a route list, those of included routers too (FastAPI keeps them
    nested): what each app's access check and OpenAPI notes walk."""
    found: list[APIRoute] = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        if isinstance(route, APIRoute):
            found.append(route)
        elif nested is not None:
            found += api_routes(list(nested.routes))
    return found


def exposition(registry: Any, accept: str | None) -> tuple[bytes, str]:
    """A registry's samples in the format the scraper asked for: OpenMetrics (which carries
    exemplars) when its Accept header names it, Prometheus' text format otherwise."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.openmetrics import exposition as openmetrics

    if accept and "application/openmetrics-text" in accept:
        return openmetrics.generate_latest(registry), openmetrics.CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_LATEST
