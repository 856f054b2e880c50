"""Customer routes: search orgs for support, create or update one as an admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from billing_core.errors import InvalidRequest
from billing_core.http import Storable, error_responses
from billing_engine.api.deps import ADMIN_ANSWERS, OrgIdPath, ServicesDep
from billing_engine.customers.schemas import (
    CustomerSearchOut,
    OrgOut,
    OrgUpsert,
    org_out,
    search_out,
)

public = APIRouter(tags=["billing"])
admin = APIRouter(tags=["admin"], responses=ADMIN_ANSWERS)


@public.get(
    "/v1/customers",
    summary="Search customers by id, name or email prefix, or by a Stripe customer, "
    "subscription or invoice id or invoice number",
    response_model=CustomerSearchOut,
    responses=error_responses(422, 503),
)
def get_customers(
    services: ServicesDep,
    q: Annotated[str, Query(max_length=200), Storable] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CustomerSearchOut:
    return search_out(services.customers.search(q, page=page, page_size=page_size))


@admin.put(
    "/admin/orgs/{org_id}",
    summary="Create or update an org",
    response_model=OrgOut,
    responses={
        201: {"model": OrgOut, "description": "The org was created"},
        **error_responses(401, 422, 503),
    },
)
def put_org(
    org_id: OrgIdPath, body: OrgUpsert, services: ServicesDep, response: Response
) -> OrgOut:
    """200 when the org existed and was updated."""
    if body.plan not in services.catalog:
        known = ", ".join(sorted(services.catalog.plans))
        raise InvalidRequest("plan", f"must be one of: {known}")
    org, created = services.customers.upsert(
        org_id=org_id, name=body.name, email=body.email, plan=body.plan
    )
    response.status_code = 201 if created else 200
    return org_out(org)
