"""Incidents over HTTP: declare, update, resolve, the checklist and the post-mortem (operator);
list and read them with their timeline (viewer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from alerts.api.contract import BODY_ERRORS
from alerts.api.deps import Caller, Incidents
from alerts.incidents.schemas import (
    IncidentDetail,
    IncidentIn,
    IncidentList,
    PostmortemIn,
    PostmortemOut,
    ResolveIn,
    UpdateIn,
)
from billing_core.http import ErrorBody, error_responses

router = APIRouter(tags=["incidents"])
IncidentId = Annotated[int, Path(ge=1, le=2**53, description="The incident's number (INC-n)")]
TaskKey = Annotated[str, Path(pattern=r"^[0-9]{1,3}h-[0-9]{1,2}$", description="e.g. 24h-2")]
RESOLVED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The incident is resolved already"}}


@router.post("/v1/incidents", response_model=IncidentDetail, status_code=201,
             responses={**BODY_ERRORS, **error_responses(503)})
def declare(body: IncidentIn, incidents: Incidents, caller: Caller) -> IncidentDetail:
    """Declare an incident (P0 to P2), from alerts or from nothing: the incidents channel and
    the stakeholders the severity names are told at once."""
    return incidents.declare(body, by=caller)


@router.get("/v1/incidents", response_model=IncidentList, responses=error_responses(422, 503))
def list_incidents(incidents: Incidents, open_only: bool = False,
                   days: Annotated[int, Query(ge=1, le=3650)] = 90) -> IncidentList:
    """Incidents declared in the last `days`, newest first."""
    return incidents.listing(open_only=open_only, days=days)


@router.get("/v1/incidents/{incident_id}", response_model=IncidentDetail,
            responses=error_responses(404, 422, 503))
def read_incident(incident_id: IncidentId, incidents: Incidents) -> IncidentDetail:
    """One incident with its timeline and checklist."""
    return incidents.detail(incident_id)


@router.post("/v1/incidents/{incident_id}/updates", response_model=IncidentDetail,
             status_code=201, responses={**BODY_ERRORS, **RESOLVED,
                                         **error_responses(404, 503)})
def post_update(incident_id: IncidentId, body: UpdateIn, incidents: Incidents,
                caller: Caller) -> IncidentDetail:
    """A status update (to the incidents channel; resets the update clock) or a note (timeline
    only), optionally with a new status."""
    return incidents.update(incident_id, body, by=caller)


@router.post("/v1/incidents/{incident_id}/resolve", response_model=IncidentDetail,
             responses={**BODY_ERRORS, **RESOLVED, **error_responses(404, 503)})
def resolve(incident_id: IncidentId, body: ResolveIn, incidents: Incidents,
            caller: Caller) -> IncidentDetail:
    """Resolve: everyone told at declaration is told, the post-incident checklist starts."""
    return incidents.resolve(incident_id, body, by=caller)


@router.post("/v1/incidents/{incident_id}/tasks/{key}/done", response_model=IncidentDetail,
             responses={409: {"model": ErrorBody, "description": "Done already"},
                        **error_responses(404, 422, 503)})
def complete_task(incident_id: IncidentId, key: TaskKey, incidents: Incidents,
                  caller: Caller) -> IncidentDetail:
    """Tick a checklist item off."""
    return incidents.complete_task(incident_id, key, by=caller)


@router.get("/v1/incidents/{incident_id}/postmortem", response_model=PostmortemOut,
            responses=error_responses(404, 422, 503))
def read_postmortem(incident_id: IncidentId, incidents: Incidents) -> PostmortemOut:
    """The post-mortem in Markdown: as last edited, or drafted from data now."""
    return incidents.postmortem(incident_id)


@router.put("/v1/incidents/{incident_id}/postmortem", response_model=PostmortemOut,
            responses={**BODY_ERRORS, **error_responses(404, 503)})
def save_postmortem(incident_id: IncidentId, body: PostmortemIn, incidents: Incidents,
                    caller: Caller) -> PostmortemOut:
    """Save an edited post-mortem (it is no longer redrafted)."""
    return incidents.save_postmortem(incident_id, body, by=caller)
