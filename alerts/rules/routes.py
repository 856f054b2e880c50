"""Alerts over HTTP: list them (viewer); acknowledge one (operator)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter

from alerts.api.contract import BODY_ERRORS, identifier
from alerts.api.deps import Alerts, Caller
from alerts.rules.schemas import AckIn, AlertList, AlertOut
from billing_core.http import ErrorBody, error_responses

router = APIRouter(tags=["alerts"])
Fingerprint = Annotated[str, identifier("The alert's fingerprint (16 hex digits)")]


@router.get("/v1/alerts", response_model=AlertList, responses=error_responses(422, 503))
def list_alerts(alerts: Alerts, state: Literal["active", "recent"] = "active") -> AlertList:
    """Active alerts (pending and firing), or recent ones (also those resolved in the last
    24 hours), each with its delivery status per channel."""
    return alerts.list(state)


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
