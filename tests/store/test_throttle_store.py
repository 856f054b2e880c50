"""Throttle state and daily-counter resets: the same contract on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing_core.periods import period_containing
from billing_engine.customers.store import CustomerStore
from billing_engine.db import Database
from billing_engine.throttling.rules import InstanceActivity
from billing_engine.throttling.store import ThrottleRecord, ThrottleStore
from billing_engine.usage.rules import Heartbeat, InstanceState, MeteringPolicy, classify
from billing_engine.usage.store import UsageStore

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def seed_usage(database: Database, org_id: str, minutes: int) -> None:
    CustomerStore(database).upsert_org(org_id=org_id, name=org_id,
                                       billing_email=f"{org_id}@x.example", plan="free", now=NOW)
    beats = [Heartbeat("i1", org_id, NOW - timedelta(minutes=m), InstanceState.RUNNING)
             for m in range(minutes)]
    UsageStore(database).ingest(["i1"], lambda owners: classify(
        beats, now=NOW, policy=MeteringPolicy(), known_orgs={org_id}, instance_owners=owners))


def record(instance_id: str, org_id: str, *, reason: str | None = None) -> ThrottleRecord:
    return ThrottleRecord(
        instance_id=instance_id,
        org_id=org_id,
        activity=InstanceActivity(run_started_at=NOW - timedelta(hours=1), last_running_at=NOW,
                                  idle_since=None, last_seen=NOW),
        paused_reason=reason,
        paused_since=NOW if reason else None,
        checked_at=NOW,
    )


def test_throttle_state_round_trips_and_is_overwritten(database: Database):
    repo = ThrottleStore(database)
    repo.save_throttle([record("i1", "org_a"), record("i2", "org_a", reason="idle")])
    repo.save_throttle([record("i1", "org_a", reason="daily_cap")])
    states, _ = repo.throttle_inputs(["i1", "i2", "i3"], [], day=NOW.date())
    assert set(states) == {"i1", "i2"}
    assert states["i1"].paused_reason == "daily_cap"
    assert states["i1"].activity.run_started_at == NOW - timedelta(hours=1)
    assert states["i2"] == record("i2", "org_a", reason="idle")
    assert repo.get_throttle("i2") == states["i2"]
    assert repo.count_paused_still_seen(seen_since=NOW - timedelta(minutes=5)) == 2
    assert repo.count_paused_still_seen(seen_since=NOW + timedelta(minutes=1)) == 0


def test_a_daily_reset_zeroes_the_throttle_counter_but_never_the_usage(database: Database):
    repo = ThrottleStore(database)
    usage = UsageStore(database)
    seed_usage(database, "org_a", 90)
    repo.save_throttle([record("i1", "org_a", reason="daily_cap")])
    _, before = repo.throttle_inputs([], ["org_a", "org_none"], day=NOW.date())
    assert before == {"org_a": 90, "org_none": 0}
    billed, offset = repo.reset_daily_counter("org_a", day=NOW.date(), now=NOW)
    assert (billed, offset) == (90, 90)
    _, after = repo.throttle_inputs([], ["org_a"], day=NOW.date())
    assert after == {"org_a": 0}
    assert usage.period_minutes("org_a", period_containing(NOW)) == 90
    assert repo.get_throttle("i1").paused_reason is None
    # Resetting again the same day moves the offset up; the usage is still untouched.
    assert repo.reset_daily_counter("org_a", day=NOW.date(), now=NOW) == (90, 90)
    assert usage.daily_minutes("org_a", first_day=NOW.date(),
                               end_day=NOW.date() + timedelta(days=1)) == {NOW.date(): 90}
