"""Support views that span many rows: an org's instances with their throttle state, top orgs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing_core.periods import period_containing
from billing_core.quota import compute_quota, hours
from billing_engine.customers.service import BillingService, period_json
from billing_engine.usage.instances_store import OrgInstance, SupportStore


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def instance_json(item: OrgInstance, now: datetime) -> dict[str, Any]:
    return {
        "instance_id": item.instance_id,
        "state": item.last_state,
        "first_seen": item.first_seen.isoformat(),
        "last_seen": item.last_seen.isoformat(),
        "seconds_since_seen": max(0, int((now - item.last_seen).total_seconds())),
        "minutes_this_period": item.minutes_this_period,
        "hours_this_period": hours(item.minutes_this_period),
        # What the engine last told this instance, as stored with its throttle state.
        "throttle": {
            "decision": "pause" if item.paused_reason else "run",
            "reason": item.paused_reason,
            "paused_since": _iso(item.paused_since),
            "run_started_at": _iso(item.run_started_at),
            "checked_at": _iso(item.checked_at),
        },
    }


class SupportViews:
    def __init__(self, service: BillingService) -> None:
        self.service = service
        self.store = SupportStore(service.repo)

    def org_instances(self, org_id: str, *, limit: int) -> dict[str, Any]:
        self.service.require_org(org_id)
        now = self.service.clock()
        period = period_containing(now)
        items, total = self.store.org_instances(org_id, period, limit=limit)
        return {
            "org_id": org_id,
            "period": period_json(period),
            "total": total,
            "paused": sum(1 for i in items if i.paused_reason),
            "instances": [instance_json(i, now) for i in items],
            "as_of": now.isoformat(),
        }

    def top_orgs(self, *, limit: int) -> dict[str, Any]:
        now = self.service.clock()
        period = period_containing(now)
        rows = []
        for org, minutes in self.store.top_orgs(period, limit=limit):
            plan = self.service.plan_for(org)
            quota = compute_quota(plan, used_minutes=minutes)
            rows.append(
                {
                    "org_id": org.id,
                    "name": org.name,
                    "plan": plan.code,
                    "used_hours": hours(quota.used_minutes),
                    "included_hours": hours(quota.included_minutes),
                    "overage_hours": hours(quota.overage_minutes),
                    "percent_used": quota.percent_used,
                    "estimated_total_cents": quota.estimated_total_cents,
                }
            )
        return {"period": period_json(period), "orgs": rows, "as_of": now.isoformat()}
