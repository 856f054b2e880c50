"""Metering invariants: the bill depends on the set of (instance, minute) slots, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from billing_engine.usage.rules import (
    Heartbeat,
    InstanceState,
    MeteringPolicy,
    RejectReason,
    Slot,
    billable_minutes_by_org,
    classify,
    hour_masks,
    minutes_added,
)

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
POLICY = MeteringPolicy(clock_skew=timedelta(minutes=2), close_grace=timedelta(hours=1))
ORGS = {"org_a", "org_b"}


def plan_batches(batches: list[list[Heartbeat]]) -> dict[str, int]:
    """Feed batches one after another through classify, as the store would see them."""
    stored: dict[tuple[str, int], str] = {}
    owners: dict[str, str] = {}
    for batch in batches:
        plan = classify(batch, now=NOW, policy=POLICY, known_orgs=ORGS, instance_owners=owners)
        for slot in plan.slots:
            stored.setdefault((slot.instance_id, slot.minute), slot.org_id)
        for sighting in plan.sightings:
            owners.setdefault(sighting.instance_id, sighting.org_id)
    totals: dict[str, int] = {}
    for org in stored.values():
        totals[org] = totals.get(org, 0) + 1
    return totals


# Each instance belongs to one org, as in life; timestamps within this open period.
heartbeat_strategy = st.builds(
    lambda inst, offset, state: Heartbeat(
        instance_id=f"i{inst}",
        org_id="org_a" if inst % 2 else "org_b",
        ts=NOW - timedelta(seconds=offset),
        state=state,
    ),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=3 * 3600),
    st.sampled_from(list(InstanceState)),
)


@settings(max_examples=200, deadline=None)
@given(
    heartbeats=st.lists(heartbeat_strategy, max_size=60),
    data=st.data(),
)
def test_any_order_duplication_or_batching_gives_the_same_bill(heartbeats, data):
    expected = billable_minutes_by_org(heartbeats)
    shuffled = data.draw(st.permutations(heartbeats))
    duplicated = shuffled + data.draw(st.lists(st.sampled_from(heartbeats), max_size=20)) if (
        heartbeats
    ) else shuffled
    cuts = sorted(data.draw(st.lists(st.integers(0, len(duplicated)), max_size=5)))
    batches, start = [], 0
    for cut in [*cuts, len(duplicated)]:
        batches.append(duplicated[start:cut])
        start = cut
    assert plan_batches(batches) == expected


def test_two_heartbeats_in_the_same_minute_are_billed_once():
    ts = NOW - timedelta(minutes=5)
    batch = [
        Heartbeat("i1", "org_a", ts.replace(second=1), InstanceState.RUNNING),
        Heartbeat("i1", "org_a", ts.replace(second=59), InstanceState.IDLE),
    ]
    plan = classify(batch, now=NOW, policy=POLICY, known_orgs=ORGS, instance_owners={})
    assert len(plan.slots) == 1
    assert plan.in_batch_duplicates == 1


def test_idle_heartbeats_are_billable():
    plan = classify(
        [Heartbeat("i1", "org_a", NOW, InstanceState.IDLE)],
        now=NOW, policy=POLICY, known_orgs=ORGS, instance_owners={},
    )
    assert len(plan.slots) == 1


def test_unknown_org_future_and_closed_period_are_rejected_with_their_index():
    batch = [
        Heartbeat("i1", "org_zzz", NOW, InstanceState.RUNNING),
        Heartbeat("i2", "org_a", NOW + timedelta(minutes=3), InstanceState.RUNNING),
        Heartbeat("i3", "org_a", NOW + timedelta(seconds=90), InstanceState.RUNNING),
        Heartbeat("i4", "org_a", datetime(2026, 10, 31, 23, 59, tzinfo=UTC), InstanceState.RUNNING),
    ]
    plan = classify(batch, now=NOW, policy=POLICY, known_orgs=ORGS, instance_owners={})
    assert [(r.index, r.reason) for r in plan.rejections] == [
        (0, RejectReason.UNKNOWN_ORG),
        (1, RejectReason.FUTURE_TIMESTAMP),
        (3, RejectReason.CLOSED_PERIOD),
    ]
    assert [s.instance_id for s in plan.slots] == ["i3"]  # within the clock-skew allowance


def test_last_month_stays_open_during_the_grace_then_closes():
    late = Heartbeat("i1", "org_a", datetime(2026, 10, 31, 23, 58, tzinfo=UTC),
                     InstanceState.RUNNING)
    just_after_month_end = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
    after_grace = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    open_plan = classify([late], now=just_after_month_end, policy=POLICY, known_orgs=ORGS,
                         instance_owners={})
    closed_plan = classify([late], now=after_grace, policy=POLICY, known_orgs=ORGS,
                           instance_owners={})
    assert len(open_plan.slots) == 1
    assert closed_plan.rejections[0].reason is RejectReason.CLOSED_PERIOD


def test_an_instance_cannot_bill_two_orgs():
    batch = [
        Heartbeat("i1", "org_a", NOW, InstanceState.RUNNING),
        Heartbeat("i1", "org_b", NOW - timedelta(minutes=1), InstanceState.RUNNING),
        Heartbeat("i2", "org_a", NOW, InstanceState.RUNNING),
    ]
    plan = classify(batch, now=NOW, policy=POLICY, known_orgs=ORGS,
                    instance_owners={"i2": "org_b"})
    assert [(r.index, r.reason) for r in plan.rejections] == [
        (1, RejectReason.INSTANCE_ORG_MISMATCH),
        (2, RejectReason.INSTANCE_ORG_MISMATCH),
    ]


def test_the_latest_heartbeat_sets_the_instance_state_whatever_the_arrival_order():
    batch = [
        Heartbeat("i1", "org_a", NOW, InstanceState.IDLE),
        Heartbeat("i1", "org_a", NOW - timedelta(minutes=10), InstanceState.RUNNING),
    ]
    plan = classify(batch, now=NOW, policy=POLICY, known_orgs=ORGS, instance_owners={})
    (sighting,) = plan.sightings
    assert sighting.last_state is InstanceState.IDLE
    assert sighting.first_seen == NOW - timedelta(minutes=10)
    assert sighting.last_seen == NOW


@settings(max_examples=200, deadline=None)
@given(slots=st.lists(st.tuples(st.sampled_from(["i1", "i2", "i3"]),
                                st.integers(min_value=0, max_value=5000)), max_size=200))
def test_instance_hours_hold_exactly_the_minute_slots_they_fold(slots):
    folded = hour_masks(Slot(i, m, "org_a") for i, m in slots)
    unfolded = {(h.instance_id, h.hour * 60 + bit) for h in folded
                for bit in range(60) if h.minute_mask >> bit & 1}
    assert unfolded == set(slots)
    assert sum(h.minutes for h in folded) == len(set(slots))
    assert [(h.org_id, h.instance_id, h.hour) for h in folded] == sorted(
        (h.org_id, h.instance_id, h.hour) for h in folded)


@given(stored=st.integers(0, 2**60 - 1), sent=st.integers(0, 2**60 - 1))
def test_minutes_added_counts_only_the_bits_not_stored_yet(stored, sent):
    assert minutes_added(stored, sent) == (stored | sent).bit_count() - stored.bit_count()
    assert minutes_added(stored | sent, sent) == 0
