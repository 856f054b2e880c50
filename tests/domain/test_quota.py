from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from billing_core.catalogue import load_plans
from billing_core.plans import PlanConfigError, catalog_from_config
from billing_core.quota import compute_quota, overage_cents, thresholds_crossed
from billing_engine.settings import DEFAULT_PLANS_FILE

CATALOG = load_plans(DEFAULT_PLANS_FILE)


def test_shipped_plans_include_free_and_base_usage_with_the_support_runbook_limits():
    free = CATALOG.plans["free"]
    assert free.limits.continuous_run_hours == 8
    assert free.limits.daily_cap_hours == 24
    assert free.limits.idle_pause_minutes == 30
    assert CATALOG.plans["base_usage"].overage_cents_per_hour > 0


def test_usage_under_the_included_hours_costs_only_the_base_fee():
    quota = compute_quota(CATALOG.plans["base_usage"], used_minutes=59 * 60)
    assert quota.remaining_minutes == 41 * 60
    assert quota.overage_minutes == 0
    assert quota.estimated_total_cents == 2000
    assert quota.thresholds_crossed == (50,)


def test_overage_is_priced_per_minute_in_integer_cents():
    # 100 h included, 25 cents/h: 3 h 20 min over = 83.33 cents -> 83
    quota = compute_quota(CATALOG.plans["base_usage"], used_minutes=100 * 60 + 200)
    assert quota.overage_minutes == 200
    assert quota.estimated_overage_cents == 83
    assert quota.thresholds_crossed == (50, 90, 100)
    assert isinstance(quota.estimated_overage_cents, int)


def test_half_a_cent_rounds_up():
    assert overage_cents(overage_minutes=2, cents_per_hour=15) == 1  # 0.5 cent


@pytest.mark.parametrize(
    ("used", "crossed"),
    [(299, ()), (300, (50,)), (539, (50,)), (540, (50, 90)), (599, (50, 90)), (600, (50, 90, 100))],
)
def test_thresholds_are_crossed_exactly_at_50_90_and_100_percent(used, crossed):
    assert thresholds_crossed(used_minutes=used, included_minutes=600) == crossed


def test_a_plan_without_overage_never_charges_for_it():
    quota = compute_quota(CATALOG.plans["free"], used_minutes=20 * 60)
    assert quota.overage_minutes == 10 * 60
    assert quota.estimated_total_cents == 0


def test_a_bad_plans_file_names_the_field(tmp_path: Path):
    config = yaml.safe_load(DEFAULT_PLANS_FILE.read_text())
    config["plans"]["base_usage"]["overage_cents_per_hour"] = 0.25
    with pytest.raises(PlanConfigError, match=r"plans.base_usage.overage_cents_per_hour"):
        catalog_from_config(config)
