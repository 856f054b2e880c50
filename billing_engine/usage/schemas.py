"""Metering over HTTP: the heartbeat batch, what its answer says, and the usage views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from billing_core.http import ResponseModel, Timestamp
from billing_core.periods import BillingPeriod
from billing_core.quota import hours
from billing_core.schemas import PeriodOut, period_out
from billing_engine.api.deps import INSTANCE_ID_PATTERN
from billing_engine.billing_view.schemas import BillingCardOut
from billing_engine.customers.schemas import OrgId
from billing_engine.throttling.schemas import DecisionOut
from billing_engine.usage.rules import REJECT_MESSAGES, InstanceState
from billing_engine.usage.service import (
    DayDrift,
    IngestResult,
    InstanceUsage,
    OrgInstances,
    Rebuilt,
    TopOrg,
)
from billing_engine.usage.store import OrgInstance

MAX_BATCH = 5000
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]
# The same instant in UTC: the offset a fleet sends means nothing to metering, and every later
# step (comparisons with stored instants, minute slots, the rows written) is cheaper on one
# tzinfo than on pydantic's own, which each comparison must ask for its offset.
UtcInstant = Annotated[AwareDatetime, AfterValidator(lambda ts: ts.astimezone(UTC))]


# -- requests ------------------------------------------------------------------------------------


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: InstanceId
    org_id: OrgId
    ts: UtcInstant = Field(description="When the instance sent it; RFC 3339 with a UTC offset.")
    state: InstanceState


class HeartbeatBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heartbeats: list[HeartbeatIn] = Field(min_length=1, max_length=MAX_BATCH)


# -- answers -------------------------------------------------------------------------------------


class RejectionOut(ResponseModel):
    index: int = Field(description="Position of the heartbeat in the batch")
    reason: str = Field(description="unknown_org, future_timestamp, closed_period, "
                        "instance_org_mismatch")
    message: str


class IngestOut(ResponseModel):
    accepted: int = Field(description="New billable minutes stored")
    duplicate: int = Field(description="Valid heartbeats for minutes already billed")
    rejected: int
    rejections: list[RejectionOut]
    decisions: list[DecisionOut] = Field(
        description="One per instance with an accepted heartbeat: run or pause, and why"
    )


def ingest_json(result: IngestResult, decisions: list[dict[str, object]]) -> dict[str, object]:
    """The answer as plain JSON (the hot path skips building models; IngestOut documents it)."""
    return {
        "accepted": result.accepted,
        "duplicate": result.duplicate,
        "rejected": len(result.rejections),
        "rejections": [
            {"index": i, "reason": reason.value, "message": REJECT_MESSAGES[reason]}
            for i, reason in result.rejections
        ],
        "decisions": decisions,
    }


class DayOut(ResponseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD")
    minutes: int
    hours: float


class DailyUsageOut(ResponseModel):
    org_id: str
    days: list[DayOut]


def daily_out(org_id: str, series: list[tuple[str, int]]) -> DailyUsageOut:
    return DailyUsageOut(
        org_id=org_id,
        days=[DayOut(day=d, minutes=m, hours=hours(m)) for d, m in series],
    )


class DayDriftOut(ResponseModel):
    day: str
    rollup_minutes: int
    raw_minutes: int
    drift_minutes: int


class DriftOut(ResponseModel):
    org_id: str
    period: PeriodOut
    days: list[DayDriftOut]
    in_sync: bool
    hint: str


def drift_out(org_id: str, period: BillingPeriod, days: list[DayDrift]) -> DriftOut:
    rows = [
        DayDriftOut(day=d.day, rollup_minutes=d.rollup_minutes, raw_minutes=d.raw_minutes,
                    drift_minutes=d.drift_minutes)
        for d in days
    ]
    return DriftOut(
        org_id=org_id,
        period=period_out(period),
        days=rows,
        in_sync=all(r.drift_minutes == 0 for r in rows),
        hint="POST /admin/quota/{org_id}/refresh rebuilds the rollups from raw slots",
    )


class InstanceOut(ResponseModel):
    instance_id: str
    org_id: str
    state: str = Field(description="running or idle, as last reported")
    first_seen: Timestamp
    last_seen: Timestamp
    seconds_since_seen: int
    period: PeriodOut
    minutes_this_period: int
    hours_this_period: float


def instance_out(found: InstanceUsage) -> InstanceOut:
    record = found.record
    return InstanceOut(
        instance_id=record.instance_id,
        org_id=record.org_id,
        state=record.last_state,
        first_seen=record.first_seen,
        last_seen=record.last_seen,
        seconds_since_seen=max(0, int((found.now - record.last_seen).total_seconds())),
        period=period_out(found.period),
        minutes_this_period=found.minutes,
        hours_this_period=hours(found.minutes),
    )


class InstanceThrottleOut(ResponseModel):
    """What the engine last told this instance, as stored with its throttle state."""

    decision: str
    reason: str | None
    paused_since: Timestamp | None
    run_started_at: Timestamp | None
    checked_at: Timestamp | None


class OrgInstanceOut(ResponseModel):
    instance_id: str
    state: str
    first_seen: Timestamp
    last_seen: Timestamp
    seconds_since_seen: int
    minutes_this_period: int
    hours_this_period: float
    throttle: InstanceThrottleOut


class OrgInstancesOut(ResponseModel):
    org_id: str
    period: PeriodOut
    total: int = Field(description="All the org's instances; `instances` holds up to `limit`")
    paused: int
    instances: list[OrgInstanceOut]
    as_of: Timestamp


def _org_instance(item: OrgInstance, now: datetime) -> OrgInstanceOut:
    return OrgInstanceOut(
        instance_id=item.instance_id,
        state=item.last_state,
        first_seen=item.first_seen,
        last_seen=item.last_seen,
        seconds_since_seen=max(0, int((now - item.last_seen).total_seconds())),
        minutes_this_period=item.minutes_this_period,
        hours_this_period=hours(item.minutes_this_period),
        throttle=InstanceThrottleOut(
            decision="pause" if item.paused_reason else "run",
            reason=item.paused_reason,
            paused_since=item.paused_since,
            run_started_at=item.run_started_at,
            checked_at=item.checked_at,
        ),
    )


def org_instances_out(found: OrgInstances) -> OrgInstancesOut:
    return OrgInstancesOut(
        org_id=found.org_id,
        period=period_out(found.period),
        total=found.total,
        paused=sum(1 for i in found.instances if i.paused_reason),
        instances=[_org_instance(i, found.now) for i in found.instances],
        as_of=found.now,
    )


class TopOrgOut(ResponseModel):
    org_id: str
    name: str
    plan: str
    used_hours: float
    included_hours: float
    overage_hours: float
    percent_used: float
    estimated_total_cents: int


class TopOrgsOut(ResponseModel):
    period: PeriodOut
    orgs: list[TopOrgOut]
    as_of: Timestamp


def top_orgs_out(period: BillingPeriod, rows: list[TopOrg], now: datetime) -> TopOrgsOut:
    return TopOrgsOut(
        period=period_out(period),
        orgs=[
            TopOrgOut(
                org_id=r.org.id,
                name=r.org.name,
                plan=r.plan_code,
                used_hours=hours(r.quota.used_minutes),
                included_hours=hours(r.quota.included_minutes),
                overage_hours=hours(r.quota.overage_minutes),
                percent_used=r.quota.percent_used,
                estimated_total_cents=r.quota.estimated_total_cents,
            )
            for r in rows
        ],
        as_of=now,
    )


class QuotaRefreshOut(ResponseModel):
    org_id: str
    period: PeriodOut
    before_minutes: int = Field(description="This period's minutes before the rebuild")
    after_minutes: int
    days_rebuilt: int
    billing: BillingCardOut = Field(description="The billing card after the rebuild")


def quota_refresh_out(rebuilt: Rebuilt, card: BillingCardOut) -> QuotaRefreshOut:
    return QuotaRefreshOut(
        org_id=rebuilt.org_id,
        period=period_out(rebuilt.period),
        before_minutes=rebuilt.before_minutes,
        after_minutes=rebuilt.after_minutes,
        days_rebuilt=rebuilt.days_rebuilt,
        billing=card,
    )
