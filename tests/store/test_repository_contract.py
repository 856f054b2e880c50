"""One contract, every backend: SQLite (embedded) and PostgreSQL (production) must agree."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from billing_core.periods import period_containing
from billing_engine.customers.store import CustomerStore
from billing_engine.db import Database
from billing_engine.usage.rules import Heartbeat, InstanceState, MeteringPolicy, classify
from billing_engine.usage.store import UsageStore

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
PERIOD = period_containing(NOW)


def ingest(repo: UsageStore, heartbeats: list[Heartbeat], orgs: set[str], *,
           now: datetime = NOW):
    _plan, outcome = repo.ingest(
        (h.instance_id for h in heartbeats),
        lambda owners: classify(
            heartbeats, now=now, policy=MeteringPolicy(), known_orgs=orgs, instance_owners=owners
        ),
    )
    return outcome


def period_totals(database: Database) -> tuple[dict[tuple[str, date], int], ...]:
    """(org, first day of the month) -> minutes: the period totals as stored, and as the sums
    of the daily rollups."""
    from billing_engine.usage.tables import daily_usage, period_usage

    with database.engine.connect() as conn:
        stored = {(r.org_id, _day(r.first_day)): int(r.minutes)
                  for r in conn.execute(select(period_usage))}
        summed: dict[tuple[str, date], int] = {}
        for r in conn.execute(select(daily_usage)):
            key = (r.org_id, _day(r.day).replace(day=1))
            summed[key] = summed.get(key, 0) + int(r.minutes)
    return stored, summed


def _day(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


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
    assert period_totals(database) == ({("org_a", PERIOD.first_day): 7},) * 2


def test_period_totals_are_the_sums_of_the_daily_rollups_across_a_month_end(database: Database):
    repo = UsageStore(database)
    make_org(database, "org_a")
    make_org(database, "org_b", plan="free")
    now = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # November still takes late heartbeats
    beats = [Heartbeat(f"{org}-i{i}", org, now - timedelta(minutes=m), InstanceState.RUNNING)
             for org in ("org_a", "org_b") for i in range(3) for m in range(0, 70, 3)]
    for batch in (beats[::2], beats[1::2], beats, list(reversed(beats[:20]))):
        ingest(repo, batch, {"org_a", "org_b"}, now=now)
    stored, summed = period_totals(database)
    assert stored == summed
    # 3 instances; minutes 0 to 69 before 00:30 every third: 13 in November, 11 in December
    months = ((date(2026, 11, 1), 3 * 13), (date(2026, 12, 1), 3 * 11))
    assert stored == {(org, day): n for org in ("org_a", "org_b") for day, n in months}


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
