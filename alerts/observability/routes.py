"""The probes and the metrics: GET /healthz, /ready and /metrics (open, like the engine's)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.requests import Request

from alerts.api.deps import Metrics, ReadinessCheck
from alerts.observability.schemas import Health, NotReady, Ready
from billing_core.http import exposition

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses={
    503: {"model": NotReady, "description": "The database does not answer"}})
def ready(readiness: ReadinessCheck) -> Ready | JSONResponse:
    """The process can serve: its database answers."""
    answer = readiness.check()
    if isinstance(answer, NotReady):
        return JSONResponse(status_code=503, content=answer.model_dump(mode="json"))
    return answer


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"description": "Every metric, in the Prometheus text format"}})
def metrics(registry: Metrics, request: Request) -> Response:
    """Prometheus metrics (names in docs/metrics.md); OpenMetrics when the scraper asks."""
    body, content_type = exposition(registry.registry, request.headers.get("accept"))
    return Response(body, media_type=content_type)
