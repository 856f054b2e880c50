"""What routes depend on, each as an `Annotated` alias: the service a route works through, and
the caller; and `authorize`, the access check the app applies to every route
(`alerts.access.policy` says what each route needs).

The app holds the wired `AlertsProcess` (`app.state.process`); a route never sees the process,
only the one service it needs.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from alerts.access.policy import ALERTS_POLICY
from alerts.access.service import MISSING, REFUSAL_TEXT
from alerts.budget.service import BudgetHistoryService
from alerts.delivery.service import DeliveryCheck
from alerts.incidents.service import IncidentService
from alerts.observability.metrics import AlertsMetrics
from alerts.observability.service import Readiness
from alerts.oncall.service import OnCallService
from alerts.process import AlertsProcess
from alerts.rules.service import AlertService
from alerts.silences.service import SilenceService
from billing_core.access import ADMIN_KEY_HEADER, AUTHORIZATION, Principal, Public, decide
from billing_core.errors import CredentialRequired, Forbidden


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


def _oncall(request: Request) -> OnCallService:
    return _process(request).oncall


def _incidents(request: Request) -> IncidentService:
    return _process(request).incidents


Alerts = Annotated[AlertService, Depends(_alerts)]
Silences = Annotated[SilenceService, Depends(_silences)]
BudgetNotices = Annotated[BudgetHistoryService, Depends(_budget_notices)]
DeliveryChecks = Annotated[DeliveryCheck, Depends(_delivery_checks)]
ReadinessCheck = Annotated[Readiness, Depends(_readiness)]
Metrics = Annotated[AlertsMetrics, Depends(_metrics)]
OnCall = Annotated[OnCallService, Depends(_oncall)]
Incidents = Annotated[IncidentService, Depends(_incidents)]


def authorize(request: Request) -> None:
    """The one access check, applied to the whole app: the policy table's requirement for the
    matched route against the credential presented. A route without an entry is refused (403);
    the principal is left in the request state for the route (`Caller`)."""
    process = _process(request)
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    requirement = ALERTS_POLICY.get((method, str(getattr(route, "path_format", ""))))
    principal: Principal | None = None
    if requirement is not None and not isinstance(requirement, Public):
        caller = process.access.caller(authorization=request.headers.get(AUTHORIZATION),
                                       admin_key=request.headers.get(ADMIN_KEY_HEADER))
        if caller.principal is None and caller.reason != MISSING:
            process.metrics.auth_failures.labels(caller.reason or "unknown").inc()
            raise CredentialRequired(caller.field, REFUSAL_TEXT.get(caller.reason or "",
                                                                    "is not a valid key"))
        principal = caller.principal
    verdict = decide(requirement, principal)
    if not verdict.allowed:
        if verdict.status == 401:
            process.metrics.auth_failures.labels(MISSING).inc()
            raise CredentialRequired(verdict.field or AUTHORIZATION,
                                     verdict.reason or REFUSAL_TEXT[MISSING])
        process.metrics.access_denied.labels(verdict.code or "other").inc()
        raise Forbidden(verdict.field or "route", verdict.reason or "refused")
    request.state.principal = principal


def _principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # only on a public route, which never asks for it
        raise Forbidden("route", "needs a credential")
    return principal


# The authenticated caller, on a route the policy does not leave public.
Caller = Annotated[Principal, Depends(_principal)]
