"""Invoice lines and totals from the shipped plans: base fee, overage, credits, in cents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing_core.catalogue import load_plans
from billing_core.quota import compute_quota
from billing_engine.invoicing.rules import (
    AvailableCredit,
    LineKind,
    apply_credits,
    build_invoice,
)
from billing_engine.settings import DEFAULT_PLANS_FILE

CATALOG = load_plans(DEFAULT_PLANS_FILE)
FREE, BASE, TEAM = (CATALOG.plans[c] for c in ("free", "base_usage", "team"))
T0 = datetime(2026, 11, 2, tzinfo=UTC)


def credit(credit_id: int, cents: int, *, days: int = 0, reason: str = "goodwill"):
    return AvailableCredit(credit_id=credit_id, remaining_cents=cents, reason=reason,
                           granted_at=T0 + timedelta(days=days))


def amounts(draft):
    return [(line.kind.value, line.amount_cents) for line in draft.lines]


@pytest.mark.parametrize(("plan", "hours_used", "lines", "total"), [
    (FREE, 0, [("base_fee", 0)], 0),
    (FREE, 15, [("base_fee", 0)], 0),  # the free plan never charges overage
    (BASE, 50, [("base_fee", 2000)], 2000),
    (BASE, 100, [("base_fee", 2000)], 2000),  # exactly the included hours: no overage line
    (BASE, 130, [("base_fee", 2000), ("overage", 750)], 2750),  # 2,000 + 30 h x 25
    (TEAM, 999, [("base_fee", 9900)], 9900),
    (TEAM, 1100, [("base_fee", 9900), ("overage", 1500)], 11400),  # 9,900 + 100 h x 15
])
def test_invoice_lines_and_totals_per_plan(plan, hours_used, lines, total):
    draft = build_invoice(plan=plan, period_key="2026-11", used_minutes=hours_used * 60)
    assert amounts(draft) == lines
    assert (draft.subtotal_cents, draft.credits_cents, draft.total_cents) == (total, 0, total)
    assert draft.used_minutes == hours_used * 60
    assert draft.included_minutes == plan.included_hours * 60


def test_the_overage_line_shows_hours_price_and_exact_minutes():
    draft = build_invoice(plan=BASE, period_key="2026-11", used_minutes=130 * 60)
    overage = draft.lines[1]
    assert overage.kind is LineKind.OVERAGE
    assert (overage.minutes, overage.quantity, overage.unit) == (1800, 30.0, "hour")
    assert overage.unit_amount_cents == 25
    assert "30.00 h" in overage.description and "25 cents per hour" in overage.description
    assert draft.lines[0].description == "Base + usage plan, 2026-11"


@pytest.mark.parametrize(("overage_minutes", "cents"), [(1, 0), (2, 1), (90, 38), (6, 3)])
def test_partial_overage_hours_round_half_a_cent_up_like_the_billing_view(overage_minutes, cents):
    used = BASE.included_minutes + overage_minutes
    draft = build_invoice(plan=BASE, period_key="2026-11", used_minutes=used)
    assert draft.subtotal_cents - 2000 == cents
    # The billing view's estimate and the invoice are the same number.
    assert draft.subtotal_cents == compute_quota(BASE, used_minutes=used).estimated_total_cents


def test_a_credit_is_a_negative_line_and_lowers_the_total():
    draft = build_invoice(plan=BASE, period_key="2026-11", used_minutes=130 * 60,
                          credits=[credit(7, 500, reason="ticket 1234: double overage")])
    assert amounts(draft) == [("base_fee", 2000), ("overage", 750), ("credit", -500)]
    assert (draft.subtotal_cents, draft.credits_cents, draft.total_cents) == (2750, 500, 2250)
    assert draft.lines[-1].credit_id == 7
    assert draft.lines[-1].description == "Credit #7: ticket 1234: double overage"
    assert draft.credits_applied == ((7, 500),)


def test_a_credit_never_takes_the_total_below_zero_and_the_rest_carries():
    draft = build_invoice(plan=BASE, period_key="2026-11", used_minutes=0,
                          credits=[credit(1, 5000)])
    assert amounts(draft) == [("base_fee", 2000), ("credit", -2000)]
    assert draft.total_cents == 0
    assert draft.credits_applied == ((1, 2000),)  # 3,000 cents stay on credit 1


def test_credits_are_used_oldest_first():
    newer, older = credit(2, 1000, days=3), credit(1, 1500, days=1)
    draft = build_invoice(plan=BASE, period_key="2026-11", used_minutes=0,
                          credits=[newer, older])
    assert draft.credits_applied == ((1, 1500), (2, 500))
    assert draft.total_cents == 0


def test_nothing_is_taken_from_credits_when_nothing_is_owed():
    draft = build_invoice(plan=FREE, period_key="2026-11", used_minutes=20 * 60,
                          credits=[credit(1, 900)])
    assert amounts(draft) == [("base_fee", 0)]
    assert draft.credits_applied == ()
    assert apply_credits(0, [credit(1, 900)]) == ()


def test_a_long_credit_reason_is_shortened_on_the_line_only():
    draft = build_invoice(plan=BASE, period_key="2026-11", used_minutes=0,
                          credits=[credit(3, 100, reason="x" * 450)])
    line = draft.lines[-1]
    assert len(line.description) <= len("Credit #3: ") + 200 and line.description.endswith("...")
