"""Entitlements from plan and subscription status."""

from __future__ import annotations

import pytest

from billing_core.catalogue import load_plans
from billing_engine.entitlements.rules import (
    Entitlements,
    SubscriptionStatus,
    compute_entitlements,
)
from billing_engine.settings import DEFAULT_PLANS_FILE

CATALOG = load_plans(DEFAULT_PLANS_FILE)
FREE, BASE, TEAM = (CATALOG.plans[c] for c in ("free", "base_usage", "team"))


def test_the_free_plan_carries_the_support_runbook_limits():
    ent = compute_entitlements(org_id="o", plan=FREE, free_plan=FREE,
                               status=SubscriptionStatus.ACTIVE)
    assert ent.limits.continuous_run_hours == 8
    assert ent.limits.daily_cap_hours == 24
    assert ent.limits.idle_pause_minutes == 30
    assert ent.overage_allowed is False


@pytest.mark.parametrize("status", [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING])
def test_a_paying_org_gets_its_plan_limits_from_config(status):
    ent = compute_entitlements(org_id="o", plan=BASE, free_plan=FREE, status=status)
    assert ent.effective_plan == "base_usage"
    assert ent.limits == BASE.limits
    assert ent.overage_allowed is True
    assert ent.included_hours == 100


@pytest.mark.parametrize("status", [SubscriptionStatus.CANCELED, SubscriptionStatus.NONE])
def test_a_lapsed_subscription_falls_back_to_free_limits(status):
    ent = compute_entitlements(org_id="o", plan=TEAM, free_plan=FREE, status=status)
    assert (ent.plan, ent.effective_plan) == ("team", "free")
    assert ent.limits == FREE.limits
    assert ent.overage_allowed is False


def test_past_due_keeps_the_limits_but_stops_overage():
    ent = compute_entitlements(org_id="o", plan=TEAM, free_plan=FREE,
                               status=SubscriptionStatus.PAST_DUE)
    assert ent.limits == TEAM.limits
    assert ent.overage_allowed is False


@pytest.mark.parametrize("status", list(SubscriptionStatus))
@pytest.mark.parametrize("plan", [FREE, BASE, TEAM])
def test_entitlements_survive_a_round_trip_through_the_cache_format(plan, status):
    ent = compute_entitlements(org_id="org_1", plan=plan, free_plan=FREE, status=status)
    assert Entitlements.from_json(ent.as_json()) == ent
