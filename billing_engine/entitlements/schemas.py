"""Entitlements as the API shows them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing_core.http import ResponseModel
from billing_engine.entitlements.rules import Entitlements
from billing_engine.plans.schemas import LimitsOut


class FeaturesOut(ResponseModel):
    overage_allowed: bool


class EntitlementsOut(ResponseModel):
    org_id: str
    plan: str = Field(description="The plan the org is on")
    effective_plan: str = Field(description="The plan whose limits apply (free once lapsed)")
    subscription_status: str = Field(description="active, trialing, past_due, canceled or none")
    included_hours: int
    features: FeaturesOut
    limits: LimitsOut
    source: Literal["cache", "database"]


class RecomputedOut(EntitlementsOut):
    recomputed: Literal[True]


def entitlements_out(entitlements: Entitlements, *, source: str) -> EntitlementsOut:
    return EntitlementsOut.model_validate({**entitlements.as_json(), "source": source})


def recomputed_out(entitlements: Entitlements) -> RecomputedOut:
    raw = entitlements.as_json()
    return RecomputedOut.model_validate({**raw, "source": "database", "recomputed": True})
