"""Partition upkeep and raw-usage retention, run by housekeeping (once across replicas).

`maintain` keeps the partitions of last month, this month and `MONTHS_AHEAD` months ahead in
place and refreshes the storage gauges. `run` does that, then retires every month older than
`USAGE_RETENTION_MONTHS` complete months whose period is closed (invoiced): detach, archive,
check the archive against the database, drop. A month past retention that is not closed yet is
kept and counted in `usage_retention_months_waiting`; closing it lets the next run retire it.
Daily rollups, invoices and everything else are kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from billing_core.periods import period_containing
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.usage.archive import UsageArchive
from billing_engine.usage.partitions import PartitionStore, StoredMonth
from billing_engine.usage.rules import first_month_kept

log = logging.getLogger("billing_engine.usage.retention")
MONTHS_AHEAD = 2


@dataclass
class RetentionRun:
    created: list[str] = field(default_factory=list)  # partitions created
    retired: list[str] = field(default_factory=list)  # months archived and dropped
    waiting: list[str] = field(default_factory=list)  # past retention, period not closed yet


class UsageRetention:
    def __init__(
        self,
        *,
        store: PartitionStore,
        archive: UsageArchive,
        keep_months: int,
        is_period_closed: Callable[[str], bool],
        metrics: EngineMetrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.archive = archive
        self.keep_months = keep_months
        self.is_period_closed = is_period_closed
        self.metrics = metrics
        self.clock = clock

    def maintain(self) -> list[str]:
        """Create the partitions due and refresh the gauges; returns partitions created."""
        current = period_containing(self.clock())
        wanted = [current.shifted(n) for n in range(-1, MONTHS_AHEAD + 1)]
        created = self.store.ensure(wanted)
        if created:
            log.info("usage partitions created", extra={"partitions": created})
        months = self.store.months()
        if self.store.db.is_postgres:
            attached = {m.period.key for m in months if m.attached}
            ahead = 0
            while current.shifted(ahead + 1).key in attached:
                ahead += 1
            self.metrics.usage_partition_months_ahead.set(ahead)
        stored = self.store.storage_bytes()
        self.metrics.usage_storage_bytes.set(math.nan if stored is None else stored)
        return created

    def run(self) -> RetentionRun:
        result = RetentionRun(created=self.maintain())
        now = self.clock()
        kept_from = first_month_kept(now=now, keep_months=self.keep_months)
        for month in self.store.months():
            if month.period.start >= kept_from.start:
                continue
            key = month.period.key
            if not self.is_period_closed(key):
                result.waiting.append(key)
                continue
            self.retire(month, now=now)
            result.retired.append(key)
        self.metrics.usage_retention_months_waiting.set(len(result.waiting))
        if result.retired or result.waiting:
            log.info(
                "raw usage retention",
                extra={"retired": result.retired, "waiting_for_close": result.waiting,
                       "keep_months": self.keep_months},
            )
        return result

    def retire(self, month: StoredMonth, *, now: datetime) -> None:
        """Detach, archive (checked), drop. Each step is skipped when already done."""
        key = month.period.key
        self.store.detach(month)
        detached = StoredMonth(month.period, month.table, attached=False)
        if self.archive.archived(key) is None:
            stats = self.store.stats(detached)
            self.archive.write(
                key,
                rows=stats.rows,
                minutes=stats.minutes,
                copy_out=lambda sink: self.store.copy_out(detached, sink),
                now=now,
            )
        self.store.drop(detached)
        self.metrics.usage_months_retired.inc()
