"""Subscription ordering, status effects, price-to-plan mapping and payment labels."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from billing_core.catalogue import load_plans
from billing_engine.entitlements.rules import SubscriptionStatus
from billing_engine.payments.rules import (
    FAILURE_REASONS,
    PAYMENT_METHODS,
    failure_family,
    method_label,
)
from billing_engine.settings import DEFAULT_PLANS_FILE
from billing_engine.subscriptions.rules import (
    SubscriptionState,
    Verdict,
    compare,
    current_subscription,
    entitlement_status,
    org_status,
    plan_after_change,
    plan_for_prices,
)

CATALOG = load_plans(DEFAULT_PLANS_FILE)
T = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def state(status: str = "active", *, at: datetime = T, sub: str = "sub_1",
          end: datetime | None = T + timedelta(days=30),
          prices: tuple[str, ...] = ("price_team_monthly",)) -> SubscriptionState:
    return SubscriptionState(
        subscription_id=sub, customer_id="cus_1", status=status, price_ids=prices,
        current_period_start=T, current_period_end=end, cancel_at_period_end=False,
        event_created=at,
    )


def test_a_later_event_replaces_the_state_and_an_earlier_one_never_does():
    held = state("past_due", at=T + timedelta(seconds=10))
    assert compare(held, state("active", at=T + timedelta(seconds=11))) is Verdict.APPLY
    assert compare(held, state("active", at=T)) is Verdict.STALE
    assert compare(None, state("active", at=T)) is Verdict.APPLY


def test_a_canceled_subscription_is_never_revived_by_a_late_delivery():
    canceled = state("canceled", at=T)
    # Even stamped later (a clock quirk or a resend), a live state cannot follow cancellation.
    assert compare(canceled, state("active", at=T + timedelta(hours=1))) is Verdict.STALE
    assert compare(canceled, state("canceled", at=T + timedelta(hours=1))) is Verdict.APPLY


def test_within_one_second_the_further_along_state_wins_then_the_later_period():
    assert compare(state("incomplete"), state("active")) is Verdict.APPLY
    assert compare(state("active"), state("incomplete")) is Verdict.STALE
    renewed = state("active", end=T + timedelta(days=61))
    assert compare(state("active"), renewed) is Verdict.APPLY
    assert compare(renewed, state("active")) is Verdict.STALE
    assert compare(state("active"), state("active")) is Verdict.UNCHANGED
    flagged = replace(state("active"), cancel_at_period_end=True)
    assert compare(state("active"), flagged) is Verdict.APPLY


@pytest.mark.parametrize(("stripe_status", "expected"), [
    ("active", SubscriptionStatus.ACTIVE),
    ("trialing", SubscriptionStatus.TRIALING),
    ("past_due", SubscriptionStatus.PAST_DUE),
    ("unpaid", SubscriptionStatus.CANCELED),
    ("paused", SubscriptionStatus.CANCELED),
    ("canceled", SubscriptionStatus.CANCELED),
    ("incomplete", SubscriptionStatus.NONE),
    ("incomplete_expired", SubscriptionStatus.NONE),
    ("a_status_stripe_adds_later", SubscriptionStatus.NONE),
])
def test_each_stripe_status_has_an_entitlement_effect(stripe_status, expected):
    assert entitlement_status(stripe_status) is expected


def test_the_org_follows_its_most_recent_live_subscription():
    old_live = state("active", sub="sub_old", at=T)
    newer_canceled = state("canceled", sub="sub_new", at=T + timedelta(days=1))
    assert current_subscription([old_live, newer_canceled]) == old_live
    assert org_status([old_live, newer_canceled]) is SubscriptionStatus.ACTIVE
    assert current_subscription([newer_canceled]) == newer_canceled
    assert org_status([]) is None


def test_prices_map_to_plans_and_a_metered_price_beside_the_plan_is_skipped():
    assert plan_for_prices(CATALOG, ["price_metered_hours", "price_team_monthly"]).code == "team"
    assert plan_for_prices(CATALOG, ["price_unknown"]) is None


def test_a_live_subscription_sets_the_plan_and_a_lapsed_one_returns_to_the_default():
    assert plan_after_change(CATALOG, [state("active")]) == "team"
    assert plan_after_change(CATALOG, [state("canceled")]) == CATALOG.default_plan
    assert plan_after_change(CATALOG, []) is None
    unmapped = state("active", prices=("price_unknown",))
    assert plan_after_change(CATALOG, [unmapped]) is None


@pytest.mark.parametrize(("codes", "family"), [
    (("insufficient_funds", "card_declined"), "insufficient_funds"),
    ((None, "expired_card"), "expired_card"),
    (("do_not_honor", "card_declined"), "card_declined"),
    ((None, "processing_error"), "processing_error"),
    ((None, None), "other"),
    (("something_new", "weird_error"), "other"),
])
def test_decline_codes_fall_into_a_few_families(codes, family):
    assert failure_family(*codes) == family
    assert family in FAILURE_REASONS


def test_payment_method_labels_are_bounded():
    assert method_label("card") == "card"
    assert method_label("us_bank_account") == "ach_debit"
    assert method_label("sepa_debit") == "sepa_debit"
    assert method_label("klarna") == "other"
    assert method_label(None) == "other"
    assert set(PAYMENT_METHODS) == {"card", "sepa_debit", "ach_debit", "other"}
