"""Background rounds: readiness, the gauges that need the database, and periodic jobs.

Each round runs every task on its own: one failing is logged and does not stop the others.

Two kinds of task. Gauges (`add`) run every round on every replica: each replica exports its own
metrics. Jobs (`add_job`) do work that must happen once however many replicas and worker
processes run (closing a period, retention, partition upkeep): time is cut into slots of the
job's period, every replica agrees on the slot from the clock alone, and the one that inserts the
(job, slot) row into `housekeeping_runs` runs it; the others see the row and skip. A replica that
dies mid-job leaves its slot unfinished; the next slot runs the job again, and every job is
written to finish what an earlier run left. Claims are plain rows in short transactions, so they
work through PgBouncer in transaction mode and on SQLite alike.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from billing_core.clock import Clock, utc_now
from billing_engine.db.database import Database
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.operability.store import CLAIMS_KEPT, JobClaimStore

log = logging.getLogger("billing_engine")


def replica_name() -> str:
    """Who this process is in `housekeeping_runs`: host (the pod's name on Kubernetes), process
    id, and a random tag against a reused pid."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class _Job:
    name: str
    task: Callable[[], object]
    every: float
    last_slot: int | None = field(default=None)


class Housekeeper:
    def __init__(
        self,
        *,
        database: Database,
        metrics: EngineMetrics,
        interval: float,
        claims: JobClaimStore | None = None,
        clock: Clock = utc_now,
        replica: str | None = None,
    ) -> None:
        self.database = database
        self.metrics = metrics
        self.interval = interval
        self.claims = claims if claims is not None else JobClaimStore(database)
        self.clock = clock
        self.replica = replica or replica_name()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)
        self.tasks: list[tuple[str, Callable[[], object]]] = []
        self.jobs: list[_Job] = []
        self._held: dict[str, int] = {}  # job -> the slot this replica holds
        self._lock = threading.Lock()

    def add(self, name: str, task: Callable[[], object]) -> None:
        """A task every round, on every replica (gauges)."""
        self.tasks.append((name, task))

    def add_job(self, name: str, task: Callable[[], object], *, every: float) -> None:
        """A job once per `every` seconds across all replicas."""
        self.metrics.housekeeping_job_runs.labels(name, "ok")
        self.metrics.housekeeping_job_runs.labels(name, "failed")
        job = _Job(name, task, every)
        self.jobs.append(job)
        self.add(f"job:{name}", partial(self._run_job, job))

    def holds(self, name: str, *, every: float) -> bool:
        """Whether this replica holds `name` for the current slot of `every` seconds, claiming
        it if nobody has: leadership for one slot, for work that runs in its own thread (the
        meter flush). One database round trip per slot."""
        slot = self._slot(every)
        with self._lock:
            if self._held.get(name) == slot:
                return True
        won = self.claims.claim(name, slot, replica=self.replica, now=self.clock())
        if won:
            with self._lock:
                self._held[name] = slot
            self.metrics.housekeeping_job_runs.labels(name, "ok").inc()
        return won

    def _slot(self, every: float) -> int:
        return int(self.clock().timestamp() // every)

    def _run_job(self, job: _Job) -> None:
        slot = self._slot(job.every)
        if job.last_slot == slot:
            return
        job.last_slot = slot
        if not self.claims.claim(job.name, slot, replica=self.replica, now=self.clock()):
            return
        started = time.monotonic()
        outcome = "ok"
        try:
            job.task()
        except Exception:
            outcome = "failed"
            raise
        finally:
            self.metrics.housekeeping_job_runs.labels(job.name, outcome).inc()
            self.claims.finish(job.name, slot, outcome=outcome, replica=self.replica,
                               seconds=time.monotonic() - started, now=self.clock())

    def refresh_job_gauges(self) -> None:
        """Each job's last successful run, whichever replica ran it; old claims pruned."""
        for name, finished in self.claims.last_success().items():
            self.metrics.housekeeping_job_last_success.labels(name).set(finished.timestamp())

    def forget_old_claims(self, now: datetime | None = None) -> int:
        return self.claims.forget_before((now or self.clock()) - CLAIMS_KEPT)

    def check_ready(self) -> None:
        """Raise DatabaseUnavailable unless the database answers; sets `engine_ready`."""
        try:
            self.database.ping()
        except Exception:
            self.metrics.ready.set(0)
            raise
        self.metrics.ready.set(1)

    def run_round(self) -> None:
        try:
            self.check_ready()
        except Exception as exc:  # the next round tries again; readiness says what is wrong
            log.warning("housekeeping round failed", extra={"reason": str(exc)[:200]})
        for name, task in self.tasks:
            try:
                task()
            except Exception as exc:
                log.warning(
                    "housekeeping task failed", extra={"task": name, "reason": str(exc)[:200]}
                )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_round()
            self._stop.wait(self.interval)
