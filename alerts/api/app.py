"""The alerts process' HTTP API (port 8007): health, metrics, alerts, acks, silences, budget
history and delivery tests. Reads are open like the engine's; every change and every support
view needs the admin key (X-Admin-Key, compared in constant time).

Every answer that is not 2xx has billing_core's error shape, `{"error", "message", "errors":
[{"field", "reason"}]}`, like the engine's; each route declares in OpenAPI the ones it gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from alerts import __version__
from alerts.budget.routes import router as budget_router
from alerts.delivery.routes import router as delivery_router
from alerts.observability.routes import router as health_router
from alerts.process import AlertsProcess
from alerts.rules.routes import router as alerts_router
from alerts.silences.routes import router as silences_router
from billing_core.http import install_error_handlers

ROUTERS = (health_router, alerts_router, silences_router, budget_router, delivery_router)


def create_app(process: AlertsProcess, *, run_scheduler: bool = True) -> FastAPI:
    """The app over a wired process; `run_scheduler=False` leaves the scheduler stopped (the
    CLI's one-shot commands and most tests)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_scheduler and process.scheduler is not None:
            process.scheduler.start()
        try:
            yield
        finally:
            if run_scheduler and process.scheduler is not None:
                process.scheduler.shutdown()

    app = FastAPI(title="Alerts process", version=__version__, lifespan=lifespan,
                  description="Evaluates the Prometheus alerting rules and customer budgets, "
                  "and delivers email and Slack notifications that link their runbook section.")
    app.state.process = process
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
