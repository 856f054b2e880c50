"""Throttle decisions, as the support runbook states the free plan's limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from billing_core.plans import PlanLimits
from billing_engine.throttling.rules import (
    Action,
    InstanceActivity,
    PauseReason,
    decide,
    observe,
    observe_all,
    run_minutes,
)
from billing_engine.usage.rules import InstanceState

FREE = PlanLimits(max_concurrent_instances=2, continuous_run_hours=8, daily_cap_hours=24,
                  idle_pause_minutes=30)
UNLIMITED = PlanLimits()
NOW = datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC)
RUNNING, IDLE = InstanceState.RUNNING, InstanceState.IDLE


def fold(beats: list[tuple[datetime, InstanceState]],
         start: InstanceActivity | None = None) -> InstanceActivity:
    activity = start or InstanceActivity()
    for ts, state in beats:
        activity = observe(activity, ts=ts, state=state)
    return activity


def running_for(minutes: int, *, end: datetime = NOW) -> InstanceActivity:
    last = end.replace(second=0)
    return fold([(last - timedelta(minutes=m), RUNNING) for m in reversed(range(minutes))])


def test_an_instance_running_8_hours_straight_is_paused():
    activity = running_for(480)
    decision = decide(activity=activity, limits=FREE, org_minutes_today=480, now=NOW)
    assert (decision.action, decision.reason) == (Action.PAUSE, PauseReason.CONTINUOUS_RUN_LIMIT)
    assert decision.since == activity.run_started_at
    assert decision.numbers["continuous_run_minutes"] == 480
    assert decision.numbers["continuous_run_limit_minutes"] == 480


def test_just_under_8_hours_keeps_running():
    decision = decide(activity=running_for(479), limits=FREE, org_minutes_today=479, now=NOW)
    assert (decision.action, decision.reason) == (Action.RUN, None)


def test_a_gap_in_heartbeats_starts_a_new_run():
    before = running_for(300, end=NOW - timedelta(hours=6))
    after = fold([(NOW - timedelta(minutes=m), RUNNING) for m in reversed(range(200))], before)
    assert run_minutes(after) == 200
    assert decide(activity=after, limits=FREE, org_minutes_today=500, now=NOW).action is Action.RUN


def test_an_org_at_24_instance_hours_today_hits_the_daily_cap():
    decision = decide(activity=running_for(10), limits=FREE, org_minutes_today=1440, now=NOW)
    assert (decision.action, decision.reason) == (Action.PAUSE, PauseReason.DAILY_CAP)
    assert decision.since == datetime(2026, 11, 18, tzinfo=UTC)
    assert decision.numbers["daily_cap_minutes"] == 1440


def test_an_instance_idle_30_minutes_is_paused():
    activity = fold([(NOW - timedelta(minutes=40), RUNNING)]
                    + [(NOW - timedelta(minutes=m), IDLE) for m in range(30, -1, -1)])
    decision = decide(activity=activity, limits=FREE, org_minutes_today=50, now=NOW)
    assert (decision.action, decision.reason) == (Action.PAUSE, PauseReason.IDLE)
    assert decision.since == NOW - timedelta(minutes=30)


def test_idle_for_29_minutes_keeps_running_and_running_again_clears_idle():
    idle = fold([(NOW - timedelta(minutes=m), IDLE) for m in range(29, -1, -1)])
    assert decide(activity=idle, limits=FREE, org_minutes_today=0, now=NOW).action is Action.RUN
    awake = observe(idle, ts=NOW, state=RUNNING)
    assert awake.idle_since is None and awake.run_started_at == NOW


def test_a_late_heartbeat_does_not_restart_a_run():
    activity = running_for(60)
    late = observe(activity, ts=NOW - timedelta(hours=3), state=IDLE)
    assert late == activity


def test_paid_limits_that_are_null_never_pause():
    activity = running_for(1000)
    decision = decide(activity=activity, limits=UNLIMITED, org_minutes_today=10_000, now=NOW)
    assert decision.action is Action.RUN


@given(
    beats=st.lists(
        st.tuples(st.integers(min_value=0, max_value=24 * 60), st.sampled_from([RUNNING, IDLE])),
        max_size=80,
    ),
    org_minutes=st.integers(min_value=0, max_value=5000),
)
def test_without_limits_nothing_is_ever_paused_and_with_them_a_pause_has_a_reason(
    beats, org_minutes
):
    start = NOW - timedelta(days=1)
    activity = fold([(start + timedelta(minutes=m), s) for m, s in sorted(beats)])
    free = decide(activity=activity, limits=FREE, org_minutes_today=org_minutes, now=NOW)
    unlimited = decide(activity=activity, limits=UNLIMITED, org_minutes_today=org_minutes, now=NOW)
    assert unlimited.action is Action.RUN
    assert (free.action is Action.PAUSE) == (free.reason is not None)
    assert run_minutes(activity) >= 0
    if org_minutes >= 1440:
        assert free.action is Action.PAUSE


@given(st.lists(
    st.tuples(st.integers(min_value=0, max_value=600), st.sampled_from([RUNNING, IDLE])),
    min_size=1, max_size=60))
def test_a_redelivered_batch_leaves_the_throttle_state_as_it_was(beats):
    ordered = sorted((NOW - timedelta(minutes=m), s) for m, s in beats)
    once = fold(ordered)
    assert fold(ordered, once) == once


BEATS = st.lists(st.tuples(st.integers(-30, 30), st.sampled_from([RUNNING, IDLE])), max_size=40)


@given(start=BEATS, beats=BEATS)
def test_folding_a_whole_batch_at_once_equals_folding_it_one_heartbeat_at_a_time(start, beats):
    # Out of order, repeated instants, gaps longer than a run's: whatever a batch holds.
    as_pairs = [[(NOW + timedelta(minutes=m), state) for m, state in seq] for seq in (start, beats)]
    before = fold(as_pairs[0])
    assert observe_all(before, as_pairs[1]) == fold(as_pairs[1], before)
