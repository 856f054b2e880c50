"""Rounds are evaluated at their slot on the scheduler's grid, so `for` holds for exactly what
it says even though each round starts a few milliseconds late, and not always the same few."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.rules.model import AlertStatus
from alerts.scheduling.scheduler import evaluation_slot
from tests.alerts.test_state_machine import DOWN, rule, run

ANCHOR = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
INTERVAL = 15.0


def started(slot: int, late_ms: float) -> datetime:
    """When round `slot` really started: its slot on the grid plus the scheduler's delay."""
    return ANCHOR + timedelta(seconds=slot * INTERVAL, milliseconds=late_ms)


def test_a_round_that_starts_late_is_evaluated_at_its_slot():
    assert evaluation_slot(started(3, 7), anchor=ANCHOR, interval=INTERVAL) == started(3, 0)
    assert evaluation_slot(started(0, 0), anchor=ANCHOR, interval=INTERVAL) == ANCHOR


def test_a_for_of_four_intervals_fires_on_the_fourth_round_whatever_the_delays():
    # Pending on a round that started 9 ms late, held on rounds that started 2 ms late: by the
    # clocks of the rounds themselves it has held 59.993 s at the fourth, and fired 15 s late.
    delays = [9, 2, 2, 2, 2]
    by_clock = run(rule(), [(started(k, d), [DOWN]) for k, d in enumerate(delays)])
    assert by_clock[0].status == AlertStatus.PENDING  # by the rounds' own clocks: not yet
    slots = [(evaluation_slot(started(k, d), anchor=ANCHOR, interval=INTERVAL), [DOWN])
             for k, d in enumerate(delays)]
    [alert] = run(rule(), slots)
    assert alert.status == AlertStatus.FIRING
    assert alert.fired_at == started(4, 0)


def test_a_round_off_the_grid_is_evaluated_at_its_own_time():
    # A takeover runs a round at once, between slots; so does one delayed past the slack.
    between = started(2, 6_000)
    assert evaluation_slot(between, anchor=ANCHOR, interval=INTERVAL) == between
    late = started(5, 1_500)
    assert evaluation_slot(late, anchor=ANCHOR, interval=INTERVAL) == late
    before = ANCHOR - timedelta(seconds=1)
    assert evaluation_slot(before, anchor=ANCHOR, interval=INTERVAL) == before
