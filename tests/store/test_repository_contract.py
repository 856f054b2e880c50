"""One contract, every backend: SQLite (embedded) and PostgreSQL (production) must agree."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from billing_core.periods import period_containing
from billing_engine.customers.store import CustomerStore
from billing_engine.db import Database
from billing_engine.usage.rules import Heartbeat, InstanceState, MeteringPolicy, classify
from billing_engine.usage.store import UsageStore

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
PERIOD = period_containing(NOW)


def ingest(repo: UsageStore, heartbeats: list[Heartbeat], orgs: set[str]):
    _plan, outcome = repo.ingest(
        (h.instance_id for h in heartbeats),
        lambda owners: classify(
            heartbeats, now=NOW, policy=MeteringPolicy(), known_orgs=orgs, instance_owners=owners
        ),
    )
    return outcome


def make_org(database: Database, org_id: str, plan: str = "base_usage") -> None:
    CustomerStore(database).upsert_org(
        org_id=org_id, name=org_id.title(), billing_email=f"{org_id}@x.example", plan=plan, now=NOW
    )


def test_redelivered_heartbeats_are_billed_once(database: Database):
    repo = UsageStore(database)
    make_org(database, "org_a")
    batch = [
        Heartbeat("i1", "org_a", NOW - timedelta(minutes=m), InstanceState.RUNNING)
        for m in range(10)
    ]
    first = ingest(repo, batch, {"org_a"})
    again = ingest(repo, list(reversed(batch)), {"org_a"})
    assert (first.new_slots, again.new_slots) == (10, 0)
    assert repo.period_minutes("org_a", PERIOD) == 10


def test_rollups_are_split_by_utc_day(database: Database):
    repo = UsageStore(database)
    make_org(database, "org_a")
    midnight = datetime(2026, 11, 18, tzinfo=UTC)
    batch = [
        Heartbeat("i1", "org_a", midnight + timedelta(minutes=m), InstanceState.RUNNING)
        for m in range(-3, 2)
    ]
    ingest(repo, batch, {"org_a"})
    daily = repo.daily_minutes("org_a", first_day=date(2026, 11, 17), end_day=date(2026, 11, 19))
    assert daily == {date(2026, 11, 17): 3, date(2026, 11, 18): 2}


def test_rebuilding_rollups_from_raw_slots_repairs_drift(database: Database):
    repo = UsageStore(database)
    make_org(database, "org_a")
    ingest(
        repo,
        [
            Heartbeat("i1", "org_a", NOW - timedelta(minutes=m), InstanceState.IDLE)
            for m in range(7)
        ],
        {"org_a"},
    )
    with database.engine.begin() as conn:  # simulate a rollup gone wrong
        from billing_engine.usage.tables import daily_usage

        conn.execute(daily_usage.update().values(minutes=999))
    assert repo.period_minutes("org_a", PERIOD) == 999
    assert repo.raw_daily_minutes("org_a", PERIOD) == {NOW.date(): 7}
    rebuilt = repo.rebuild_rollups("org_a", first_day=PERIOD.first_day)
    assert rebuilt == {NOW.date(): 7}
    assert repo.period_minutes("org_a", PERIOD) == 7


def test_instance_keeps_its_newest_state_and_first_sighting(database: Database):
    repo = UsageStore(database)
    make_org(database, "org_a")
    ingest(repo, [Heartbeat("i1", "org_a", NOW, InstanceState.IDLE)], {"org_a"})
    ingest(
        repo, [Heartbeat("i1", "org_a", NOW - timedelta(hours=1), InstanceState.RUNNING)], {"org_a"}
    )
    record = repo.get_instance("i1")
    assert record is not None
    assert record.last_state == "idle"
    assert record.last_seen == NOW
    assert record.first_seen == NOW - timedelta(hours=1)
    assert repo.instance_minutes("org_a", "i1", PERIOD) == 2
    assert repo.newest_heartbeat() == NOW


def test_search_matches_id_name_or_email_prefix_case_insensitively(database: Database):
    orgs = CustomerStore(database)
    orgs.upsert_org(
        org_id="org_acme", name="Acme Corp", billing_email="pay@acme.io", plan="free", now=NOW
    )
    orgs.upsert_org(
        org_id="org_zen", name="Zenith", billing_email="ACCOUNTS@zenith.io", plan="free", now=NOW
    )
    orgs.upsert_org(org_id="org_100%", name="Percent", billing_email="p@p.io", plan="free", now=NOW)
    by_name = [o.id for o in orgs.search_orgs("acme", limit=10, offset=0)[0]]
    by_email = [o.id for o in orgs.search_orgs("accounts@", limit=10, offset=0)[0]]
    by_id = [o.id for o in orgs.search_orgs("ORG_Z", limit=10, offset=0)[0]]
    wildcard = orgs.search_orgs("%", limit=10, offset=0)  # a literal %, not a wildcard
    assert (by_name, by_email, by_id) == (["org_acme"], ["org_zen"], ["org_zen"])
    assert wildcard == ([], 0)
    page, total = orgs.search_orgs("org_", limit=2, offset=2)
    assert total == 3 and len(page) == 1


def test_usage_by_org_is_one_row_per_org_with_usage_this_period(database: Database):
    repo = UsageStore(database)
    make_org(database, "org_a")
    make_org(database, "org_b", plan="free")
    make_org(database, "org_idle")
    ingest(
        repo,
        [
            Heartbeat("a1", "org_a", NOW, InstanceState.RUNNING),
            Heartbeat("b1", "org_b", NOW, InstanceState.RUNNING),
            Heartbeat("b2", "org_b", NOW, InstanceState.RUNNING),
        ],
        {"org_a", "org_b"},
    )
    assert sorted(repo.usage_by_org(PERIOD)) == [("org_a", "base_usage", 1), ("org_b", "free", 2)]


def test_updating_an_org_keeps_its_creation_time(database: Database):
    orgs = CustomerStore(database)
    _, created = orgs.upsert_org(
        org_id="org_a", name="A", billing_email="a@a.io", plan="free", now=NOW
    )
    record, created_again = orgs.upsert_org(
        org_id="org_a", name="A2", billing_email="a@a.io", plan="team", now=NOW + timedelta(days=1)
    )
    assert (created, created_again) == (True, False)
    assert (record.name, record.plan, record.created_at) == ("A2", "team", NOW)
