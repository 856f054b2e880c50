"""Raw usage retention: months past USAGE_RETENTION_MONTHS that are invoiced are archived to a
checked file and dropped (a detached partition on PostgreSQL, rows on SQLite); months not yet
invoiced wait; rollups and invoices stay; partitions are made ahead; a run stopped half-way is
finished by the next one."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from billing_core.periods import period_containing
from billing_engine.db import Database
from billing_engine.invoicing.store import InvoiceStore
from billing_engine.invoicing.tables import closed_periods
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.usage.archive import ArchiveMismatch, UsageArchive
from billing_engine.usage.partitions import PartitionStore, partition_name
from billing_engine.usage.retention import UsageRetention
from billing_engine.usage.rules import Heartbeat, InstanceState
from billing_engine.usage.store import UsageStore
from tests.store.test_usage_storage import empty_tables, ingest
from tests.support.clock import FrozenClock

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
# Thirteen complete months before November 2026 reach back to October 2025.
OLD = period_containing(datetime(2025, 8, 10, tzinfo=UTC))  # past retention, invoiced
OLD_OPEN = period_containing(datetime(2025, 9, 10, tzinfo=UTC))  # past it, never invoiced
KEPT = period_containing(datetime(2025, 10, 10, tzinfo=UTC))  # the oldest month kept


def fill(database: Database) -> dict[str, int]:
    """An hour and a half of two instances in each month; returns minutes per month."""
    empty_tables(database)
    repo = UsageStore(database)
    minutes = {}
    for period in (OLD, OLD_OPEN, KEPT, period_containing(NOW)):
        at = period.start + timedelta(days=3, hours=5)
        beats = [Heartbeat(i, "org_a", at + timedelta(minutes=m), InstanceState.RUNNING)
                 for i in ("a1", "a2") for m in range(90)]
        ingest(repo, beats, now=at + timedelta(hours=2))
        minutes[period.key] = 180
    return minutes


def close(database: Database, *periods: str) -> None:
    with database.engine.begin() as conn:
        conn.execute(closed_periods.insert(), [
            {"period": p, "closed_at": NOW, "invoices": 0} for p in periods])


def retention(database: Database, archive: Path, metrics: EngineMetrics) -> UsageRetention:
    return UsageRetention(store=PartitionStore(database), archive=UsageArchive(archive),
                          keep_months=13, is_period_closed=InvoiceStore(database).is_period_closed,
                          metrics=metrics, clock=FrozenClock(NOW))


@pytest.fixture
def engine_metrics() -> EngineMetrics:
    return EngineMetrics(CollectorRegistry())


def archived_rows(path: Path) -> list[list[str]]:
    with gzip.open(path, "rb") as zipped:
        return list(csv.reader(io.TextIOWrapper(zipped, encoding="utf-8", newline="")))


def test_an_invoiced_month_past_retention_is_archived_then_dropped_and_its_rollups_stay(
        database, tmp_path, engine_metrics):
    minutes = fill(database)
    close(database, OLD.key, KEPT.key)
    result = retention(database, tmp_path / "archive", engine_metrics).run()

    assert result.retired == [OLD.key]
    assert result.waiting == [OLD_OPEN.key]  # past retention, but never invoiced: kept
    manifest = UsageArchive(tmp_path / "archive").archived(OLD.key)
    assert manifest is not None and (manifest.rows, manifest.minutes) == (4, minutes[OLD.key])
    rows = archived_rows(tmp_path / "archive" / manifest.file)
    assert sorted({r[1] for r in rows}) == ["a1", "a2"]
    assert sum(int(r[3]).bit_count() for r in rows) == 180
    repo = UsageStore(database)
    assert repo.raw_daily_minutes("org_a", OLD) == {}  # raw usage gone
    for period in (OLD_OPEN, KEPT, period_containing(NOW)):
        assert sum(repo.raw_daily_minutes("org_a", period).values()) == 180
    for period in (OLD, OLD_OPEN, KEPT):  # rollups kept, the dropped month's too
        assert repo.period_minutes("org_a", period) == 180
    sample = engine_metrics.registry.get_sample_value
    assert sample("usage_months_retired_total") == 1
    assert sample("usage_retention_months_waiting") == 1
    assert sample("usage_storage_bytes") > 0


def test_a_second_run_finds_nothing_to_do(database, tmp_path, engine_metrics):
    fill(database)
    close(database, OLD.key)
    first = retention(database, tmp_path / "archive", engine_metrics).run()
    again = retention(database, tmp_path / "archive", engine_metrics).run()
    assert (first.retired, again.retired, again.created) == ([OLD.key], [], [])


def test_partitions_are_made_for_last_month_this_month_and_two_ahead(pg_database, tmp_path,
                                                                      engine_metrics):
    empty_tables(pg_database)
    retention(pg_database, tmp_path / "archive", engine_metrics).maintain()
    months = {m.table for m in PartitionStore(pg_database).months() if m.attached}
    current = period_containing(NOW)
    assert {partition_name(current.shifted(n)) for n in (-1, 0, 1, 2)} <= months
    assert engine_metrics.registry.get_sample_value("usage_partition_months_ahead") >= 2


def test_a_month_detached_by_a_run_that_stopped_is_archived_and_dropped_next_time(
        pg_database, tmp_path, engine_metrics):
    fill(pg_database)
    close(pg_database, OLD.key)
    store = PartitionStore(pg_database)
    (old,) = [m for m in store.months() if m.period == OLD]
    store.detach(old)  # the run stopped here
    assert [m.attached for m in store.months() if m.period == OLD] == [False]
    assert retention(pg_database, tmp_path / "archive", engine_metrics).run().retired == [OLD.key]
    assert [m for m in store.months() if m.period == OLD] == []
    assert UsageArchive(tmp_path / "archive").archived(OLD.key) is not None


def test_an_archive_that_reads_back_wrong_stops_the_drop(database, tmp_path, engine_metrics,
                                                         monkeypatch):
    fill(database)
    close(database, OLD.key)
    real_copy = PartitionStore.copy_out

    def lose_a_row(self, month, sink):  # a disk or a network filesystem losing data
        buffer = io.BytesIO()
        real_copy(self, month, buffer)
        sink.write(b"\n".join(buffer.getvalue().splitlines()[1:]) + b"\n")

    monkeypatch.setattr(PartitionStore, "copy_out", lose_a_row)
    with pytest.raises(ArchiveMismatch):
        retention(database, tmp_path / "archive", engine_metrics).run()
    assert UsageArchive(tmp_path / "archive").archived(OLD.key) is None
    store = PartitionStore(database)
    (kept,) = [m for m in store.months() if m.period == OLD]  # detached on PostgreSQL
    assert store.stats(kept).minutes == 180
    assert list((tmp_path / "archive").iterdir()) == []  # no partial file left behind

    monkeypatch.setattr(PartitionStore, "copy_out", real_copy)
    assert retention(database, tmp_path / "archive", engine_metrics).run().retired == [OLD.key]


def test_retention_keeps_thirteen_complete_months_by_default():
    from billing_engine.settings import Settings
    from billing_engine.usage.rules import first_month_kept

    assert Settings.from_env({}).usage_retention_months == 13
    assert first_month_kept(now=NOW, keep_months=13).first_day == date(2025, 10, 1)
