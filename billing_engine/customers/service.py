"""Use cases of the engine: the domain applied to what the store holds, at a given time."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from billing_core.periods import BillingPeriod, period_containing
from billing_core.plans import Plan, PlanCatalog
from billing_core.quota import BUDGET_THRESHOLDS, compute_quota, hours
from billing_engine.db.repository import OrgRecord, Repository, day_range
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.usage.rules import (
    REJECT_MESSAGES,
    HeartbeatLike,
    MeteringPolicy,
    classify,
)

log = logging.getLogger("billing_engine.service")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class NotFound(LookupError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicate: int
    rejections: tuple[tuple[int, str], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": len(self.rejections),
            "rejections": [
                {"index": i, "reason": reason, "message": REJECT_MESSAGES[reason]}  # type: ignore[index]
                for i, reason in self.rejections
            ],
        }


def org_json(org: OrgRecord) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "billing_email": org.billing_email,
        "plan": org.plan,
        "stripe_customer_id": org.stripe_customer_id,
        "created_at": org.created_at.isoformat(),
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "code": plan.code,
        "name": plan.name,
        "base_fee_cents": plan.base_fee_cents,
        "included_hours": plan.included_hours,
        "overage_cents_per_hour": plan.overage_cents_per_hour,
        "overage_allowed": plan.overage_allowed,
        "limits": {
            "max_concurrent_instances": plan.limits.max_concurrent_instances,
            "continuous_run_hours": plan.limits.continuous_run_hours,
            "daily_cap_hours": plan.limits.daily_cap_hours,
            "idle_pause_minutes": plan.limits.idle_pause_minutes,
        },
    }


def period_json(period: BillingPeriod) -> dict[str, str]:
    return {"key": period.key, "start": period.start.isoformat(), "end": period.end.isoformat()}


class BillingService:
    def __init__(
        self,
        *,
        repository: Repository,
        catalog: PlanCatalog,
        policy: MeteringPolicy,
        metrics: EngineMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self.repo = repository
        self.catalog = catalog
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        # Orgs are never deleted, so a positive cache of known ids is always right.
        self._known_orgs: set[str] = set()
        self._known_lock = threading.Lock()
        self._newest_heartbeat: datetime | None = None
        # Called with an org id after any change to the org (the entitlements cache listens).
        self.org_listeners: list[Callable[[str], None]] = []
        # Further sections of the billing view, by key, each given the org id (additive only).
        self.billing_sections: dict[str, Callable[[str], Any]] = {}

    # -- metering ---------------------------------------------------------------------------

    def ingest(self, heartbeats: Sequence[HeartbeatLike]) -> IngestResult:
        now = self.clock()
        org_ids = {hb.org_id for hb in heartbeats}
        with self._known_lock:
            unknown = org_ids - self._known_orgs
        if unknown:
            found = self.repo.existing_org_ids(unknown)
            with self._known_lock:
                self._known_orgs |= found
        with self._known_lock:
            known = org_ids & self._known_orgs
        plan, outcome = self.repo.ingest(
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
        if plan.sightings:
            newest = max(s.last_seen for s in plan.sightings)
            self._note_heartbeat(newest)
        return IngestResult(
            accepted=accepted,
            duplicate=duplicate,
            rejections=tuple((r.index, r.reason.value) for r in plan.rejections),
        )

    def _note_heartbeat(self, ts: datetime) -> None:
        if self._newest_heartbeat is None or ts > self._newest_heartbeat:
            self._newest_heartbeat = ts

    # -- reads ------------------------------------------------------------------------------

    def require_org(self, org_id: str) -> OrgRecord:
        org = self.repo.get_org(org_id)
        if org is None:
            raise NotFound("org_id", f"no org with id {org_id!r}")
        return org

    def plan_for(self, org: OrgRecord) -> Plan:
        plan = self.catalog.get(org.plan)
        if plan is None:
            # An org on a plan that left the catalogue is billed as the default plan and logged.
            log.warning("org on unknown plan", extra={"plan": org.plan})
            plan = self.catalog.plans[self.catalog.default_plan]
        return plan

    def billing_view(self, org_id: str) -> dict[str, Any]:
        now = self.clock()
        period = period_containing(now)
        org, used_minutes = self.repo.org_with_period_minutes(org_id, period)
        if org is None:
            raise NotFound("org_id", f"no org with id {org_id!r}")
        plan = self.plan_for(org)
        quota = compute_quota(plan, used_minutes=used_minutes)
        view = {
            "org": org_json(org),
            "plan": plan_json(plan),
            "period": period_json(period),
            "usage": {
                "included_hours": hours(quota.included_minutes),
                "used_hours": hours(quota.used_minutes),
                "remaining_hours": hours(quota.remaining_minutes),
                "overage_hours": hours(quota.overage_minutes),
                "included_minutes": quota.included_minutes,
                "used_minutes": quota.used_minutes,
                "remaining_minutes": quota.remaining_minutes,
                "overage_minutes": quota.overage_minutes,
                "percent_used": quota.percent_used,
            },
            "charges": {
                "currency": "usd",
                "base_fee_cents": quota.base_fee_cents,
                "estimated_overage_cents": quota.estimated_overage_cents,
                "estimated_total_cents": quota.estimated_total_cents,
            },
            "thresholds_crossed": list(quota.thresholds_crossed),
            "as_of": now.isoformat(),
        }
        for key, section in self.billing_sections.items():
            view[key] = section(org_id)
        return view

    def daily_usage(self, org_id: str, days: int) -> dict[str, Any]:
        self.require_org(org_id)
        today = self.clock().date()
        first, end = day_range(days, today=today)
        rollups = self.repo.daily_minutes(org_id, first_day=first, end_day=end)
        series = []
        day = first
        while day < end:
            minutes = rollups.get(day, 0)
            series.append({"day": day.isoformat(), "minutes": minutes, "hours": hours(minutes)})
            day += timedelta(days=1)
        return {"org_id": org_id, "days": series}

    def debug_daily_usage(self, org_id: str) -> dict[str, Any]:
        """Rollups beside a fresh count from raw slots, day by day, for the current period."""
        self.require_org(org_id)
        period = period_containing(self.clock())
        rollups = self.repo.daily_minutes(
            org_id, first_day=period.first_day, end_day=period.end_day
        )
        raw = self.repo.raw_daily_minutes(org_id, period)
        days = sorted(set(rollups) | set(raw))
        rows = [
            {
                "day": d.isoformat(),
                "rollup_minutes": rollups.get(d, 0),
                "raw_minutes": raw.get(d, 0),
                "drift_minutes": rollups.get(d, 0) - raw.get(d, 0),
            }
            for d in days
        ]
        return {
            "org_id": org_id,
            "period": period_json(period),
            "days": rows,
            "in_sync": all(r["drift_minutes"] == 0 for r in rows),
            "hint": "POST /admin/quota/{org_id}/refresh rebuilds the rollups from raw slots",
        }

    def search(self, query: str, *, page: int, page_size: int) -> dict[str, Any]:
        results, total = self.repo.search_orgs(
            query, limit=page_size, offset=(page - 1) * page_size
        )
        return {
            "query": query,
            "page": page,
            "page_size": page_size,
            "total": total,
            "results": [org_json(o) for o in results],
        }

    def instance_view(self, instance_id: str) -> dict[str, Any]:
        record = self.repo.get_instance(instance_id)
        if record is None:
            raise NotFound("instance_id", f"no heartbeat was ever received from {instance_id!r}")
        now = self.clock()
        period = period_containing(now)
        minutes = self.repo.instance_minutes(instance_id, period)
        return {
            "instance_id": record.instance_id,
            "org_id": record.org_id,
            "state": record.last_state,
            "first_seen": record.first_seen.isoformat(),
            "last_seen": record.last_seen.isoformat(),
            "seconds_since_seen": max(0, int((now - record.last_seen).total_seconds())),
            "period": period_json(period),
            "minutes_this_period": minutes,
            "hours_this_period": hours(minutes),
        }

    # -- admin ------------------------------------------------------------------------------

    def upsert_org(
        self, *, org_id: str, name: str, email: str, plan: str
    ) -> tuple[dict[str, Any], bool]:
        record, created = self.repo.upsert_org(
            org_id=org_id, name=name, billing_email=email, plan=plan, now=self.clock()
        )
        with self._known_lock:
            self._known_orgs.add(org_id)
        for listener in self.org_listeners:
            listener(org_id)
        return org_json(record), created

    def refresh_quota(self, org_id: str) -> dict[str, Any]:
        self.require_org(org_id)
        period = period_containing(self.clock())
        before = self.repo.period_minutes(org_id, period)
        rebuilt = self.repo.rebuild_rollups(org_id)
        after = sum(m for d, m in rebuilt.items() if period.first_day <= d < period.end_day)
        log.info("quota refreshed", extra={"before_minutes": before, "after_minutes": after})
        return {
            "org_id": org_id,
            "period": period_json(period),
            "before_minutes": before,
            "after_minutes": after,
            "days_rebuilt": len(rebuilt),
            "billing": self.billing_view(org_id),
        }

    # -- housekeeping (metrics that need the database) --------------------------------------

    def check_ready(self) -> None:
        try:
            self.repo.ping()
        except Exception:
            self.metrics.ready.set(0)
            raise
        self.metrics.ready.set(1)

    def refresh_gauges(self) -> None:
        now = self.clock()
        period = period_containing(now)
        counts = dict.fromkeys(BUDGET_THRESHOLDS, 0)
        for _org_id, plan_code, minutes in self.repo.usage_by_org(period):
            plan = self.catalog.get(plan_code) or self.catalog.plans[self.catalog.default_plan]
            quota = compute_quota(plan, used_minutes=minutes)
            for threshold in quota.thresholds_crossed:
                counts[threshold] += 1
        for threshold, count in counts.items():
            self.metrics.orgs_over_threshold.labels(str(threshold)).set(count)
        newest = self.repo.newest_heartbeat()
        if newest is not None:
            self._note_heartbeat(newest)
        self.update_lag(now)

    def update_lag(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        if self._newest_heartbeat is None:
            self.metrics.rollup_lag.set(math.nan)
        else:
            self.metrics.rollup_lag.set(max(0.0, (now - self._newest_heartbeat).total_seconds()))
