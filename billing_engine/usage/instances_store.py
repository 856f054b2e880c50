"""Read-only queries behind the support views: an org's instances, the heaviest orgs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from billing_core.periods import BillingPeriod
from billing_engine.db.repository import OrgRecord, Repository, _org, _utc, _utc_or_none
from billing_engine.db.schema import daily_usage, instance_throttle, instances, orgs, usage_slots


@dataclass(frozen=True)
class OrgInstance:
    instance_id: str
    first_seen: datetime
    last_seen: datetime
    last_state: str
    minutes_this_period: int
    paused_reason: str | None
    paused_since: datetime | None
    run_started_at: datetime | None
    checked_at: datetime | None


class SupportStore:
    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    def org_instances(
        self, org_id: str, period: BillingPeriod, *, limit: int
    ) -> tuple[list[OrgInstance], int]:
        """An org's instances, most recently seen first, with their stored throttle state and
        minutes this period (one grouped range read over just these instances' slots)."""

        def work(conn: Connection) -> tuple[list[OrgInstance], int]:
            total = int(
                conn.execute(
                    select(func.count()).where(instances.c.org_id == org_id)
                ).scalar_one()
            )
            rows = conn.execute(
                select(
                    instances,
                    instance_throttle.c.paused_reason,
                    instance_throttle.c.paused_since,
                    instance_throttle.c.run_started_at,
                    instance_throttle.c.checked_at,
                )
                .select_from(
                    instances.outerjoin(
                        instance_throttle,
                        instance_throttle.c.instance_id == instances.c.instance_id,
                    )
                )
                .where(instances.c.org_id == org_id)
                .order_by(instances.c.last_seen.desc(), instances.c.instance_id)
                .limit(limit)
            ).all()
            ids = [r.instance_id for r in rows]
            minutes: dict[str, int] = {}
            if ids:
                counted = conn.execute(
                    select(usage_slots.c.instance_id, func.count().label("n"))
                    .where(
                        usage_slots.c.instance_id.in_(ids),
                        usage_slots.c.minute >= period.start_minute,
                        usage_slots.c.minute < period.end_minute,
                    )
                    .group_by(usage_slots.c.instance_id)
                )
                minutes = {r.instance_id: int(r.n) for r in counted}
            return [_instance(r, minutes.get(r.instance_id, 0)) for r in rows], total

        return self.repo._run(work)

    def top_orgs(self, period: BillingPeriod, *, limit: int) -> list[tuple[OrgRecord, int]]:
        """The orgs with the most billed minutes in the period, from the daily rollups."""
        used = (
            select(daily_usage.c.org_id, func.sum(daily_usage.c.minutes).label("minutes"))
            .where(daily_usage.c.day >= period.first_day, daily_usage.c.day < period.end_day)
            .group_by(daily_usage.c.org_id)
            .subquery()
        )
        query = (
            select(orgs, used.c.minutes)
            .join(used, used.c.org_id == orgs.c.id)
            .order_by(used.c.minutes.desc(), orgs.c.id)
            .limit(limit)
        )
        rows = self.repo._run(lambda c: c.execute(query).all())
        return [(_org(r), int(r.minutes)) for r in rows]


def _instance(row: Any, minutes: int) -> OrgInstance:
    return OrgInstance(
        instance_id=row.instance_id,
        first_seen=_utc(row.first_seen),
        last_seen=_utc(row.last_seen),
        last_state=row.last_state,
        minutes_this_period=minutes,
        paused_reason=row.paused_reason,
        paused_since=_utc_or_none(row.paused_since),
        run_started_at=_utc_or_none(row.run_started_at),
        checked_at=_utc_or_none(row.checked_at),
    )
