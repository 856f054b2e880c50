"""GET /admin/audit: who did what with an admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from billing_core.http import error_responses
from billing_engine.api.deps import (
    ACTOR_PATTERN,
    ADMIN_ANSWERS,
    ORG_ID_PATTERN,
    ServicesDep,
)
from billing_engine.audit.schemas import AuditEntryOut

router = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)


@router.get(
    "/admin/audit",
    summary="Admin actions, newest first: who (key name), what, when, outcome",
    response_model=list[AuditEntryOut],
    responses=error_responses(401, 422, 503),
)
def read_audit(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    org_id: Annotated[str | None, Query(pattern=ORG_ID_PATTERN)] = None,
    actor: Annotated[str | None, Query(pattern=ACTOR_PATTERN)] = None,
) -> list[AuditEntryOut]:
    entries = services.audit.recent(limit=limit, org_id=org_id, actor=actor)
    return [AuditEntryOut.model_validate(e) for e in entries]
