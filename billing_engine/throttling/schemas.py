"""Throttle decisions and their explanations, as the API shows them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp


class DecisionOut(ResponseModel):
    """What one instance is told after its heartbeats were stored."""

    instance_id: str
    action: Literal["run", "pause"]
    reason: str | None = Field(description="continuous_run_limit, daily_cap or idle when paused")


class ActivityOut(ResponseModel):
    run_started_at: Timestamp | None
    last_running_at: Timestamp | None
    idle_since: Timestamp | None
    last_seen: Timestamp | None


class ThrottleNumbersOut(ResponseModel):
    """The figures each limit was checked against (null: the plan has no such limit)."""

    continuous_run_minutes: int
    continuous_run_limit_minutes: int | None
    org_minutes_today: int
    daily_cap_minutes: int | None
    idle_minutes: int
    idle_pause_minutes: int | None


class ThrottleViewOut(ResponseModel):
    instance_id: str
    org_id: str
    plan: str = Field(description="The plan whose limits applied")
    action: Literal["run", "pause"]
    reason: str | None
    since: Timestamp | None = Field(description="When the condition behind the decision began")
    numbers: ThrottleNumbersOut
    paused_since: Timestamp | None
    last_checked_at: Timestamp | None
    activity: ActivityOut
    as_of: Timestamp


class DailyResetOut(ResponseModel):
    org_id: str
    day: str = Field(description="The UTC day whose counter starts again from zero")
    billed_minutes_today: int = Field(description="Usage that day, which stays billed")
    offset_minutes: int
    throttle_minutes_today: int
    reset_at: Timestamp
