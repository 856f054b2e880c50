"""Queries and writes. Every statement is parameterised; the ingest path is one transaction."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, case, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from billing_core.periods import BillingPeriod, day_of_minute
from billing_engine.db.database import Database, DatabaseUnavailable
from billing_engine.db.schema import (
    daily_counter_resets,
    daily_usage,
    instance_throttle,
    instances,
    metadata,
    orgs,
    usage_slots,
)
from billing_engine.throttling.rules import InstanceActivity
from billing_engine.usage.rules import BatchPlan

T = TypeVar("T")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


@dataclass(frozen=True)
class OrgRecord:
    id: str
    name: str
    billing_email: str
    plan: str
    stripe_customer_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    org_id: str
    first_seen: datetime
    last_seen: datetime
    last_state: str


@dataclass(frozen=True)
class ThrottleRecord:
    instance_id: str
    org_id: str
    activity: InstanceActivity
    paused_reason: str | None
    paused_since: datetime | None
    checked_at: datetime


@dataclass(frozen=True)
class IngestOutcome:
    new_slots: int
    days_touched: int


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _throttle(row: Any) -> ThrottleRecord:
    return ThrottleRecord(
        instance_id=row.instance_id,
        org_id=row.org_id,
        activity=InstanceActivity(
            run_started_at=_utc_or_none(row.run_started_at),
            last_running_at=_utc_or_none(row.last_running_at),
            idle_since=_utc_or_none(row.idle_since),
            last_seen=_utc_or_none(row.last_seen),
        ),
        paused_reason=row.paused_reason,
        paused_since=_utc_or_none(row.paused_since),
        checked_at=_utc(row.checked_at),
    )


def _org(row: Any) -> OrgRecord:
    return OrgRecord(
        id=row.id,
        name=row.name,
        billing_email=row.billing_email,
        plan=row.plan,
        stripe_customer_id=row.stripe_customer_id,
        created_at=_utc(row.created_at),
    )


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


def _period_minutes_query(org_id: str, period: BillingPeriod) -> Select[Any]:
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


class Repository:
    def __init__(self, database: Database) -> None:
        self.db = database
        self._insert = postgresql.insert if database.is_postgres else sqlite.insert

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        attempts = 5 if write else 1
        for attempt in range(1, attempts + 1):
            try:
                with self.db.engine.begin() as conn:
                    return work(conn)
            except DBAPIError as exc:
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if sqlstate in _RETRYABLE_SQLSTATES and attempt < attempts:
                    time.sleep(0.01 * attempt)
                    continue
                if isinstance(exc, OperationalError) or exc.connection_invalidated:
                    raise DatabaseUnavailable(str(exc.orig).strip().splitlines()[0]) from exc
                raise
            except TimeoutError as exc:  # pool exhausted: treat as unavailable, nothing written
                raise DatabaseUnavailable("no database connection available") from exc
        raise AssertionError("unreachable")

    def ping(self) -> None:
        self._run(lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    # -- orgs -------------------------------------------------------------------------------

    def upsert_org(
        self, *, org_id: str, name: str, billing_email: str, plan: str, now: datetime
    ) -> tuple[OrgRecord, bool]:
        def work(conn: Connection) -> tuple[OrgRecord, bool]:
            existing = conn.execute(select(orgs.c.id).where(orgs.c.id == org_id)).first()
            if existing is None:
                conn.execute(
                    orgs.insert().values(
                        id=org_id,
                        name=name,
                        billing_email=billing_email,
                        plan=plan,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    orgs.update()
                    .where(orgs.c.id == org_id)
                    .values(name=name, billing_email=billing_email, plan=plan, updated_at=now)
                )
            row = conn.execute(select(orgs).where(orgs.c.id == org_id)).one()
            return _org(row), existing is None

        return self._run(work, write=True)

    def get_org(self, org_id: str) -> OrgRecord | None:
        row = self._run(lambda c: c.execute(select(orgs).where(orgs.c.id == org_id)).first())
        return None if row is None else _org(row)

    def get_orgs(self, org_ids: Iterable[str]) -> dict[str, OrgRecord]:
        wanted = sorted(set(org_ids))
        if not wanted:
            return {}
        query = select(orgs).where(orgs.c.id.in_(wanted))
        return {r.id: _org(r) for r in self._run(lambda c: c.execute(query).all())}

    def existing_org_ids(self, org_ids: Iterable[str]) -> set[str]:
        wanted = list(set(org_ids))
        if not wanted:
            return set()
        rows = self._run(lambda c: c.execute(select(orgs.c.id).where(orgs.c.id.in_(wanted))).all())
        return {r.id for r in rows}

    def search_orgs(self, query: str, *, limit: int, offset: int) -> tuple[list[OrgRecord], int]:
        needle = query.strip().lower()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        condition = or_(
            func.lower(orgs.c.id).like(escaped, escape="\\"),
            func.lower(orgs.c.name).like(escaped, escape="\\"),
            func.lower(orgs.c.billing_email).like(escaped, escape="\\"),
        )

        def work(conn: Connection) -> tuple[list[OrgRecord], int]:
            total = conn.execute(select(func.count()).select_from(orgs).where(condition)).scalar()
            rows = conn.execute(
                select(orgs)
                .where(condition)
                .order_by(orgs.c.name, orgs.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_org(r) for r in rows], int(total or 0)

        return self._run(work)

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

    def org_with_period_minutes(
        self, org_id: str, period: BillingPeriod
    ) -> tuple[OrgRecord | None, int]:
        """The org and its minutes this period, in one round trip to the pool."""
        minutes = _period_minutes_query(org_id, period)

        def work(conn: Connection) -> tuple[OrgRecord | None, int]:
            row = conn.execute(select(orgs).where(orgs.c.id == org_id)).first()
            if row is None:
                return None, 0
            return _org(row), int(conn.execute(minutes).scalar_one())

        return self._run(work)

    def period_minutes(self, org_id: str, period: BillingPeriod) -> int:
        query = _period_minutes_query(org_id, period)
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
        return None if value is None else _utc(value)

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
            first_seen=_utc(row.first_seen),
            last_seen=_utc(row.last_seen),
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

    # -- throttling -------------------------------------------------------------------------

    def throttle_inputs(
        self, instance_ids: Iterable[str], org_ids: Iterable[str], *, day: date
    ) -> tuple[dict[str, ThrottleRecord], dict[str, int]]:
        """Stored throttle state of these instances, and each org's throttle minutes on `day`
        (its usage that day less any admin reset), in one transaction."""
        wanted = sorted(set(instance_ids))
        org_list = sorted(set(org_ids))

        def work(conn: Connection) -> tuple[dict[str, ThrottleRecord], dict[str, int]]:
            states: dict[str, ThrottleRecord] = {}
            if wanted:
                rows = conn.execute(
                    select(instance_throttle).where(instance_throttle.c.instance_id.in_(wanted))
                )
                states = {r.instance_id: _throttle(r) for r in rows}
            minutes: dict[str, int] = dict.fromkeys(org_list, 0)
            if org_list:
                query = (
                    select(
                        daily_usage.c.org_id,
                        daily_usage.c.minutes,
                        func.coalesce(daily_counter_resets.c.offset_minutes, 0).label("offset"),
                    )
                    .select_from(
                        daily_usage.outerjoin(
                            daily_counter_resets,
                            (daily_counter_resets.c.org_id == daily_usage.c.org_id)
                            & (daily_counter_resets.c.day == daily_usage.c.day),
                        )
                    )
                    .where(daily_usage.c.org_id.in_(org_list), daily_usage.c.day == day)
                )
                for r in conn.execute(query):
                    minutes[r.org_id] = max(0, int(r.minutes) - int(r.offset))
            return states, minutes

        return self._run(work)

    def get_throttle(self, instance_id: str) -> ThrottleRecord | None:
        row = self._run(
            lambda c: c.execute(
                select(instance_throttle).where(instance_throttle.c.instance_id == instance_id)
            ).first()
        )
        return None if row is None else _throttle(row)

    def save_throttle(self, records: Iterable[ThrottleRecord]) -> None:
        values = [
            {
                "instance_id": r.instance_id,
                "org_id": r.org_id,
                "run_started_at": r.activity.run_started_at,
                "last_running_at": r.activity.last_running_at,
                "idle_since": r.activity.idle_since,
                "last_seen": r.activity.last_seen,
                "paused_reason": r.paused_reason,
                "paused_since": r.paused_since,
                "checked_at": r.checked_at,
            }
            for r in sorted(records, key=lambda r: r.instance_id)
        ]
        if not values:
            return
        stmt = self._insert(instance_throttle)
        stmt = stmt.on_conflict_do_update(
            index_elements=[instance_throttle.c.instance_id],
            set_={k: stmt.excluded[k] for k in values[0] if k != "instance_id"},
        )
        self._run(lambda c: c.execute(stmt, values), write=True)

    def reset_daily_counter(self, org_id: str, *, day: date, now: datetime) -> tuple[int, int]:
        """Start the org's daily throttle counter again from zero; returns (usage minutes that
        day, which stay billed, and the new offset). Clears daily-cap pauses of its instances."""

        def work(conn: Connection) -> tuple[int, int]:
            used = conn.execute(
                select(func.coalesce(func.sum(daily_usage.c.minutes), 0)).where(
                    daily_usage.c.org_id == org_id, daily_usage.c.day == day
                )
            ).scalar_one()
            stmt = self._insert(daily_counter_resets).values(
                org_id=org_id, day=day, offset_minutes=int(used), reset_at=now
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[daily_counter_resets.c.org_id, daily_counter_resets.c.day],
                    set_={"offset_minutes": stmt.excluded.offset_minutes, "reset_at": now},
                )
            )
            conn.execute(
                instance_throttle.update()
                .where(
                    instance_throttle.c.org_id == org_id,
                    instance_throttle.c.paused_reason == "daily_cap",
                )
                .values(paused_reason=None, paused_since=None)
            )
            return int(used), int(used)

        return self._run(work, write=True)

    def count_paused_still_seen(self, *, seen_since: datetime) -> int:
        """Instances told to pause that still sent a heartbeat since `seen_since`."""
        query = select(func.count()).where(
            instance_throttle.c.paused_reason.is_not(None),
            instance_throttle.c.last_seen >= seen_since,
        )
        return int(self._run(lambda c: c.execute(query).scalar_one()))

    def delete_everything_for_tests(self) -> None:  # pragma: no cover - used by fixtures only
        def work(conn: Connection) -> None:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())

        self._run(work, write=True)


def day_range(days: int, *, today: date) -> tuple[date, date]:
    """The last `days` UTC days ending today, as [first, end)."""
    return today - timedelta(days=days - 1), today + timedelta(days=1)
