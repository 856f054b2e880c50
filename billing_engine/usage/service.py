"""Use cases of metering: ingest heartbeats, and the usage views support and on-call read.

The domain rules (`usage.rules`) decide what a heartbeat is worth; the store keeps minutes,
rollups and instances in one transaction; this service adds the time, the orgs that exist and
the metrics, and shapes what the routes answer.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_core.clock import Clock, utc_now
from billing_core.errors import NotFound
from billing_core.periods import BillingPeriod, minute_of, period_containing
from billing_core.plans import PlanCatalog
from billing_core.quota import Quota, compute_quota
from billing_engine.customers.service import Customers
from billing_engine.customers.store import OrgRecord
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.usage.rules import (
    MINUTES_PER_HOUR,
    HeartbeatLike,
    MeteringPolicy,
    Rejection,
    RejectReason,
    classify,
    earliest_open_instant,
)
from billing_engine.usage.store import (
    InstanceRecord,
    OrgInstance,
    UsageStore,
    day_range,
)

log = logging.getLogger("billing_engine.service")

# How long the per-org refusal tally is kept: long enough for a post-mortem written weeks later.
REFUSALS_KEEP_DAYS = 90


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicate: int
    rejections: tuple[tuple[int, RejectReason], ...]


@dataclass(frozen=True)
class DayDrift:
    day: str
    rollup_minutes: int
    raw_minutes: int

    @property
    def drift_minutes(self) -> int:
        return self.rollup_minutes - self.raw_minutes


@dataclass(frozen=True)
class Rebuilt:
    org_id: str
    period: BillingPeriod
    before_minutes: int
    after_minutes: int
    days_rebuilt: int


@dataclass(frozen=True)
class InstanceUsage:
    record: InstanceRecord
    period: BillingPeriod
    minutes: int
    now: datetime


@dataclass(frozen=True)
class OrgInstances:
    org_id: str
    period: BillingPeriod
    total: int
    instances: list[OrgInstance]
    now: datetime


@dataclass(frozen=True)
class TopOrg:
    org: OrgRecord
    plan_code: str
    quota: Quota


class Usage:
    def __init__(
        self,
        *,
        store: UsageStore,
        customers: Customers,
        catalog: PlanCatalog,
        policy: MeteringPolicy,
        metrics: EngineMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.customers = customers
        self.catalog = catalog
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self._newest_heartbeat: datetime | None = None
        self._newest_lock = threading.Lock()

    # -- metering ---------------------------------------------------------------------------

    def ingest(self, heartbeats: Sequence[HeartbeatLike]) -> IngestResult:
        now = self.clock()
        known = self.customers.known(hb.org_id for hb in heartbeats)
        plan, outcome = self.store.ingest(
            (hb.instance_id for hb in heartbeats),
            lambda owners: classify(
                heartbeats, now=now, policy=self.policy, known_orgs=known, instance_owners=owners
            ),
        )
        accepted = outcome.new_slots
        duplicate = plan.valid_count - accepted
        m = self.metrics
        m.heartbeat_batch_size.observe(len(heartbeats))
        m.heartbeats_ingested.inc(accepted)
        m.heartbeats_duplicate.inc(duplicate)
        for rejection in plan.rejections:
            m.heartbeats_rejected.labels(rejection.reason.value).inc()
        if plan.rejections:
            self._note_refusals(heartbeats, plan.rejections, now=now)
        if plan.sightings:
            self._note_heartbeat(max(s.last_seen for s in plan.sightings))
        return IngestResult(
            accepted=accepted,
            duplicate=duplicate,
            rejections=tuple((r.index, r.reason) for r in plan.rejections),
        )

    def _note_refusals(self, heartbeats: Sequence[HeartbeatLike],
                       rejections: Sequence[Rejection], *, now: datetime) -> None:
        """Tally the refusals by org for post-mortems. The batch is stored already and its
        answer stands: a tally that cannot be written is logged, not raised."""
        counts: Counter[tuple[str, str]] = Counter(
            (heartbeats[r.index].org_id, r.reason.value) for r in rejections
            if r.reason is not RejectReason.UNKNOWN_ORG)
        try:
            self.store.record_refusals(minute_of(now) // MINUTES_PER_HOUR, counts)
        except Exception:
            log.exception("heartbeat refusals could not be tallied",
                          extra={"orgs": len({org for org, _ in counts})})

    def forget_old_refusals(self) -> int:
        """Housekeeping: the refusal tally is kept REFUSALS_KEEP_DAYS days."""
        keep_from = self.clock() - timedelta(days=REFUSALS_KEEP_DAYS)
        return self.store.forget_refusals(before_hour=minute_of(keep_from) // MINUTES_PER_HOUR)

    def _note_heartbeat(self, ts: datetime) -> None:
        with self._newest_lock:
            if self._newest_heartbeat is None or ts > self._newest_heartbeat:
                self._newest_heartbeat = ts

    # -- reads ------------------------------------------------------------------------------

    def daily(self, org_id: str, days: int) -> list[tuple[str, int]]:
        """(UTC day, minutes) for the last `days` days, oldest first, zeros included."""
        self.customers.require(org_id)
        first, end = day_range(days, today=self.clock().date())
        rollups = self.store.daily_minutes(org_id, first_day=first, end_day=end)
        series = []
        day = first
        while day < end:
            series.append((day.isoformat(), rollups.get(day, 0)))
            day += timedelta(days=1)
        return series

    def drift(self, org_id: str) -> tuple[BillingPeriod, list[DayDrift]]:
        """Rollups beside a fresh count from raw usage, day by day, for the current period."""
        self.customers.require(org_id)
        period = period_containing(self.clock())
        rollups = self.store.daily_minutes(
            org_id, first_day=period.first_day, end_day=period.end_day
        )
        raw = self.store.raw_daily_minutes(org_id, period)
        days = sorted(set(rollups) | set(raw))
        return period, [DayDrift(d.isoformat(), rollups.get(d, 0), raw.get(d, 0)) for d in days]

    def instance(self, instance_id: str) -> InstanceUsage:
        record = self.store.get_instance(instance_id)
        if record is None:
            raise NotFound("instance_id", f"no heartbeat was ever received from {instance_id!r}")
        now = self.clock()
        period = period_containing(now)
        minutes = self.store.instance_minutes(record.org_id, instance_id, period)
        return InstanceUsage(record, period, minutes, now)

    def org_instances(self, org_id: str, *, limit: int) -> OrgInstances:
        self.customers.require(org_id)
        now = self.clock()
        period = period_containing(now)
        items, total = self.store.org_instances(org_id, period, limit=limit)
        return OrgInstances(org_id, period, total, items, now)

    def top_orgs(self, *, limit: int) -> tuple[BillingPeriod, list[TopOrg], datetime]:
        now = self.clock()
        period = period_containing(now)
        rows = []
        for org, minutes in self.store.top_orgs(period, limit=limit):
            plan = self.catalog.plan_or_default(org.plan)
            rows.append(TopOrg(org, plan.code, compute_quota(plan, used_minutes=minutes)))
        return period, rows, now

    # -- repair -----------------------------------------------------------------------------

    def rebuild(self, org_id: str) -> Rebuilt:
        """Rebuild an org's daily rollups of the periods still open from its raw usage (closed
        periods are invoiced: their rollups are what the invoices say)."""
        self.customers.require(org_id)
        now = self.clock()
        period = period_containing(now)
        before = self.store.period_minutes(org_id, period)
        first_open = earliest_open_instant(now=now, grace=self.policy.close_grace)
        rebuilt = self.store.rebuild_rollups(org_id, first_day=first_open.date())
        after = sum(m for d, m in rebuilt.items() if period.first_day <= d < period.end_day)
        log.info("quota refreshed", extra={"before_minutes": before, "after_minutes": after})
        return Rebuilt(org_id, period, before, after, len(rebuilt))

    # -- gauges -----------------------------------------------------------------------------

    def refresh_gauges(self) -> None:
        """Orgs past each budget threshold, and the rollup lag (housekeeping, each round)."""
        now = self.clock()
        period = period_containing(now)
        counts = self.store.orgs_past_thresholds(period, self.catalog)
        for threshold, count in counts.items():
            self.metrics.orgs_over_threshold.labels(str(threshold)).set(count)
        newest = self.store.newest_heartbeat()
        if newest is not None:
            self._note_heartbeat(newest)
        self.update_lag(now)

    def update_lag(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        if self._newest_heartbeat is None:
            self.metrics.rollup_lag.set(math.nan)
        else:
            self.metrics.rollup_lag.set(max(0.0, (now - self._newest_heartbeat).total_seconds()))
