"""The APScheduler 3.11 BackgroundScheduler that drives the process.

Jobs (each at most one instance at a time; a late run is coalesced, never stacked):

- leader (every replica, LEADER_RETRY_SECONDS, 5 s): keeps the lock, or tries to take it;
- evaluate (leader only, EVALUATION_INTERVAL_SECONDS, 5 s): one rule evaluation round, then
  one escalation round (the on-call policy's steps due for unacknowledged alerts) and one
  incident round (commanders reminded of updates and checklist items due);
- budget (leader only, BUDGET_INTERVAL_SECONDS, 60 s): one budget round over every org;
- outbox-pages and outbox-bulk (leader only, OUTBOX_INTERVAL_SECONDS, 1 s): send what is due,
  one job per delivery lane, so the pages lane never waits for a bulk drain to finish;
- gauges (every replica, 5 s): outbox depth and oldest age on the leader, 0 on standbys (so
  `sum()` across replicas is right);
- purge (leader only, hourly): forgets delivered messages, alert episodes and incidents resolved
  more than ALERTS_RETENTION_DAYS (90) ago;
- heartbeat (leader only, HEARTBEAT_INTERVAL_SECONDS, 60 s; only with HEARTBEAT_URL): the dead
  man's switch, pinged while the Watchdog fires (`alerts/observability/heartbeat.py`).

A round that queues messages wakes the outbox jobs at once instead of waiting for their next
tick. APScheduler runs jobs on a pool of threads: a long budget round or bulk drain never holds
up an evaluation round or a page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from alerts.budget.evaluator import BudgetEvaluator
from alerts.delivery.outbox import OutboxWorker
from alerts.incidents.service import IncidentService
from alerts.observability.heartbeat import DEFAULT_INTERVAL_SECONDS as DEFAULT_HEARTBEAT_INTERVAL
from alerts.observability.heartbeat import Heartbeat
from alerts.oncall.service import OnCallService
from alerts.rules.evaluator import Evaluator
from alerts.scheduling.leader import LeaderElection
from billing_core.errors import DatabaseUnavailable

log = logging.getLogger("alerts.scheduler")
GAUGE_INTERVAL_SECONDS = 5.0
PURGE_INTERVAL_SECONDS = 3600.0


# A round that starts later than this after its slot (a takeover, a busy machine) is off the
# grid and evaluates at the clock's time instead.
SLOT_SLACK_SECONDS = 1.0


def evaluation_slot(now: datetime, *, anchor: datetime, interval: float,
                    slack: float = SLOT_SLACK_SECONDS) -> datetime:
    """The time a round is evaluated at: its slot on the grid anchor + k * interval when it
    started within `slack` of it, else `now`.

    Rounds start a few milliseconds after their slot, and not always the same few: measured
    from each round's own start, an alert pending for exactly four 15 s intervals can look held
    for 59.99 s and fire one round (15 s) late. Prometheus evaluates at its grid's timestamps,
    and so do we: `for` then holds for exactly what it says.
    """
    if now < anchor:
        return now
    slots = (now - anchor).total_seconds() // interval
    slot = anchor + timedelta(seconds=slots * interval)
    return slot if (now - slot).total_seconds() <= slack else now


class AlertsScheduler:
    def __init__(self, *, leader: LeaderElection, evaluator: Evaluator, budget: BudgetEvaluator,
                 oncall: OnCallService, incidents: IncidentService,
                 workers: Sequence[OutboxWorker],
                 evaluation_interval: float,
                 budget_interval: float, outbox_interval: float, leader_interval: float,
                 retention: timedelta = timedelta(days=90),
                 heartbeat: Heartbeat | None = None,
                 heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL) -> None:
        self.leader = leader
        self.evaluator = evaluator
        self.budget = budget
        self.oncall = oncall
        self.incidents = incidents
        self.workers = {f"outbox-{w.lane.name if w.lane else 'all'}": w for w in workers}
        self.worker = workers[0]  # the gauges and the purge are the outbox's, not a lane's
        self.retention = retention
        self.heartbeat = heartbeat
        self.intervals = {
            "leader": leader_interval,
            "evaluate": evaluation_interval,
            "budget": budget_interval,
            **{job: outbox_interval for job in self.workers},
            "gauges": GAUGE_INTERVAL_SECONDS,
            "purge": PURGE_INTERVAL_SECONDS,
        }
        if heartbeat is not None:
            self.intervals["heartbeat"] = heartbeat_interval
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            executors={"default": {"type": "threadpool", "max_workers": len(self.intervals)}},
        )
        self._was_leader = False
        self._anchor = datetime.now(UTC)
        self._stopping = threading.Event()  # a drain stops at its next batch

    def start(self) -> None:
        self._leader_job()  # know who leads before the first round
        now = self._anchor = datetime.now(UTC)
        jobs: dict[str, Callable[[], Any]] = {
            "leader": self._leader_job,
            "evaluate": self._evaluate_job,
            "budget": self._budget_job,
            **{job: self._outbox_job(worker) for job, worker in self.workers.items()},
            "gauges": self._gauges_job,
            "purge": self._purge_job,
        }
        if self.heartbeat is not None:
            jobs["heartbeat"] = self._heartbeat_job
        for job_id, function in jobs.items():
            self.scheduler.add_job(function, "interval", id=job_id,
                                   seconds=self.intervals[job_id], next_run_time=now)
        self.scheduler.start()
        log.info("scheduler started", extra={k + "_interval_seconds": v
                                             for k, v in self.intervals.items()})

    def shutdown(self) -> None:
        self._stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.leader.release()

    def wake(self, job_id: str) -> None:
        """Run a job now (e.g. the outbox after a round queued messages); "outbox" wakes every
        lane's job."""
        jobs = list(self.workers) if job_id == "outbox" else [job_id]
        for job in jobs:
            try:
                self.scheduler.modify_job(job, next_run_time=datetime.now(UTC))
            except Exception:  # not started yet, or shutting down: its next tick comes anyway
                pass

    # -- jobs ---------------------------------------------------------------------------------

    def _leader_job(self) -> None:
        leading = self.leader.try_lead()
        if leading and not self._was_leader:
            # A new leader evaluates and drains at once: a takeover costs one retry interval.
            self.wake("evaluate")
            self.wake("budget")
            self.wake("outbox")
        self._was_leader = leading

    def _evaluate_job(self) -> None:
        at = evaluation_slot(datetime.now(UTC), anchor=self._anchor,
                             interval=self.intervals["evaluate"])
        if not self.leader.confirm():
            return
        self._guard("evaluate", lambda: self.evaluator.run_round(at))
        self._guard("escalate", lambda: self.oncall.run_round(at))
        self._guard("incidents", lambda: self.incidents.run_round(at))

    def _budget_job(self) -> None:
        if not self.leader.confirm():
            return
        self._guard("budget", self.budget.run_round)

    def _outbox_job(self, worker: OutboxWorker) -> Callable[[], None]:
        def job() -> None:
            if not self.leader.confirm():
                return
            self._guard("outbox", lambda: worker.drain(should_continue=self._keep_sending))

        return job

    def _keep_sending(self) -> bool:
        return not self._stopping.is_set() and self.leader.confirm()

    def _gauges_job(self) -> None:
        if self.leader.confirm():
            self.worker.refresh_gauges()
        else:
            self.worker.standby_gauges()

    def _purge_job(self) -> None:
        if not self.leader.confirm():
            return
        self._guard("purge", lambda: self.worker.purge(retention=self.retention))
        before = datetime.now(UTC) - self.retention
        self._guard("purge", lambda: self.incidents.store.purge_incidents(before=before))
        self._guard("purge", lambda: self.oncall.alerts.purge_history(before=before))

    def _heartbeat_job(self) -> None:
        if self.heartbeat is None or not self.leader.confirm():
            return  # a standby that pinged would hide a dead leader
        self._guard("heartbeat", self.heartbeat.run_round)

    def _guard(self, job: str, work: Callable[[], Any]) -> None:
        try:
            work()
        except DatabaseUnavailable as error:
            log.warning("database unavailable; the job runs again at its next tick",
                        extra={"job": job, "reason": str(error)[:200]})
        except Exception:
            log.exception("job failed; it runs again at its next tick", extra={"job": job})
