"""Metering storage: minute slots, daily rollups and instances. Every statement is parameterised;
the ingest path is one transaction (slots, rollups and sightings commit together)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, case, func, select, text

from billing_core.periods import BillingPeriod, day_of_minute
from billing_core.sql import utc, utc_or_none
from billing_engine.customers.store import OrgRecord, org_from_row
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.throttling.tables import instance_throttle
from billing_engine.usage.rules import BatchPlan
from billing_engine.usage.tables import daily_usage, instances, usage_slots


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    org_id: str
    first_seen: datetime
    last_seen: datetime
    last_state: str


@dataclass(frozen=True)
class IngestOutcome:
    new_slots: int
    days_touched: int


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



def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


# The hot path on PostgreSQL: insert the batch's new minute slots and fold exactly those into the
# daily rollups, in one round trip. Rows go in key order so overlapping batches lock in the same
# order and cannot deadlock each other.
_PG_INGEST = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:instance_ids AS text[]), CAST(:minutes AS bigint[]),
            CAST(:org_ids AS text[]), CAST(:states AS text[])
        ) AS t(instance_id, minute, org_id, state)
    ), new_slots AS (
        INSERT INTO usage_slots (instance_id, minute, org_id, state)
        SELECT instance_id, minute, org_id, state FROM input ORDER BY instance_id, minute
        ON CONFLICT DO NOTHING
        RETURNING org_id, minute
    ), rolled AS (
        INSERT INTO daily_usage (org_id, day, minutes)
        SELECT org_id, DATE '1970-01-01' + CAST(minute / 1440 AS integer) AS day, count(*)
        FROM new_slots GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (org_id, day) DO UPDATE SET minutes = daily_usage.minutes + EXCLUDED.minutes
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM new_slots) AS new_slots, (SELECT count(*) FROM rolled) AS days
    """
)


def period_minutes_query(org_id: str, period: BillingPeriod) -> Select[Any]:
    """An org's billed minutes in a period, summed from its daily rollups."""
    return select(func.coalesce(func.sum(daily_usage.c.minutes), 0)).where(
        daily_usage.c.org_id == org_id,
        daily_usage.c.day >= period.first_day,
        daily_usage.c.day < period.end_day,
    )


def _raw_daily_query(org_id: str, period: BillingPeriod | None = None) -> Select[Any]:
    """An org's raw slots counted per UTC day (epoch day), over a period or all time."""
    day_expr = usage_slots.c.minute // 1440
    query = select(day_expr.label("epoch_day"), func.count().label("minutes")).where(
        usage_slots.c.org_id == org_id
    )
    if period is not None:
        query = query.where(
            usage_slots.c.minute >= period.start_minute,
            usage_slots.c.minute < period.end_minute,
        )
    return query.group_by(day_expr)


def _by_day(rows: Iterable[Any]) -> dict[date, int]:
    return {day_of_minute(int(r.epoch_day) * 1440): int(r.minutes) for r in rows}


class UsageStore(Store):
    # -- metering ---------------------------------------------------------------------------

    def ingest(
        self, instance_ids: Iterable[str], make_plan: Callable[[dict[str, str]], BatchPlan]
    ) -> tuple[BatchPlan, IngestOutcome]:
        """Classify and store a batch in one transaction: slots, rollups and sightings commit
        together, and the instance owners the plan was made against are read in the same
        transaction. `make_plan` is pure; it may run again if the transaction is retried."""
        wanted = sorted(set(instance_ids))

        def work(conn: Connection) -> tuple[BatchPlan, IngestOutcome]:
            owners: dict[str, str] = {}
            if wanted:
                rows = conn.execute(
                    select(instances.c.instance_id, instances.c.org_id).where(
                        instances.c.instance_id.in_(wanted)
                    )
                )
                owners = {r.instance_id: r.org_id for r in rows}
            plan = make_plan(owners)
            if not plan.slots:
                return plan, IngestOutcome(0, 0)
            if self.db.is_postgres:
                row = conn.execute(
                    _PG_INGEST,
                    {
                        "instance_ids": [s.instance_id for s in plan.slots],
                        "minutes": [s.minute for s in plan.slots],
                        "org_ids": [s.org_id for s in plan.slots],
                        "states": [s.state.value for s in plan.slots],
                    },
                ).one()
                outcome = IngestOutcome(int(row.new_slots), int(row.days))
            else:
                outcome = self._ingest_generic(conn, plan)
            self._record_sightings(conn, plan)
            return plan, outcome

        return self._run(work, write=True)

    def _ingest_generic(self, conn: Connection, plan: BatchPlan) -> IngestOutcome:
        stmt = (
            self._insert(usage_slots)
            .on_conflict_do_nothing()
            .returning(usage_slots.c.org_id, usage_slots.c.minute)
        )
        rows = conn.execute(
            stmt,
            [
                {
                    "instance_id": s.instance_id,
                    "minute": s.minute,
                    "org_id": s.org_id,
                    "state": s.state.value,
                }
                for s in plan.slots
            ],
        ).all()
        per_day = Counter((r.org_id, day_of_minute(r.minute)) for r in rows)
        if per_day:
            upsert = self._insert(daily_usage)
            upsert = upsert.on_conflict_do_update(
                index_elements=[daily_usage.c.org_id, daily_usage.c.day],
                set_={"minutes": daily_usage.c.minutes + upsert.excluded.minutes},
            )
            conn.execute(
                upsert,
                [{"org_id": o, "day": d, "minutes": n} for (o, d), n in sorted(per_day.items())],
            )
        return IngestOutcome(len(rows), len(per_day))

    def _record_sightings(self, conn: Connection, plan: BatchPlan) -> None:
        if not plan.sightings:
            return
        greatest, least = (
            (func.greatest, func.least) if self.db.is_postgres else (func.max, func.min)
        )
        stmt = self._insert(instances)
        stmt = stmt.on_conflict_do_update(
            index_elements=[instances.c.instance_id],
            set_={
                "first_seen": least(instances.c.first_seen, stmt.excluded.first_seen),
                "last_state": case(
                    (stmt.excluded.last_seen >= instances.c.last_seen, stmt.excluded.last_state),
                    else_=instances.c.last_state,
                ),
                "last_seen": greatest(instances.c.last_seen, stmt.excluded.last_seen),
            },
        )
        conn.execute(
            stmt,
            [
                {
                    "instance_id": s.instance_id,
                    "org_id": s.org_id,
                    "first_seen": s.first_seen,
                    "last_seen": s.last_seen,
                    "last_state": s.last_state.value,
                }
                for s in plan.sightings
            ],
        )

    # -- usage reads (rollups only) ---------------------------------------------------------

    def period_minutes(self, org_id: str, period: BillingPeriod) -> int:
        query = period_minutes_query(org_id, period)
        return int(self._run(lambda c: c.execute(query).scalar_one()))

    def daily_minutes(self, org_id: str, *, first_day: date, end_day: date) -> dict[date, int]:
        query = (
            select(daily_usage.c.day, daily_usage.c.minutes)
            .where(
                daily_usage.c.org_id == org_id,
                daily_usage.c.day >= first_day,
                daily_usage.c.day < end_day,
            )
            .order_by(daily_usage.c.day)
        )
        return {_as_date(r.day): int(r.minutes) for r in self._run(lambda c: c.execute(query))}

    def usage_by_org(self, period: BillingPeriod) -> list[tuple[str, str, int]]:
        """(org_id, plan, minutes) for every org with usage in the period: one set-based query."""
        query = (
            select(orgs.c.id, orgs.c.plan, func.sum(daily_usage.c.minutes).label("minutes"))
            .join(daily_usage, daily_usage.c.org_id == orgs.c.id)
            .where(daily_usage.c.day >= period.first_day, daily_usage.c.day < period.end_day)
            .group_by(orgs.c.id, orgs.c.plan)
        )
        return [(r.id, r.plan, int(r.minutes)) for r in self._run(lambda c: c.execute(query))]

    def raw_daily_minutes(self, org_id: str, period: BillingPeriod) -> dict[date, int]:
        """Count an org's raw slots per day (debug and repair only: this scans slots)."""
        query = _raw_daily_query(org_id, period)
        return _by_day(self._run(lambda c: c.execute(query).all()))

    def newest_heartbeat(self) -> datetime | None:
        value = self._run(lambda c: c.execute(select(func.max(instances.c.last_seen))).scalar())
        return None if value is None else utc(value)

    # -- instances --------------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        row = self._run(
            lambda c: c.execute(
                select(instances).where(instances.c.instance_id == instance_id)
            ).first()
        )
        if row is None:
            return None
        return InstanceRecord(
            instance_id=row.instance_id,
            org_id=row.org_id,
            first_seen=utc(row.first_seen),
            last_seen=utc(row.last_seen),
            last_state=row.last_state,
        )

    def instance_minutes(self, instance_id: str, period: BillingPeriod) -> int:
        # A primary-key range read over one instance's slots: bounded by minutes in a month.
        query = select(func.count()).where(
            usage_slots.c.instance_id == instance_id,
            usage_slots.c.minute >= period.start_minute,
            usage_slots.c.minute < period.end_minute,
        )
        return int(self._run(lambda c: c.execute(query).scalar_one()))

    # -- repair -----------------------------------------------------------------------------

    def rebuild_rollups(self, org_id: str) -> dict[date, int]:
        """Recompute an org's daily rollups from its raw minute slots; returns the new rollups."""

        def work(conn: Connection) -> dict[date, int]:
            if self.db.is_postgres:
                # Hold off concurrent ingest for this short repair so no increment is lost.
                conn.execute(text("LOCK TABLE usage_slots IN SHARE MODE"))
            rebuilt = _by_day(conn.execute(_raw_daily_query(org_id)).all())
            conn.execute(daily_usage.delete().where(daily_usage.c.org_id == org_id))
            if rebuilt:
                conn.execute(
                    daily_usage.insert(),
                    [
                        {"org_id": org_id, "day": d, "minutes": n}
                        for d, n in sorted(rebuilt.items())
                    ],
                )
            return rebuilt

        return self._run(work, write=True)

    # -- instances of an org, heaviest orgs (support views) -----------------------------------

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

        return self._run(work)

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
        rows = self._run(lambda c: c.execute(query).all())
        return [(org_from_row(r), int(r.minutes)) for r in rows]




def _instance(row: Any, minutes: int) -> OrgInstance:
    return OrgInstance(
        instance_id=row.instance_id,
        first_seen=utc(row.first_seen),
        last_seen=utc(row.last_seen),
        last_state=row.last_state,
        minutes_this_period=minutes,
        paused_reason=row.paused_reason,
        paused_since=utc_or_none(row.paused_since),
        run_started_at=utc_or_none(row.run_started_at),
        checked_at=utc_or_none(row.checked_at),
    )


def day_range(days: int, *, today: date) -> tuple[date, date]:
    """The last `days` UTC days ending today, as [first, end)."""
    return today - timedelta(days=days - 1), today + timedelta(days=1)
