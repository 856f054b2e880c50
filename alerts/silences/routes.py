"""Silences over HTTP: list and read them (viewer); add and expire them (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from alerts.api.contract import BODY_ERRORS, identifier
from alerts.api.deps import Caller, Silences
from alerts.silences.schemas import SilenceIn, SilenceList, SilenceOut
from alerts.silences.service import SilenceState
from billing_core.http import error_responses

router = APIRouter(tags=["alerts"])
SilenceId = Annotated[str, identifier("The silence's id")]


@router.get("/v1/silences", response_model=SilenceList, responses=error_responses(422, 503))
def list_silences(silences: Silences, state: SilenceState = "active") -> SilenceList:
    """Silences by state: active (the default; pending ones included), expired, or all."""
    return silences.list(state)


@router.get("/v1/silences/{silence_id}", response_model=SilenceOut,
            responses=error_responses(404, 422, 503))
def get_silence(silence_id: SilenceId, silences: Silences) -> SilenceOut:
    return silences.get(silence_id)


@router.post("/v1/silences", status_code=201, response_model=SilenceOut,
             responses={**BODY_ERRORS, **error_responses(503)})
def add_silence(body: SilenceIn, silences: Silences, caller: Caller) -> SilenceOut:
    """Silence the alerts matching every matcher until `expires_at` (or for `duration`)."""
    return silences.add(body, by=caller)


@router.delete("/v1/silences/{silence_id}", response_model=SilenceOut,
               responses=error_responses(404, 422, 503))
def expire_silence(silence_id: SilenceId, silences: Silences, caller: Caller) -> SilenceOut:
    """End a silence now (an expired one stays as it was)."""
    return silences.expire(silence_id, by=caller)
