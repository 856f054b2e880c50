"""Probes and the Prometheus scrape. None of them counts towards the SLO."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response

from billing_core.errors import DatabaseUnavailable
from billing_core.http import exposition
from billing_engine.api.deps import ServicesDep
from billing_engine.operability.schemas import AliveOut, ChecksOut, NotReadyOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up", response_model=AliveOut)
def healthz() -> AliveOut:
    return AliveOut(status="ok")


@router.get("/live", summary="The process is up", response_model=AliveOut)
def live() -> AliveOut:
    return AliveOut(status="ok")


@router.get(
    "/ready",
    summary="The engine can serve: its database answers",
    response_model=ReadyOut,
    responses={503: {"model": NotReadyOut, "description": "The database is unreachable"}},
)
def ready(services: ServicesDep) -> JSONResponse:
    # Which payment provider this engine talks to: "stripe", or "simulated" without a key.
    provider = services.provider.name
    try:
        services.housekeeper.check_ready()
    except DatabaseUnavailable as exc:
        reason = f"database unreachable: {exc.reason}"
        body = NotReadyOut(
            error="database_unavailable",
            message=reason,
            errors=[],
            status="not_ready",
            reason=reason,
            checks=ChecksOut(database="unreachable"),
            payment_provider=provider,
        )
        return JSONResponse(status_code=503, content=body.model_dump())
    ready = ReadyOut(status="ready", checks=ChecksOut(database="ok"), payment_provider=provider)
    return JSONResponse(status_code=200, content=ready.model_dump())


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(services: ServicesDep, request: Request) -> Response:
    services.usage.update_lag()
    # OpenMetrics when the scraper asks for it (Prometheus does): it carries the latency
    # histogram's exemplars (trace ids); the classic text format otherwise.
    body, content_type = exposition(services.metrics.registry, request.headers.get("accept"))
    return Response(body, media_type=content_type)
