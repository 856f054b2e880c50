"""Customers over HTTP: the org upsert body, an org, a search page."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from billing_core.http import ResponseModel, Storable, Timestamp
from billing_engine.api.deps import ORG_ID_PATTERN
from billing_engine.customers.service import SearchPage
from billing_engine.customers.store import OrgRecord

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
OrgId = Annotated[str, StringConstraints(pattern=ORG_ID_PATTERN)]


class OrgUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
    ]
    email: Annotated[
        str,
        StringConstraints(strip_whitespace=True, max_length=320, pattern=EMAIL_PATTERN),
        Storable,
    ]
    plan: Annotated[str, StringConstraints(min_length=1, max_length=64), Storable]


class OrgOut(ResponseModel):
    id: str
    name: str
    billing_email: str
    plan: str = Field(description="The plan code the org is on")
    stripe_customer_id: str | None
    created_at: Timestamp


class CustomerSearchOut(ResponseModel):
    query: str
    page: int
    page_size: int
    total: int = Field(description="Orgs matching, on every page")
    results: list[OrgOut]
    note: str | None = Field(
        default=None,
        description="How a Stripe invoice id or number was looked up in Stripe, or why it "
        "could not be")


def org_out(org: OrgRecord) -> OrgOut:
    return OrgOut(
        id=org.id,
        name=org.name,
        billing_email=org.billing_email,
        plan=org.plan,
        stripe_customer_id=org.stripe_customer_id,
        created_at=org.created_at,
    )


def search_out(page: SearchPage) -> CustomerSearchOut:
    return CustomerSearchOut(
        query=page.query,
        page=page.page,
        page_size=page.page_size,
        total=page.total,
        results=[org_out(o) for o in page.results],
        note=page.note,
    )
