"""Compact metering storage (instance-hours with a minute mask), the same contract on SQLite and
PostgreSQL: the bill is the set of instance-minutes, whatever the order, repetition, batching or
lateness of the heartbeats, and storage stays under 4 bytes per instance-minute."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_core.periods import day_of_minute, minute_of, period_containing
from billing_engine.db import Database
from billing_engine.db.metadata import engine_metadata
from billing_engine.usage.partitions import PartitionStore, partition_name
from billing_engine.usage.rules import (
    Heartbeat,
    InstanceState,
    MeteringPolicy,
    billable_minutes_by_org,
    classify,
)
from billing_engine.usage.store import UsageStore
from tests.store.test_repository_contract import make_org

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
PERIOD = period_containing(NOW)
ORGS = {"org_a", "org_b"}


def ingest(repo: UsageStore, heartbeats: list[Heartbeat], *, now: datetime = NOW):
    _plan, outcome = repo.ingest(
        (h.instance_id for h in heartbeats),
        lambda owners: classify(heartbeats, now=now, policy=MeteringPolicy(),
                                known_orgs=ORGS | {"org_c"}, instance_owners=owners),
    )
    return outcome


def empty_tables(database: Database) -> None:
    with database.engine.begin() as conn:
        for table in reversed(engine_metadata().sorted_tables):
            conn.execute(table.delete())
    for org in sorted(ORGS):
        make_org(database, org)


def reference_daily(heartbeats: list[Heartbeat]) -> dict[tuple[str, date], int]:
    slots = {(h.instance_id, minute_of(h.ts)): h.org_id for h in heartbeats}
    return dict(Counter((org, day_of_minute(minute)) for (_i, minute), org in slots.items()))


def stored_daily(repo: UsageStore, orgs: set[str]) -> dict[tuple[str, date], int]:
    found = {}
    for org in orgs:
        rollups = repo.daily_minutes(org, first_day=date(2026, 10, 1), end_day=date(2026, 12, 1))
        found.update({(org, day): n for day, n in rollups.items() if n})
    return found


# Each instance belongs to one org; timestamps over three days of the open period, so instance-
# hours fill up across batches and days split rollups.
heartbeats = st.builds(
    lambda inst, offset, state: Heartbeat(
        f"i{inst}", "org_a" if inst % 2 else "org_b", NOW - timedelta(seconds=offset), state),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=0, max_value=3 * 24 * 3600),
    st.sampled_from(list(InstanceState)),
)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sent=st.lists(heartbeats, min_size=1, max_size=80), data=st.data())
def test_any_order_duplication_or_batching_stores_the_same_bill(database, sent, data):
    empty_tables(database)
    repo = UsageStore(database)
    shuffled = data.draw(st.permutations(sent))
    replayed = shuffled + data.draw(st.lists(st.sampled_from(sent), max_size=30))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(replayed)), max_size=6)))
    accepted, start = 0, 0
    for cut in [*cuts, len(replayed)]:
        accepted += ingest(repo, replayed[start:cut]).new_slots
        start = cut
    expected = billable_minutes_by_org(sent)
    assert accepted == sum(expected.values())
    assert {org: repo.period_minutes(org, PERIOD) for org in ORGS} == {
        org: expected.get(org, 0) for org in ORGS}
    assert stored_daily(repo, ORGS) == reference_daily(sent)
    for org in ORGS:  # the raw instance-hours hold exactly what the rollups counted
        raw = repo.raw_daily_minutes(org, PERIOD)
        assert raw == {d: n for (o, d), n in reference_daily(sent).items() if o == org}


def test_a_late_minute_joins_its_stored_hour_and_counts_once(database):
    empty_tables(database)
    repo = UsageStore(database)
    hour_start = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
    first = [Heartbeat("i1", "org_a", hour_start + timedelta(minutes=m), InstanceState.RUNNING)
             for m in (0, 1, 2, 59)]
    late = Heartbeat("i1", "org_a", hour_start + timedelta(minutes=30), InstanceState.IDLE)
    assert ingest(repo, first).new_slots == 4
    assert ingest(repo, [late]).new_slots == 1
    assert ingest(repo, [late, *first]).new_slots == 0
    assert repo.period_minutes("org_a", PERIOD) == 5
    assert repo.instance_minutes("org_a", "i1", PERIOD) == 5


def test_overlapping_batches_sent_at_once_are_billed_exactly(pg_database):
    """Retries racing their originals: batches that share instance-hours, many not stored yet,
    committed concurrently from eight threads, count each minute once."""
    empty_tables(pg_database)
    repo = UsageStore(pg_database)
    rng = random.Random(14)
    beats = [Heartbeat(f"i{i}", "org_a" if i % 2 else "org_b",
                       NOW - timedelta(minutes=rng.randrange(0, 600)), InstanceState.RUNNING)
             for i in range(12) for _ in range(60)]
    batches = [rng.sample(beats, 200) for _ in range(40)]
    sent = [b for batch in batches for b in batch]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(mine: list[list[Heartbeat]]) -> None:
        try:
            barrier.wait()
            for batch in mine:
                ingest(repo, batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(batches[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = billable_minutes_by_org(sent)
    assert {org: repo.period_minutes(org, PERIOD) for org in ORGS} == expected
    assert stored_daily(repo, ORGS) == reference_daily(sent)


def test_a_month_without_its_partition_gets_one_and_keeps_the_heartbeat(pg_database):
    empty_tables(pg_database)
    make_org(pg_database, "org_c")
    far = datetime(2031, 3, 14, 10, 0, tzinfo=UTC)  # no partition was made this far ahead
    months = PartitionStore(pg_database)
    assert partition_name(period_containing(far)) not in {m.table for m in months.months()}
    repo = UsageStore(pg_database)
    outcome = ingest(repo, [Heartbeat("c1", "org_c", far, InstanceState.RUNNING)], now=far)
    assert outcome.new_slots == 1
    assert repo.period_minutes("org_c", period_containing(far)) == 1
    assert partition_name(period_containing(far)) in {m.table for m in months.months()}


def test_instances_running_whole_hours_cost_under_4_bytes_a_minute(database):
    """A fleet of 100 instances with AWS-style ids heartbeating every minute for two days,
    sent ten minutes at a time (288,000 instance-minutes): the month's raw usage, index
    included, takes at most 4 bytes per instance-minute.

    Each batch rewrites the current hour's rows; on PostgreSQL the old row versions are
    reclaimed by vacuum, which autovacuum runs on a live partition every few hours at most (20 %
    of its rows dead; each hour kills 59 versions per instance). The test vacuums every six
    hours of heartbeats for it: without any vacuum the same data takes about 6 bytes."""
    empty_tables(database)
    make_org(database, "org_c")
    repo = UsageStore(database)
    start = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
    fleet = [f"i-0123456789abcd{n:03d}" for n in range(100)]
    for first in range(0, 48 * 60, 10):
        ingest(repo, [Heartbeat(i, "org_c", start + timedelta(minutes=first + m),
                                InstanceState.RUNNING) for m in range(10) for i in fleet])
        if database.is_postgres and first % 360 == 350:
            with database.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM {partition_name(PERIOD)}")
    minutes = 100 * 48 * 60
    assert repo.period_minutes("org_c", PERIOD) == minutes
    stored = PartitionStore(database).storage_bytes(PERIOD)
    assert stored is not None
    assert stored / minutes <= 4.0, f"{stored / minutes:.2f} bytes per instance-minute"
