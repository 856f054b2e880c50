"""Support routes: an org's instances with throttle state, and the heaviest orgs this period."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from billing_engine.api.routes import OrgIdPath
from billing_engine.usage.instances import SupportViews

support = APIRouter(tags=["billing"])


def get_support(request: Request) -> SupportViews:
    return SupportViews(request.app.state.service)


Support = Annotated[SupportViews, Depends(get_support)]


@support.get(
    "/v1/orgs/{org_id}/instances",
    summary="An org's instances, most recently seen first, with their throttle state",
)
def get_org_instances(
    org_id: OrgIdPath, views: Support, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    return views.org_instances(org_id, limit=limit)


@support.get("/v1/usage/top", summary="The orgs with the most billed hours this period")
def get_top_orgs(views: Support, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
    return views.top_orgs(limit=limit)
