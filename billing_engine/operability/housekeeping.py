"""Background rounds: readiness, the gauges that need the database, and periodic jobs.

Each round runs every task on its own: one failing is logged and does not stop the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from billing_engine.db.database import Database
from billing_engine.operability.metrics import EngineMetrics

log = logging.getLogger("billing_engine")


class Housekeeper:
    def __init__(self, *, database: Database, metrics: EngineMetrics, interval: float) -> None:
        self.database = database
        self.metrics = metrics
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)
        self.tasks: list[tuple[str, Callable[[], object]]] = []
        self._monotonic = time.monotonic

    def add(self, name: str, task: Callable[[], object], *, every: float | None = None) -> None:
        """Run `task` every round, or at most once per `every` seconds (the first round runs
        it)."""
        if every is None:
            self.tasks.append((name, task))
            return
        next_due = [0.0]

        def when_due() -> object:
            if self._monotonic() < next_due[0]:
                return None
            next_due[0] = self._monotonic() + every
            return task()

        self.tasks.append((name, when_due))

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
