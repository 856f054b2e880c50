"""Throttling: decide whether an instance may keep running, from what we know of its recent past.

The decision reads a small per-instance activity record (folded from heartbeats as they arrive)
and the org's throttle minutes today, never raw minute slots. Throttling never changes billing:
a paused instance's heartbeats are still metered as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from billing_core.periods import minute_of
from billing_core.plans import PlanLimits
from billing_engine.usage.rules import InstanceState

# Running heartbeats further apart than this end one continuous run and start the next.
RUN_GAP = timedelta(minutes=5)


class Action(StrEnum):
    RUN = "run"
    PAUSE = "pause"


class PauseReason(StrEnum):
    CONTINUOUS_RUN_LIMIT = "continuous_run_limit"
    DAILY_CAP = "daily_cap"
    IDLE = "idle"


@dataclass(frozen=True)
class InstanceActivity:
    """What the throttler remembers about one instance."""

    run_started_at: datetime | None = None  # first running heartbeat of the current run
    last_running_at: datetime | None = None
    idle_since: datetime | None = None  # first idle heartbeat since it last ran
    last_seen: datetime | None = None


@dataclass(frozen=True)
class ThrottleDecision:
    action: Action
    reason: PauseReason | None
    since: datetime | None  # when the condition behind the decision began
    numbers: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "reason": None if self.reason is None else self.reason.value,
            "since": None if self.since is None else self.since.isoformat(),
            "numbers": self.numbers,
        }


def observe(
    activity: InstanceActivity, *, ts: datetime, state: InstanceState, gap: timedelta = RUN_GAP
) -> InstanceActivity:
    """Fold one heartbeat in. Heartbeats older than the newest seen are billed but do not move
    the throttle state: a late retry must not restart a run or an idle stretch."""
    return observe_all(activity, ((ts, state),), gap=gap)


def observe_all(
    activity: InstanceActivity,
    beats: Iterable[tuple[datetime, InstanceState]],
    *,
    gap: timedelta = RUN_GAP,
) -> InstanceActivity:
    """Fold (ts, state) pairs in, in the order given: `observe` on each in turn, without an
    activity record per heartbeat (a batch can carry hundreds for one instance)."""
    run_started_at = activity.run_started_at
    last_running_at = activity.last_running_at
    idle_since = activity.idle_since
    last_seen = activity.last_seen
    for ts, state in beats:
        if last_seen is not None and ts < last_seen:
            continue
        if state is InstanceState.RUNNING:
            if (run_started_at is None or last_running_at is None or idle_since is not None
                    or ts - last_running_at > gap):
                run_started_at = ts
            last_running_at = ts
            idle_since = None
        elif idle_since is None:
            idle_since = ts
        last_seen = ts
    return InstanceActivity(run_started_at=run_started_at, last_running_at=last_running_at,
                            idle_since=idle_since, last_seen=last_seen)


def run_minutes(activity: InstanceActivity) -> int:
    """Billable minutes in the current run, counted the way metering counts them."""
    if activity.run_started_at is None or activity.last_running_at is None:
        return 0
    return minute_of(activity.last_running_at) - minute_of(activity.run_started_at) + 1


def decide(
    *,
    activity: InstanceActivity,
    limits: PlanLimits,
    org_minutes_today: int,
    now: datetime,
    gap: timedelta = RUN_GAP,
) -> ThrottleDecision:
    """Checks run in order: continuous run, daily cap, idle; the first that trips wins."""
    running_now = (
        activity.idle_since is None
        and activity.last_running_at is not None
        and now - activity.last_running_at <= gap
    )
    minutes = run_minutes(activity) if running_now else 0
    idle_minutes = (
        int((now - activity.idle_since).total_seconds() // 60)
        if activity.idle_since is not None
        else 0
    )
    numbers: dict[str, Any] = {
        "continuous_run_minutes": minutes,
        "continuous_run_limit_minutes": _minutes(limits.continuous_run_hours, 60),
        "org_minutes_today": org_minutes_today,
        "daily_cap_minutes": _minutes(limits.daily_cap_hours, 60),
        "idle_minutes": idle_minutes,
        "idle_pause_minutes": limits.idle_pause_minutes,
    }
    run_limit = numbers["continuous_run_limit_minutes"]
    if run_limit is not None and minutes >= run_limit and activity.run_started_at is not None:
        return ThrottleDecision(
            Action.PAUSE, PauseReason.CONTINUOUS_RUN_LIMIT, activity.run_started_at, numbers
        )
    cap = numbers["daily_cap_minutes"]
    if cap is not None and org_minutes_today >= cap:
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return ThrottleDecision(Action.PAUSE, PauseReason.DAILY_CAP, day_start, numbers)
    idle_limit = limits.idle_pause_minutes
    if idle_limit is not None and activity.idle_since is not None and idle_minutes >= idle_limit:
        return ThrottleDecision(Action.PAUSE, PauseReason.IDLE, activity.idle_since, numbers)
    since = activity.run_started_at if running_now else activity.idle_since
    return ThrottleDecision(Action.RUN, None, since, numbers)


def _minutes(value: int | None, per: int) -> int | None:
    return None if value is None else value * per
