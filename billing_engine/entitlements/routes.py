"""Entitlements routes: read an org's, and recompute them from the database."""

from __future__ import annotations

from fastapi import APIRouter

from billing_core.http import error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, OrgIdPath, ServicesDep
from billing_engine.entitlements.schemas import (
    EntitlementsOut,
    RecomputedOut,
    entitlements_out,
    recomputed_out,
)

public = APIRouter(tags=["billing"])
admin = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)


@public.get(
    "/v1/entitlements/{org_id}",
    summary="What the org's plan and subscription allow",
    response_model=EntitlementsOut,
    responses=error_responses(404, 422, 503),
)
def get_entitlements(org_id: OrgIdPath, services: ServicesDep) -> EntitlementsOut:
    found = services.entitlements.lookup(org_id)
    return entitlements_out(found.entitlements, source=found.source)


@admin.post(
    "/admin/entitlements/{org_id}/recompute",
    summary="Drop the cached entitlements and compute them again from the database",
    response_model=RecomputedOut,
    responses=error_responses(401, 404, 422, 503),
)
def recompute_entitlements(org_id: OrgIdPath, services: ServicesDep) -> RecomputedOut:
    return recomputed_out(services.entitlements.recompute(org_id))
