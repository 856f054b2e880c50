"""The alerts process' HTTP API (port 8007): health, metrics, alerts, acks, silences, budget
history and delivery tests. Every route but the probes, `/metrics` and the API's description
needs a staff credential with the role `alerts.access.policy` names, checked by one dependency
on the whole app (`alerts.api.deps.authorize`) with the engine's keys and code.

Every answer that is not 2xx has billing_core's error shape, `{"error", "message", "errors":
[{"field", "reason"}]}`, like the engine's; each route declares in OpenAPI the ones it gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from alerts import __version__
from alerts.access.policy import ALERTS_POLICY
from alerts.api.deps import authorize
from alerts.budget.routes import router as budget_router
from alerts.delivery.routes import router as delivery_router
from alerts.incidents.routes import router as incidents_router
from alerts.observability.routes import router as health_router
from alerts.oncall.routes import router as oncall_router
from alerts.process import AlertsProcess
from alerts.rules.routes import router as alerts_router
from alerts.silences.routes import router as silences_router
from billing_core.access import Public, StaffRole
from billing_core.http import api_routes, error_responses, install_error_handlers

ROUTERS = (health_router, alerts_router, silences_router, budget_router, delivery_router,
           oncall_router, incidents_router)


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
                  dependencies=[Depends(authorize)],
                  description="Evaluates the Prometheus alerting rules and customer budgets, "
                  "and delivers email and Slack notifications that link their runbook section.")
    app.state.process = process
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    declare_access(app)
    return app


def declare_access(app: FastAPI) -> None:
    """Each route's OpenAPI entry states its access rule and declares its 401 and 403."""
    for route in api_routes(app.routes):
        rules = {ALERTS_POLICY.get((m, route.path_format)) for m in route.methods or ()}
        if all(isinstance(r, Public) for r in rules):
            continue
        roles = sorted({r.role.name for r in rules if isinstance(r, StaffRole)})
        rule = (f"Access: staff with the role {' or '.join(roles)} or higher." if roles
                else "Access: no policy entry; refused to everyone.")
        route.description = f"{route.description}\n\n{rule}".strip()
        route.responses = {**error_responses(401, 403), **route.responses}
