"""Claims of housekeeping job slots: which replica runs a periodic job in each slot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from billing_core.sql import utc
from billing_engine.db.database import Store
from billing_engine.operability.tables import housekeeping_runs

# Claims older than this are deleted by the claim that finds them (a handful of rows a day).
CLAIMS_KEPT = timedelta(days=7)


@dataclass(frozen=True)
class JobRun:
    job: str
    slot: int
    claimed_by: str
    claimed_at: datetime
    finished_at: datetime | None
    outcome: str | None


class JobClaimStore(Store):
    def claim(self, job: str, slot: int, *, replica: str, now: datetime) -> bool:
        """True if this replica holds (job, slot): it inserted the row now or earlier. Any
        other replica's row means someone else runs this slot."""
        runs = housekeeping_runs.c

        def work(conn: Connection) -> bool:
            inserted = conn.execute(
                self._insert(housekeeping_runs)
                .values(job=job, slot=slot, claimed_by=replica, claimed_at=now)
                .on_conflict_do_nothing()
                .returning(runs.slot)
            ).first()
            if inserted is not None:
                return True
            holder = conn.execute(
                select(runs.claimed_by).where(runs.job == job, runs.slot == slot)
            ).scalar()
            return bool(holder == replica)

        return self._run(work, write=True)

    def finish(self, job: str, slot: int, *, outcome: str, seconds: float, now: datetime,
               replica: str) -> None:
        runs = housekeeping_runs.c
        self._run(
            lambda conn: conn.execute(
                housekeeping_runs.update()
                .where(runs.job == job, runs.slot == slot, runs.claimed_by == replica)
                .values(finished_at=now, outcome=outcome, seconds=seconds)
            ),
            write=True,
        )

    def forget_before(self, cutoff: datetime) -> int:
        stmt = housekeeping_runs.delete().where(housekeeping_runs.c.claimed_at < cutoff)
        return int(self._run(lambda conn: conn.execute(stmt).rowcount, write=True))

    def last_success(self) -> dict[str, datetime]:
        """Each job's newest successful finish, whichever replica ran it."""
        runs = housekeeping_runs.c
        query = (
            select(runs.job, func.max(runs.finished_at).label("finished_at"))
            .where(runs.outcome == "ok")
            .group_by(runs.job)
        )
        return {r.job: utc(r.finished_at) for r in self._run(lambda c: c.execute(query))}

    def runs(self, job: str) -> list[JobRun]:
        runs = housekeeping_runs.c
        query = select(housekeeping_runs).where(runs.job == job).order_by(runs.slot)
        return [
            JobRun(r.job, int(r.slot), r.claimed_by, utc(r.claimed_at),
                   None if r.finished_at is None else utc(r.finished_at), r.outcome)
            for r in self._run(lambda c: c.execute(query))
        ]
