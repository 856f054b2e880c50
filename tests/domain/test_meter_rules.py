"""The pure rules of usage reporting to Stripe (billing_engine/stripe/meters/rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing_engine.stripe.meters.rules import (
    batches,
    is_duplicate_identifier,
    outbox_identifier,
    outside_window,
    stripe_identifier,
    window_deadline,
)

BASE = "usage-org_1-2026111809-v1"


def test_the_identifier_is_the_same_for_every_retry_and_new_for_another_customer_or_generation():
    first = stripe_identifier(BASE, customer="cus_A", generation=0)
    assert first == stripe_identifier(BASE, customer="cus_A", generation=0)
    assert first.startswith(BASE + "-") and len(first) == len(BASE) + 9
    assert first != stripe_identifier(BASE, customer="cus_B", generation=0)
    assert first != stripe_identifier(BASE, customer="cus_A", generation=1)
    assert outbox_identifier(first) == BASE


def test_the_longest_org_id_still_fits_stripes_100_characters():
    longest = f"usage-{'o' * 64}-2026111809-v999"
    assert len(stripe_identifier(longest, customer="cus_" + "x" * 24, generation=7)) <= 100
    with pytest.raises(ValueError):
        stripe_identifier("x" * 95, customer="cus_A", generation=0)


@pytest.mark.parametrize(("status", "message", "duplicate"), [
    (400, "An event already exists with identifier usage-x-v1-0a1b2c3d.", True),
    (400, "No such customer: 'cus_A'", False),
    (409, "An event already exists with identifier x.", False),
    (400, None, False),
])
def test_only_stripes_own_wording_of_a_duplicate_counts_as_sent(status, message, duplicate):
    assert is_duplicate_identifier(status, message) is duplicate


def test_a_record_is_given_up_an_hour_before_stripes_35_days_end():
    hour = datetime(2026, 11, 18, 9, tzinfo=UTC)
    assert window_deadline(hour) == datetime(2026, 12, 23, 8, tzinfo=UTC)
    assert not outside_window(hour, now=window_deadline(hour))
    assert outside_window(hour, now=window_deadline(hour) + timedelta(seconds=1))


def test_batches_cut_in_order_and_refuse_a_zero_size():
    assert [list(b) for b in batches(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError):
        batches([1], 0)
