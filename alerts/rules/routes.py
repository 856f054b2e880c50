"""Alerts over HTTP: list them (viewer); acknowledge one (operator)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from alerts.api.contract import BODY_ERRORS, identifier
from alerts.api.deps import Alerts, Caller
from alerts.rules.schemas import AckIn, AlertHistory, AlertList, AlertOut
from billing_core.http import ErrorBody, error_responses

router = APIRouter(tags=["alerts"])
Fingerprint = Annotated[str, identifier("The alert's fingerprint (16 hex digits)")]


@router.get("/v1/alerts", response_model=AlertList, responses=error_responses(422, 503))
def list_alerts(alerts: Alerts, state: Literal["active", "recent"] = "active") -> AlertList:
    """Active alerts (pending and firing), or recent ones (also those resolved in the last
    24 hours), each with its delivery status per channel."""
    return alerts.list(state)


@router.get("/v1/alerts/history", response_model=AlertHistory,
            responses=error_responses(422, 503))
def alert_history(
    alerts: Alerts,
    days: Annotated[int, Query(ge=1, le=3650, description="how far back")] = 30,
    alertname: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z_:][A-Za-z0-9_:]*$")]
    = None,
    severity: Annotated[str | None, Query(pattern=r"^P[0-3]$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AlertHistory:
    """Every alert episode that fired in the window (kept ALERTS_RETENTION_DAYS), with the time
    to acknowledge and to resolve, and per alert name how often it fired and the medians."""
    return alerts.history(days=days, alertname=alertname, severity=severity, limit=limit)


@router.post("/v1/alerts/{fingerprint}/ack", response_model=AlertOut,
             responses={**BODY_ERRORS, **error_responses(404),
                        409: {"model": ErrorBody, "description": "The alert is resolved: there "
                                                                 "is nothing to acknowledge"},
                        **error_responses(503)})
def ack(fingerprint: Fingerprint, alerts: Alerts, caller: Caller,
        body: AckIn | None = None) -> AlertOut:
    """Acknowledge an alert: no more repeats of this episode; it stays active until its
    condition clears, and a resolved message still goes out."""
    return alerts.ack(fingerprint, by=caller, note=(body or AckIn()).by)
