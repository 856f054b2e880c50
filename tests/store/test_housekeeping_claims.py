"""Periodic housekeeping jobs run once per slot however many replicas run rounds, on both
backends; gauges still run on every replica; a failed run is recorded and the next slot runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from billing_engine.db import Database
from billing_engine.db.metadata import engine_metadata
from billing_engine.operability.housekeeping import Housekeeper
from billing_engine.operability.metrics import EngineMetrics
from tests.support.clock import FrozenClock


@pytest.fixture
def empty(database: Database) -> Database:
    with database.engine.begin() as conn:
        for table in reversed(engine_metadata().sorted_tables):
            conn.execute(table.delete())
    return database


def replicas(database: Database, clock: FrozenClock, count: int) -> list[Housekeeper]:
    return [Housekeeper(database=database, metrics=EngineMetrics(CollectorRegistry()),
                        interval=1, clock=clock, replica=f"replica-{n}") for n in range(count)]


def test_three_replicas_run_each_job_once_per_slot_and_every_gauge_each(empty):
    clock = FrozenClock(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    ran: list[tuple[str, str]] = []
    keepers = replicas(empty, clock, 3)
    for keeper in keepers:
        name = keeper.replica
        keeper.add_job("close_period", lambda name=name: ran.append(("close", name)), every=60)
        keeper.add_job("usage_retention", lambda name=name: ran.append(("retention", name)),
                       every=3600)
        keeper.add("gauges", lambda name=name: ran.append(("gauges", name)))
    for _minute in range(5):  # five minutes of rounds, every replica twice a minute
        for _round in range(2):
            threads = [threading.Thread(target=k.run_round) for k in keepers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        clock.advance(minutes=1)
    kinds = [kind for kind, _name in ran]
    assert kinds.count("close") == 5
    assert kinds.count("retention") == 1
    assert kinds.count("gauges") == 30
    runs = {k.replica: k.metrics.registry.get_sample_value(
        "housekeeping_job_runs_total", {"job": "close_period", "outcome": "ok"}) for k in keepers}
    assert sum(runs.values()) == 5
    assert [r.slot for r in keepers[0].claims.runs("close_period")] == list(
        range(int(datetime(2026, 11, 18, 12, 0, tzinfo=UTC).timestamp()) // 60,
              int(datetime(2026, 11, 18, 12, 5, tzinfo=UTC).timestamp()) // 60))


def test_a_failed_run_is_recorded_and_the_next_slot_runs_again(empty):
    clock = FrozenClock(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    (keeper,) = replicas(empty, clock, 1)
    attempts = []

    def flaky() -> None:
        attempts.append(clock())
        if len(attempts) == 1:
            raise RuntimeError("the database went away mid-job")

    keeper.add_job("usage_retention", flaky, every=3600)
    keeper.run_round()
    keeper.run_round()  # same slot: not again
    clock.advance(hours=1)
    keeper.run_round()
    assert len(attempts) == 2
    outcomes = [r.outcome for r in keeper.claims.runs("usage_retention")]
    assert outcomes == ["failed", "ok"]
    keeper.refresh_job_gauges()
    assert keeper.metrics.registry.get_sample_value(
        "housekeeping_job_last_success_timestamp_seconds", {"job": "usage_retention"}
    ) == clock().timestamp()


def test_the_meter_flush_slot_stays_with_the_replica_that_took_it(empty):
    clock = FrozenClock(datetime(2026, 11, 18, 12, 0, 5, tzinfo=UTC))
    first, second = replicas(empty, clock, 2)
    assert first.holds("meter_flush", every=60)
    assert first.holds("meter_flush", every=60)  # drains its backlog within the slot
    assert not second.holds("meter_flush", every=60)
    clock.advance(seconds=60)
    assert second.holds("meter_flush", every=60)
    assert not first.holds("meter_flush", every=60)


def test_claims_older_than_a_week_are_forgotten(empty):
    clock = FrozenClock(datetime(2026, 11, 1, tzinfo=UTC))
    (keeper,) = replicas(empty, clock, 1)
    keeper.add_job("close_period", lambda: None, every=60)
    keeper.run_round()
    clock.advance(days=8)
    keeper.run_round()
    assert keeper.forget_old_claims() == 1
    assert len(keeper.claims.runs("close_period")) == 1
    assert keeper.claims.runs("close_period")[0].claimed_at == clock.now - timedelta(0)
