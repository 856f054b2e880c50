"""Admin routes of API keys: org keys under /admin/orgs/{org_id}/keys, staff keys under
/admin/staff-keys. Creating answers the secret once; nothing answers it again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from billing_core.access import Role
from billing_core.http import error_responses
from billing_engine.access.schemas import (
    KEY_ID_PATTERN,
    KeyOut,
    KeysOut,
    NewKeyOut,
    OrgKeyCreate,
    StaffKeyCreate,
    key_out,
    keys_out,
    new_key_out,
)
from billing_engine.api.deps import OrgIdPath, ServicesDep
from billing_engine.audit.keys import STATE_ACTOR

router = APIRouter(tags=["access"])

KeyIdPath = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="The key's id")]


def _actor(request: Request) -> str:
    return str(getattr(request.state, STATE_ACTOR, None) or "unknown")


@router.post(
    "/admin/orgs/{org_id}/keys",
    summary="Create an org API key; the answer shows the secret this once",
    status_code=201,
    response_model=NewKeyOut,
    responses=error_responses(404, 422, 503),
)
def create_org_key(
    request: Request, org_id: OrgIdPath, body: OrgKeyCreate, services: ServicesDep
) -> NewKeyOut:
    created = services.access.create_org_key(
        org_id=org_id, name=body.name, scopes=body.scopes, expires_at=body.expires_at,
        created_by=_actor(request),
    )
    return new_key_out(created)


@router.get(
    "/admin/orgs/{org_id}/keys",
    summary="An org's API keys, newest first, revoked ones too (never the secret)",
    response_model=KeysOut,
    responses=error_responses(404, 422, 503),
)
def list_org_keys(org_id: OrgIdPath, services: ServicesDep) -> KeysOut:
    return keys_out(services.access.org_keys(org_id))


@router.delete(
    "/admin/orgs/{org_id}/keys/{key_id}",
    summary="Revoke an org API key (every replica refuses it within 2 s)",
    response_model=KeyOut,
    responses=error_responses(404, 422, 503),
)
def revoke_org_key(org_id: OrgIdPath, key_id: KeyIdPath, services: ServicesDep) -> KeyOut:
    return key_out(services.access.revoke(key_id, kind="org", org_id=org_id))


@router.post(
    "/admin/staff-keys",
    summary="Create a staff API key with a role; the answer shows the secret this once",
    status_code=201,
    response_model=NewKeyOut,
    responses=error_responses(409, 422, 503),
)
def create_staff_key(request: Request, body: StaffKeyCreate, services: ServicesDep) -> NewKeyOut:
    created = services.access.create_staff_key(
        name=body.name, role=Role[body.role], expires_at=body.expires_at, created_by=_actor(request)
    )
    return new_key_out(created)


@router.get(
    "/admin/staff-keys",
    summary="Staff API keys, newest first, revoked ones too (never the secret)",
    response_model=KeysOut,
    responses=error_responses(422, 503),
)
def list_staff_keys(services: ServicesDep) -> KeysOut:
    return keys_out(services.access.staff_keys())


@router.delete(
    "/admin/staff-keys/{key_id}",
    summary="Revoke a staff API key (every replica refuses it within 2 s)",
    response_model=KeyOut,
    responses=error_responses(404, 422, 503),
)
def revoke_staff_key(key_id: KeyIdPath, services: ServicesDep) -> KeyOut:
    return key_out(services.access.revoke(key_id, kind="staff"))
