"""What routes depend on, each as an `Annotated` alias: the service a route works through, and
the admin key that guards every change and every support view.

The app holds the wired `AlertsProcess` (`app.state.process`); a route never sees the process,
only the one service it needs.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request

from alerts.budget.service import BudgetHistoryService
from alerts.delivery.service import DeliveryCheck
from alerts.observability.metrics import AlertsMetrics
from alerts.observability.service import Readiness
from alerts.process import AlertsProcess
from alerts.rules.service import AlertService
from alerts.silences.service import SilenceService
from billing_core.errors import Unauthorized


def _process(request: Request) -> AlertsProcess:
    return cast(AlertsProcess, request.app.state.process)


def _alerts(request: Request) -> AlertService:
    return _process(request).alerts


def _silences(request: Request) -> SilenceService:
    return _process(request).silences


def _budget_notices(request: Request) -> BudgetHistoryService:
    return _process(request).budget_history


def _delivery_checks(request: Request) -> DeliveryCheck:
    return _process(request).delivery_checks


def _readiness(request: Request) -> Readiness:
    return _process(request).readiness


def _metrics(request: Request) -> AlertsMetrics:
    return _process(request).metrics


Alerts = Annotated[AlertService, Depends(_alerts)]
Silences = Annotated[SilenceService, Depends(_silences)]
BudgetNotices = Annotated[BudgetHistoryService, Depends(_budget_notices)]
DeliveryChecks = Annotated[DeliveryCheck, Depends(_delivery_checks)]
ReadinessCheck = Annotated[Readiness, Depends(_readiness)]
Metrics = Annotated[AlertsMetrics, Depends(_metrics)]


def require_admin(request: Request, x_admin_key: Annotated[
        str | None, Header(description="The admin key (ADMIN_API_KEY)")] = None) -> None:
    """The admin key, compared in constant time; 401 naming the header otherwise."""
    if not x_admin_key:
        raise Unauthorized("X-Admin-Key", "is required")
    expected = _process(request).settings.admin_api_key.encode()
    if not hmac.compare_digest(x_admin_key.encode(), expected):
        raise Unauthorized("X-Admin-Key", "is not valid")


# `dependencies=ADMIN_ONLY` on a route or router: it answers 401 without the admin key.
ADMIN_ONLY: list[Any] = [Depends(require_admin)]
