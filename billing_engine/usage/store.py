"""Metering storage: instance-hours with minute masks, daily rollups and instances. Every
statement is parameterised; the ingest path is one transaction (minutes, rollups and sightings
commit together). Every statement on the usage tables names the org (docs/scaling.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, Table, and_, case, func, select, text
from sqlalchemy.exc import IntegrityError

from billing_core.periods import EPOCH_DAY, BillingPeriod, day_of_minute
from billing_core.plans import PlanCatalog
from billing_core.quota import BUDGET_THRESHOLDS
from billing_core.sql import array_literal, utc, utc_or_none
from billing_engine.customers.store import OrgRecord, org_from_row
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.throttling.tables import instance_throttle
from billing_engine.usage.facts import thresholds_reached
from billing_engine.usage.partitions import (
    create_partitions,
    is_missing_partition,
    periods_of_hours,
)
from billing_engine.usage.rules import MINUTES_PER_HOUR, BatchPlan, HourMask, hour_masks
from billing_engine.usage.tables import (
    daily_usage,
    heartbeat_refusals,
    instances,
    minute_count,
    period_usage,
    usage_hours,
)


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



def _chunks(items: Sequence[HourMask], size: int) -> Iterator[Sequence[HourMask]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


# The hot path on PostgreSQL, one round trip: upsert the batch's instance-hours in key order (so
# overlapping batches lock rows in the same order and cannot deadlock), ORing the minutes into
# the stored mask, and add exactly the minutes that were new to the daily rollups and to the
# period totals. The conflict branch runs on the stored row, locked, so "new" is exact even
# against a concurrent batch; a batch that adds nothing to a row leaves it unwritten. The same
# statement folds the batch's sightings into the instances' last-seen records, in instance
# order (one array each instead of a statement per instance). A data-modifying WITH runs to
# completion whether or not it is read.
_PG_INGEST = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:org_ids AS text[]), CAST(:instance_ids AS text[]),
            CAST(:hours AS integer[]), CAST(:masks AS bigint[])
        ) AS t(org_id, instance_id, hour, minute_mask)
    ), written AS (
        INSERT INTO usage_hours AS u (minute_mask, hour, minutes_added, org_id, instance_id)
        SELECT minute_mask, hour, bit_count(CAST(minute_mask AS bit(64))), org_id, instance_id
        FROM input ORDER BY org_id, instance_id, hour
        ON CONFLICT (org_id, instance_id, hour) DO UPDATE
        SET minute_mask = u.minute_mask | EXCLUDED.minute_mask,
            minutes_added = bit_count(CAST(EXCLUDED.minute_mask & ~u.minute_mask AS bit(64)))
        WHERE EXCLUDED.minute_mask & ~u.minute_mask <> 0
        RETURNING u.org_id, u.hour, u.minutes_added
    ), rolled AS (
        INSERT INTO daily_usage (org_id, day, minutes)
        SELECT org_id, DATE '1970-01-01' + hour / 24 AS day, sum(minutes_added)
        FROM written GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (org_id, day) DO UPDATE SET minutes = daily_usage.minutes + EXCLUDED.minutes
        RETURNING 1
    ), totalled AS (
        INSERT INTO period_usage AS p (minutes, first_day, org_id)
        SELECT sum(minutes_added),
               CAST(date_trunc('month', DATE '1970-01-01' + hour / 24) AS date), org_id
        FROM written GROUP BY 3, 2 ORDER BY 3, 2
        ON CONFLICT (org_id, first_day) DO UPDATE SET minutes = p.minutes + EXCLUDED.minutes
    ), seen AS (
        INSERT INTO instances AS i (instance_id, org_id, first_seen, last_seen, last_state)
        SELECT * FROM unnest(
            CAST(:seen_ids AS text[]), CAST(:seen_orgs AS text[]),
            CAST(:first_seen AS timestamptz[]), CAST(:last_seen AS timestamptz[]),
            CAST(:last_states AS text[])
        ) AS s(instance_id, org_id, first_seen, last_seen, last_state)
        ORDER BY instance_id
        ON CONFLICT (instance_id) DO UPDATE
        SET first_seen = least(i.first_seen, EXCLUDED.first_seen),
            last_state = CASE WHEN EXCLUDED.last_seen >= i.last_seen
                              THEN EXCLUDED.last_state ELSE i.last_state END,
            last_seen = greatest(i.last_seen, EXCLUDED.last_seen)
    )
    SELECT (SELECT coalesce(sum(minutes_added), 0) FROM written) AS new_minutes,
           (SELECT count(*) FROM rolled) AS days
    """
)
# The instances of a batch already known, and their org: one array instead of a bound
# parameter per id (a 1,000-id IN list is a new query text for the driver to parse each time).
_PG_OWNERS = text(
    "SELECT i.instance_id, i.org_id FROM unnest(CAST(:ids AS text[])) AS w(instance_id)"
    " JOIN instances AS i ON i.instance_id = w.instance_id"
)
# Attempts at a batch whose month had no partition (the first creates it).
_INGEST_ATTEMPTS = 2


def period_minutes_query(org_id: str, period: BillingPeriod) -> Select[Any]:
    """An org's billed minutes in a period, summed from its daily rollups."""
    return select(func.coalesce(func.sum(daily_usage.c.minutes), 0)).where(
        daily_usage.c.org_id == org_id,
        daily_usage.c.day >= period.first_day,
        daily_usage.c.day < period.end_day,
    )


def _raw_daily_query(org_id: str, period: BillingPeriod | None = None) -> Select[Any]:
    """An org's raw minutes counted per UTC day (epoch day), over a period or all time."""
    u = usage_hours.c
    day_expr = u.hour // 24
    query = select(
        day_expr.label("epoch_day"), func.sum(minute_count(u.minute_mask)).label("minutes")
    ).where(u.org_id == org_id)
    if period is not None:
        query = query.where(*_hours_of(period))
    return query.group_by(day_expr)


def _hours_of(period: BillingPeriod) -> tuple[Any, ...]:
    return (
        usage_hours.c.hour >= period.start_minute // MINUTES_PER_HOUR,
        usage_hours.c.hour < period.end_minute // MINUTES_PER_HOUR,
    )


def hourly_minutes(
    orgs_and_days: Any, *, first_minute: int, end_minute: int
) -> Select[Any]:
    """(org_id, hour, minutes) of the raw instance-hours of the (org_id, epoch_day) rows of
    `orgs_and_days` (a selectable), within [first_minute, end_minute) rounded to whole hours:
    what the usage meter reports per hour. Published for the meter outbox, so that it does not
    depend on how usage is stored."""
    u = usage_hours.c
    return (
        select(
            u.org_id,
            u.hour.label("hour"),
            func.sum(minute_count(u.minute_mask)).label("minutes"),
        )
        .join(
            orgs_and_days,
            and_(
                orgs_and_days.c.org_id == u.org_id,
                u.hour >= orgs_and_days.c.epoch_day * 24,
                u.hour < (orgs_and_days.c.epoch_day + 1) * 24,
            ),
        )
        .where(
            u.hour >= first_minute // MINUTES_PER_HOUR,
            u.hour < end_minute // MINUTES_PER_HOUR,
        )
        .group_by(u.org_id, u.hour)
    )


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
        planned: list[tuple[HourMask, ...]] = []

        def work(conn: Connection) -> tuple[BatchPlan, IngestOutcome]:
            owners: dict[str, str] = {}
            if wanted:
                rows = conn.execute(
                    _PG_OWNERS.bindparams(ids=array_literal(wanted)) if self.db.is_postgres
                    else select(instances.c.instance_id, instances.c.org_id).where(
                        instances.c.instance_id.in_(wanted)
                    )
                )
                owners = {iid: org for iid, org in rows.all()}  # fetched at once, not row by row
            plan = make_plan(owners)
            if not plan.slots:
                return plan, IngestOutcome(0, 0)
            masks = hour_masks(plan.slots)
            planned.append(masks)
            if self.db.is_postgres:
                sightings = plan.sightings
                row = conn.execute(
                    _PG_INGEST,
                    {
                        "org_ids": array_literal([m.org_id for m in masks]),
                        "instance_ids": array_literal([m.instance_id for m in masks]),
                        "hours": array_literal([m.hour for m in masks]),
                        "masks": array_literal([m.minute_mask for m in masks]),
                        "seen_ids": array_literal([s.instance_id for s in sightings]),
                        "seen_orgs": array_literal([s.org_id for s in sightings]),
                        "first_seen": array_literal([s.first_seen for s in sightings]),
                        "last_seen": array_literal([s.last_seen for s in sightings]),
                        "last_states": array_literal([s.last_state.value for s in sightings]),
                    },
                ).one()
                return plan, IngestOutcome(int(row.new_minutes), int(row.days))
            outcome = self._ingest_generic(conn, masks)
            self._record_sightings(conn, plan)
            return plan, outcome

        for attempt in range(1, _INGEST_ATTEMPTS + 1):
            try:
                return self._run(work, write=True)
            except IntegrityError as exc:
                # A month without its partition (housekeeping creates them ahead; this is the
                # safety net): create it, then store the batch.
                if not is_missing_partition(exc) or attempt == _INGEST_ATTEMPTS:
                    raise
                self._create_partitions(periods_of_hours(m.hour for m in planned[-1]))
        raise AssertionError("unreachable")

    def _create_partitions(self, months: list[BillingPeriod]) -> None:
        self._run(lambda conn: create_partitions(conn, months), write=True)

    def _ingest_generic(self, conn: Connection, masks: Sequence[HourMask]) -> IngestOutcome:
        """SQLite: the same upsert through SQLAlchemy, the rollups from what it returns."""
        u = usage_hours.c
        per_day: Counter[tuple[str, date]] = Counter()
        for chunk in _chunks(masks, 1000):
            stmt = self._insert(usage_hours).values(
                [
                    {
                        "minute_mask": m.minute_mask,
                        "hour": m.hour,
                        "minutes_added": m.minutes,
                        "org_id": m.org_id,
                        "instance_id": m.instance_id,
                    }
                    for m in chunk
                ]
            )
            new_bits = stmt.excluded.minute_mask.bitwise_and(u.minute_mask.bitwise_not())
            stmt = stmt.on_conflict_do_update(
                index_elements=[u.org_id, u.instance_id, u.hour],
                set_={
                    "minute_mask": u.minute_mask.bitwise_or(stmt.excluded.minute_mask),
                    "minutes_added": minute_count(new_bits),
                },
                where=new_bits != 0,
            ).returning(u.org_id, u.hour, u.minutes_added)
            for row in conn.execute(stmt):
                per_day[(row.org_id, day_of_minute(row.hour * MINUTES_PER_HOUR))] += int(
                    row.minutes_added
                )
        if per_day:
            per_period: Counter[tuple[str, date]] = Counter()
            for (o, d), n in per_day.items():
                per_period[(o, d.replace(day=1))] += n
            self._add_minutes(conn, daily_usage, "day", per_day)
            self._add_minutes(conn, period_usage, "first_day", per_period)
        return IngestOutcome(sum(per_day.values()), len(per_day))

    def _add_minutes(self, conn: Connection, table: Table, day_column: str,
                     minutes: Counter[tuple[str, date]]) -> None:
        """Add minutes to a rollup keyed on (org_id, `day_column`), in key order."""
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.org_id, table.c[day_column]],
            set_={"minutes": table.c.minutes + stmt.excluded.minutes},
        )
        conn.execute(stmt, [{"org_id": o, day_column: d, "minutes": n}
                            for (o, d), n in sorted(minutes.items())])

    def _record_sightings(self, conn: Connection, plan: BatchPlan) -> None:
        """SQLite: the last-seen records, one statement per instance (PostgreSQL folds them
        into `_PG_INGEST`)."""
        if not plan.sightings:
            return
        stmt = self._insert(instances)
        stmt = stmt.on_conflict_do_update(
            index_elements=[instances.c.instance_id],
            set_={
                "first_seen": func.min(instances.c.first_seen, stmt.excluded.first_seen),
                "last_state": case(
                    (stmt.excluded.last_seen >= instances.c.last_seen, stmt.excluded.last_state),
                    else_=instances.c.last_state,
                ),
                "last_seen": func.max(instances.c.last_seen, stmt.excluded.last_seen),
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

    # -- refusals ---------------------------------------------------------------------------

    def record_refusals(self, hour: int, counts: Mapping[tuple[str, str], int]) -> None:
        """Add `counts` ((org_id, reason) -> heartbeats) to the tally of `hour`."""
        if not counts:
            return
        r = heartbeat_refusals.c
        stmt = self._insert(heartbeat_refusals)
        stmt = stmt.on_conflict_do_update(
            index_elements=[r.org_id, r.hour, r.reason],
            set_={"heartbeats": r.heartbeats + stmt.excluded.heartbeats},
        )
        rows = [{"org_id": org, "hour": hour, "reason": reason, "heartbeats": n}
                for (org, reason), n in sorted(counts.items())]
        self._run(lambda conn: conn.execute(stmt, rows), write=True)

    def forget_refusals(self, *, before_hour: int) -> int:
        """Drop the tally of the hours before `before_hour`; how many rows went."""
        stmt = heartbeat_refusals.delete().where(heartbeat_refusals.c.hour < before_hour)
        return int(self._run(lambda conn: conn.execute(stmt).rowcount, write=True) or 0)

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
        p = period_usage.c
        query = (
            select(orgs.c.id, orgs.c.plan, p.minutes)
            .join(period_usage, p.org_id == orgs.c.id)
            .where(p.first_day == period.first_day, p.minutes > 0)
        )
        return [(r.id, r.plan, int(r.minutes)) for r in self._run(lambda c: c.execute(query))]

    def orgs_past_thresholds(self, period: BillingPeriod, catalog: PlanCatalog) -> dict[int, int]:
        """How many orgs have reached each budget threshold in `period`: counted in the
        database (the published `thresholds_reached` rule), three numbers back, whatever the
        number of orgs."""
        reached = thresholds_reached(period, catalog).subquery("reached")
        query = select(reached.c.threshold, func.count()).group_by(reached.c.threshold)
        counts = dict.fromkeys(BUDGET_THRESHOLDS, 0)
        for threshold, orgs_past in self._run(lambda c: c.execute(query).all()):
            counts[int(threshold)] = int(orgs_past)
        return counts

    def raw_daily_minutes(self, org_id: str, period: BillingPeriod) -> dict[date, int]:
        """Count an org's raw minutes per day (debug and repair only: this reads every
        instance-hour of the org in the period)."""
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

    def instance_minutes(self, org_id: str, instance_id: str, period: BillingPeriod) -> int:
        # A primary-key range read over one instance's hours: at most 744 rows a month.
        u = usage_hours.c
        query = select(func.coalesce(func.sum(minute_count(u.minute_mask)), 0)).where(
            u.org_id == org_id, u.instance_id == instance_id, *_hours_of(period)
        )
        return int(self._run(lambda c: c.execute(query).scalar_one()))

    # -- repair -----------------------------------------------------------------------------

    def rebuild_rollups(self, org_id: str, *, first_day: date) -> dict[date, int]:
        """Recompute an org's daily rollups from `first_day` on from its raw instance-hours,
        and its period totals from that month on; returns the new rollups. Days before
        `first_day` are left alone: their months are closed and invoiced, and their raw usage
        may be archived away."""
        first_hour = (first_day - EPOCH_DAY).days * 24

        def work(conn: Connection) -> dict[date, int]:
            if self.db.is_postgres:
                # Hold off concurrent ingest for this short repair so no increment is lost.
                conn.execute(text("LOCK TABLE usage_hours IN SHARE MODE"))
            rebuilt = _by_day(
                conn.execute(
                    _raw_daily_query(org_id).where(usage_hours.c.hour >= first_hour)
                ).all()
            )
            conn.execute(
                daily_usage.delete().where(
                    daily_usage.c.org_id == org_id, daily_usage.c.day >= first_day
                )
            )
            if rebuilt:
                conn.execute(
                    daily_usage.insert(),
                    [
                        {"org_id": org_id, "day": d, "minutes": n}
                        for d, n in sorted(rebuilt.items())
                    ],
                )
            self._total_periods(conn, org_id, first_day=first_day.replace(day=1))
            return rebuilt

        return self._run(work, write=True)

    @staticmethod
    def _total_periods(conn: Connection, org_id: str, *, first_day: date) -> None:
        """Set an org's period totals from `first_day` on to the sums of its daily rollups."""
        p = period_usage.c
        conn.execute(period_usage.delete().where(p.org_id == org_id, p.first_day >= first_day))
        days = conn.execute(
            select(daily_usage.c.day, daily_usage.c.minutes).where(
                daily_usage.c.org_id == org_id, daily_usage.c.day >= first_day
            )
        ).all()
        totals: Counter[date] = Counter()
        for row in days:
            totals[_as_date(row.day).replace(day=1)] += int(row.minutes)
        if totals:
            conn.execute(
                period_usage.insert(),
                [{"org_id": org_id, "first_day": d, "minutes": n}
                 for d, n in sorted(totals.items())],
            )

    # -- instances of an org, heaviest orgs (support views) -----------------------------------

    def org_instances(
        self, org_id: str, period: BillingPeriod, *, limit: int
    ) -> tuple[list[OrgInstance], int]:
        """An org's instances, most recently seen first, with their stored throttle state and
        minutes this period (one grouped range read over just these instances' hours)."""

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
                u = usage_hours.c
                counted = conn.execute(
                    select(u.instance_id, func.sum(minute_count(u.minute_mask)).label("n"))
                    .where(u.org_id == org_id, u.instance_id.in_(ids), *_hours_of(period))
                    .group_by(u.instance_id)
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
