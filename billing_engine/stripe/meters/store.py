"""Queries and writes of the usage-meter outbox.

Enqueueing is one set-based INSERT ... SELECT from the minutes per hour the usage store
publishes (`usage.store.hourly_minutes`); sending claims due records with a short lease so
replicas (and the admin flush) never send the same record at the same time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.sql.elements import ColumnElement

from billing_core.sql import utc, utc_or_none
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.stripe.meters.tables import meter_outbox
from billing_engine.usage.store import hourly_minutes
from billing_engine.usage.tables import daily_usage

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
REJECTED = "rejected"  # accepted, then reported by Stripe's asynchronous validation
EXPIRED = "expired"  # its hour left Stripe's timestamp window before it could be sent
CANCELED = "canceled"  # withdrawn: usage went down (Stripe's event cancelled, or never sent)
REQUEUEABLE = (FAILED, REJECTED)
MINUTES_PER_HOUR = 60
# The Julian day number of 1970-01-01 00:00 UTC.
_UNIX_EPOCH_JULIAN = 2440587.5


class HourBusy(Exception):
    """A record of the hour is being sent right now; nothing was changed."""


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    org_id: str
    hour: int  # hours since the epoch, UTC
    version: int
    identifier: str
    minutes: int
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status: int | None
    created_at: datetime
    sent_at: datetime | None
    # Claimed records: the org's Stripe customer now. Otherwise: the customer last sent for.
    stripe_customer_id: str | None
    generation: int = 0  # bumped by each requeue; part of the identifier Stripe sees

    @property
    def hour_start(self) -> datetime:
        return datetime.fromtimestamp(self.hour * 3600, UTC)


@dataclass(frozen=True)
class QueueStats:
    pending: int
    oldest_pending_created_at: datetime | None
    failed: int
    sent: int
    rejected: int = 0
    expired: int = 0
    oldest_pending_hour: int | None = None  # hours since the epoch


def _record(row: Any) -> OutboxRecord:
    return OutboxRecord(
        id=int(row.id),
        org_id=row.org_id,
        hour=int(row.hour),
        version=int(row.version),
        identifier=row.identifier,
        minutes=int(row.minutes),
        state=row.state,
        attempts=int(row.attempts),
        next_attempt_at=utc(row.next_attempt_at),
        last_error=row.last_error,
        last_status=row.last_status,
        created_at=utc(row.created_at),
        sent_at=utc_or_none(row.sent_at),
        stripe_customer_id=row.stripe_customer_id,
        generation=int(row.generation),
    )


def _these(records: Sequence[OutboxRecord]) -> ColumnElement[bool]:
    """The records by their key, the org and the id: by id alone a statement would not use the
    key's index (it leads with the org) and would reach every shard on Citus."""
    o = meter_outbox.c
    return and_(o.org_id.in_(sorted({r.org_id for r in records})),
                o.id.in_([r.id for r in records]))


class MeterStore(Store):
    # -- dialect pieces ---------------------------------------------------------------------

    def _epoch_day(self, day: Any) -> ColumnElement[int]:
        """A DATE column as days since 1970-01-01."""
        if self.db.is_postgres:
            return cast(day - func.date("1970-01-01"), Integer)
        return cast(func.julianday(day) - _UNIX_EPOCH_JULIAN, Integer)

    def _hour_label(self, hour: Any) -> ColumnElement[str]:
        """An epoch hour as YYYYMMDDHH (UTC), the readable part of a record's identifier."""
        if self.db.is_postgres:
            return func.to_char(
                func.timezone("UTC", func.to_timestamp(hour * 3600)), "YYYYMMDDHH24"
            )
        return func.strftime("%Y%m%d%H", hour * 3600, "unixepoch")

    # -- enqueue ----------------------------------------------------------------------------

    def enqueue_closed_hours(
        self,
        *,
        window_start_minute: int,
        closed_before_minute: int,
        now: datetime,
        identifier_prefix: str = "usage",
    ) -> int:
        """Add a record for every (linked org, closed hour) whose minutes exceed what the outbox
        already holds for it: version 1 for an hour never reported, a correction (the
        difference only) for an hour that gained late minutes. One statement; running it again
        adds nothing. Returns the records added.

        Only days whose rollup differs from the outbox's total are read from the raw
        instance-hours, so a run costs about one day of them per active org, not the whole
        period."""
        if closed_before_minute <= window_start_minute:
            return 0
        first_hour = window_start_minute // MINUTES_PER_HOUR
        first_day = datetime.fromtimestamp(window_start_minute * 60, UTC).date()
        last_day = datetime.fromtimestamp((closed_before_minute - 1) * 60, UTC).date()
        o = meter_outbox.c

        # Each grouped expression is built once: PostgreSQL matches GROUP BY to the select list
        # by expression, and two copies would carry two different bound parameters.
        day_of_hour = o.hour // 24
        reported_days = (
            select(o.org_id, day_of_hour.label("epoch_day"), func.sum(o.minutes).label("minutes"))
            .where(o.hour >= first_hour, o.state != CANCELED)
            .group_by(o.org_id, day_of_hour)
            .cte("reported_days")
        )
        day_number = self._epoch_day(daily_usage.c.day)
        candidates = (
            select(daily_usage.c.org_id, day_number.label("epoch_day"))
            .join(orgs, and_(orgs.c.id == daily_usage.c.org_id,
                             orgs.c.stripe_customer_id.is_not(None)))
            .outerjoin(
                reported_days,
                and_(
                    reported_days.c.org_id == daily_usage.c.org_id,
                    reported_days.c.epoch_day == day_number,
                ),
            )
            .where(
                daily_usage.c.day >= first_day,
                daily_usage.c.day <= last_day,
                daily_usage.c.minutes > func.coalesce(reported_days.c.minutes, 0),
            )
            .cte("candidates")
        )
        closed_hours = hourly_minutes(
            candidates, first_minute=window_start_minute, end_minute=closed_before_minute
        ).cte("closed_hours")
        reported = (
            select(
                o.org_id,
                o.hour,
                func.max(o.version).label("version"),
                # Withdrawn records keep their version (identifiers stay unique), not their
                # minutes.
                func.sum(case((o.state == CANCELED, 0), else_=o.minutes)).label("minutes"),
            )
            .where(o.hour >= first_hour)
            .group_by(o.org_id, o.hour)
            .cte("reported")
        )
        version = func.coalesce(reported.c.version, 0) + 1
        identifier = (
            literal(f"{identifier_prefix}-", String)
            + closed_hours.c.org_id
            + literal("-", String)
            + self._hour_label(closed_hours.c.hour)
            + literal("-v", String)
            + cast(version, String)
        )
        rows = (
            select(
                closed_hours.c.org_id,
                closed_hours.c.hour,
                version,
                identifier,
                closed_hours.c.minutes - func.coalesce(reported.c.minutes, 0),
                literal(PENDING, String),
                literal(0, Integer),
                literal(now, meter_outbox.c.next_attempt_at.type),
                literal(now, meter_outbox.c.created_at.type),
            )
            .select_from(closed_hours)
            .outerjoin(
                reported,
                and_(
                    reported.c.org_id == closed_hours.c.org_id,
                    reported.c.hour == closed_hours.c.hour,
                ),
            )
            .where(closed_hours.c.minutes > func.coalesce(reported.c.minutes, 0))
            .order_by(closed_hours.c.hour, closed_hours.c.org_id)
        )
        stmt = (
            self._insert(meter_outbox)
            .from_select(
                [
                    "org_id",
                    "hour",
                    "version",
                    "identifier",
                    "minutes",
                    "state",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                ],
                rows,
            )
            .on_conflict_do_nothing()
            .returning(meter_outbox.c.id)
        )
        # Counted from RETURNING: sqlite3 reports no rowcount for a statement opening with WITH.
        return len(self._run(lambda c: c.execute(stmt).all(), write=True))

    # -- usage that went down ---------------------------------------------------------------

    def over_reported_hours(
        self, *, window_start_minute: int, closed_before_minute: int
    ) -> list[tuple[str, int, int]]:
        """(org_id, hour, minutes held now) of every closed hour whose records (pending or
        sent) add up to more minutes than the engine holds for it now: usage that went down."""
        if closed_before_minute <= window_start_minute:
            return []
        o = meter_outbox.c
        first_hour = window_start_minute // MINUTES_PER_HOUR
        end_hour = closed_before_minute // MINUTES_PER_HOUR
        live = o.state.in_((PENDING, SENT))
        reported = (
            select(o.org_id, o.hour, func.sum(o.minutes).label("minutes"))
            .where(o.hour >= first_hour, o.hour < end_hour, live)
            .group_by(o.org_id, o.hour)
            .cte("reported_hours")
        )
        days = (
            select(reported.c.org_id, (reported.c.hour // 24).label("epoch_day"))
            .distinct()
            .cte("reported_days")
        )
        held = hourly_minutes(
            days, first_minute=window_start_minute, end_minute=closed_before_minute
        ).cte("held")
        query = (
            select(reported.c.org_id, reported.c.hour,
                   func.coalesce(held.c.minutes, 0).label("held"))
            .select_from(reported)
            .outerjoin(held, and_(held.c.org_id == reported.c.org_id,
                                  held.c.hour == reported.c.hour))
            .where(reported.c.minutes > func.coalesce(held.c.minutes, 0))
            .order_by(reported.c.hour, reported.c.org_id)
        )
        rows = self._run(lambda c: c.execute(query).all())
        return [(r.org_id, int(r.hour), int(r.held)) for r in rows]

    def live_records_of_hour(self, org_id: str, hour: int) -> list[OutboxRecord]:
        o = meter_outbox.c
        query = (
            select(meter_outbox)
            .where(o.org_id == org_id, o.hour == hour, o.state.in_((PENDING, SENT)))
            .order_by(o.version)
        )
        return [_record(r) for r in self._run(lambda c: c.execute(query).all())]

    def replace_hour(
        self, org_id: str, hour: int, *, withdrawn: Iterable[int], minutes: int, now: datetime,
        reason: str,
    ) -> int | None:
        """Withdraw an hour's records and, when minutes remain, queue the hour's new total as
        the next version: one transaction. Returns the new record's id."""
        ids = list(withdrawn)
        o = meter_outbox.c

        def work(conn: Connection) -> int | None:
            free = or_(o.claimed_until.is_(None), o.claimed_until <= now)
            withdrawn_now = conn.execute(
                meter_outbox.update()
                .where(o.org_id == org_id, o.id.in_(ids), o.state.in_((PENDING, SENT)), free)
                .values(state=CANCELED, last_error=reason[:500], claimed_until=None)
            ).rowcount
            if withdrawn_now != len(ids):
                raise HourBusy()  # a sender holds one of them: the next round tries again
            if minutes <= 0:
                return None
            top = conn.execute(
                select(func.max(o.version), func.min(o.identifier))
                .where(o.org_id == org_id, o.hour == hour)
            ).one()
            version = int(top[0] or 0) + 1
            label = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")
            new_id = conn.execute(
                meter_outbox.insert()
                .values(org_id=org_id, hour=hour, version=version,
                        identifier=f"usage-{org_id}-{label}-v{version}", minutes=minutes,
                        state=PENDING, attempts=0, next_attempt_at=now, created_at=now)
                .returning(o.id)
            ).scalar_one()
            return int(new_id)

        result: int | None = self._run(work, write=True)  # HourBusy: nothing changed
        return result

    # -- sending ----------------------------------------------------------------------------

    def claim_due(
        self, *, now: datetime, due_before: datetime, limit: int, lease_until: datetime
    ) -> list[OutboxRecord]:
        """Take up to `limit` pending records due before `due_before` that no sender holds,
        oldest first, and hold them until `lease_until`. Each comes with the org's Stripe
        customer id as it is now."""
        o = meter_outbox.c
        free = or_(o.claimed_until.is_(None), o.claimed_until <= now)

        due = (
            select(o.org_id, o.id)
            .where(o.state == PENDING, o.next_attempt_at <= due_before, free)
            .order_by(o.next_attempt_at, o.hour, o.id)
            .limit(limit)
        )
        if self.db.is_postgres:
            due = due.with_for_update(skip_locked=True)
        # A CTE, evaluated once: as a plain IN (subquery) PostgreSQL may run the subquery again
        # for a semi-join, and with SKIP LOCKED each run picks other rows (a limit of 1 claimed
        # two).
        due_cte = due.cte("due")
        if self.db.is_postgres:
            due_cte = due_cte.prefix_with("MATERIALIZED")
        # The org's customer now is who this attempt goes to: noted with the claim.
        customer_now = (
            select(orgs.c.stripe_customer_id).where(orgs.c.id == o.org_id).scalar_subquery()
        )
        # One statement: rows another sender holds are skipped (SKIP LOCKED), and the
        # conditions are checked again on the rows themselves, so a concurrent sender that got
        # there first wins the row.
        claim = (
            meter_outbox.update()
            .where(tuple_(o.org_id, o.id).in_(select(due_cte.c.org_id, due_cte.c.id)),
                   o.state == PENDING, free)
            .values(claimed_until=lease_until, stripe_customer_id=customer_now)
            .returning(*meter_outbox.c)
        )

        def work(conn: Connection) -> list[OutboxRecord]:
            rows = conn.execute(claim).all()
            records = [_record(r) for r in rows]
            records.sort(key=lambda r: (r.next_attempt_at, r.hour, r.id))
            return records

        records: list[OutboxRecord] = self._run(work, write=True)
        return records

    def mark_sent(self, record: OutboxRecord, *, now: datetime, customer: str,
                  status: int) -> None:
        stmt = (
            meter_outbox.update()
            .where(_these([record]))
            .values(
                state=SENT,
                sent_at=now,
                attempts=meter_outbox.c.attempts + 1,
                last_status=status,
                last_error=None,
                stripe_customer_id=customer,
                claimed_until=None,
            )
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def mark_retry(
        self,
        record: OutboxRecord,
        *,
        next_attempt_at: datetime,
        error: str,
        status: int | None,
        customer: str | None,
    ) -> None:
        stmt = (
            meter_outbox.update()
            .where(_these([record]))
            .values(
                attempts=meter_outbox.c.attempts + 1,
                next_attempt_at=next_attempt_at,
                last_error=error[:500],
                last_status=status,
                stripe_customer_id=customer,
                claimed_until=None,
            )
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def mark_failed(
        self, record: OutboxRecord, *, error: str, status: int | None, customer: str | None
    ) -> None:
        stmt = (
            meter_outbox.update()
            .where(_these([record]))
            .values(
                state=FAILED,
                attempts=meter_outbox.c.attempts + 1,
                last_error=error[:500],
                last_status=status,
                stripe_customer_id=customer,
                claimed_until=None,
            )
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def mark_sent_many(self, records: Sequence[OutboxRecord], *, now: datetime,
                       status: int) -> None:
        """Claimed records Stripe accepted in one request (their customer was set at claim)."""
        if not records:
            return
        o = meter_outbox.c
        stmt = (
            meter_outbox.update()
            .where(_these(records))
            .values(state=SENT, sent_at=now, attempts=o.attempts + 1, last_status=status,
                    last_error=None, claimed_until=None)
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def mark_expired(self, records: Sequence[OutboxRecord], *, error: str) -> None:
        """Claimed records whose hour left Stripe's window: kept, never sent."""
        if not records:
            return
        stmt = (
            meter_outbox.update()
            .where(_these(records))
            .values(state=EXPIRED, last_error=error[:500], claimed_until=None)
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def mark_rejected(self, identifiers: Iterable[str], *, reason: str) -> int:
        """Sent records Stripe's asynchronous validation reported: not billed. Returns how many
        changed (a report delivered twice changes nothing the second time)."""
        names = list(identifiers)
        if not names:
            return 0
        o = meter_outbox.c
        stmt = (
            meter_outbox.update()
            .where(o.identifier.in_(names), o.state == SENT)
            .values(state=REJECTED, last_error=reason[:500])
        )
        return int(self._run(lambda c: c.execute(stmt).rowcount, write=True))

    def mark_rejected_for_customer(
        self, customer: str, *, sent_from: datetime, sent_to: datetime, reason: str
    ) -> int:
        """Every record sent to `customer` in a window: an error about the customer itself
        (unknown, or none mapped) holds for all of them, not only for the samples Stripe
        names."""
        o = meter_outbox.c
        stmt = (
            meter_outbox.update()
            .where(o.stripe_customer_id == customer, o.state == SENT,
                   o.sent_at >= sent_from, o.sent_at <= sent_to)
            .values(state=REJECTED, last_error=reason[:500])
        )
        return int(self._run(lambda c: c.execute(stmt).rowcount, write=True))

    def by_identifiers(self, identifiers: Iterable[str]) -> list[OutboxRecord]:
        names = list(identifiers)
        if not names:
            return []
        query = select(meter_outbox).where(meter_outbox.c.identifier.in_(names))
        return [_record(r) for r in self._run(lambda c: c.execute(query).all())]

    def release(self, records: Sequence[OutboxRecord], *, next_attempt_at: datetime) -> None:
        """Give back claimed records that were not attempted, due again at `next_attempt_at`."""
        if not records:
            return
        stmt = (
            meter_outbox.update()
            .where(_these(records), meter_outbox.c.state == PENDING)
            .values(next_attempt_at=next_attempt_at, claimed_until=None)
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def make_due(self, *, now: datetime) -> int:
        """Pending records waiting out a backoff become due now (an admin's forced flush)."""
        o = meter_outbox.c
        stmt = (
            meter_outbox.update()
            .where(
                o.state == PENDING,
                o.next_attempt_at > now,
                or_(o.claimed_until.is_(None), o.claimed_until <= now),
            )
            .values(next_attempt_at=now)
        )
        return int(self._run(lambda c: c.execute(stmt).rowcount, write=True))

    def requeue_failed(self, *, now: datetime, org_id: str | None = None) -> int:
        """Records Stripe refused or rejected become pending again, due now (after their cause
        was repaired), each in a new generation: a new identifier for Stripe."""
        o = meter_outbox.c
        stmt = (
            meter_outbox.update()
            .where(o.state.in_(REQUEUEABLE))
            .values(state=PENDING, next_attempt_at=now, claimed_until=None,
                    generation=o.generation + 1)
        )
        if org_id is not None:
            stmt = stmt.where(meter_outbox.c.org_id == org_id)
        return int(self._run(lambda c: c.execute(stmt).rowcount, write=True))

    # -- reads ------------------------------------------------------------------------------

    def stats(self) -> QueueStats:
        o = meter_outbox.c
        query = select(
            o.state,
            func.count().label("n"),
            func.min(o.created_at).label("oldest"),
            func.min(o.hour).label("oldest_hour"),
        ).group_by(o.state)

        def work(conn: Connection) -> QueueStats:
            by_state = {r.state: r for r in conn.execute(query)}
            pending = by_state.get(PENDING)

            def count(state: str) -> int:
                return int(by_state[state].n) if state in by_state else 0

            return QueueStats(
                pending=count(PENDING),
                oldest_pending_created_at=utc_or_none(pending.oldest) if pending else None,
                failed=count(FAILED),
                sent=count(SENT),
                rejected=count(REJECTED),
                expired=count(EXPIRED),
                oldest_pending_hour=int(pending.oldest_hour) if pending else None,
            )

        result: QueueStats = self._run(work)
        return result

    def oldest(self, state: str, *, limit: int) -> list[OutboxRecord]:
        o = meter_outbox.c
        query = (
            select(meter_outbox)
            .where(o.state == state)
            .order_by(o.created_at, o.id)
            .limit(limit)
        )
        return [_record(r) for r in self._run(lambda c: c.execute(query).all())]

    def records_for(self, org_id: str) -> list[OutboxRecord]:
        o = meter_outbox.c
        query = select(meter_outbox).where(o.org_id == org_id).order_by(o.hour, o.version)
        return [_record(r) for r in self._run(lambda c: c.execute(query).all())]
