"""Cost as the work grows: the database seeded with 0, 10 million and 100 million stored
instance-minutes, then ingest, lookup and storage measured at each size.

Seeding writes straight into the tables, as the engine would have left them: a fleet of 200 orgs
with 10 instances each, running every minute of the last N days up to now (N chosen for the
size; 100 million minutes is about 35 days, so two monthly partitions), as full instance-hours
in key order by COPY, with the daily rollups and instance records that go with them.

Ingest is measured in two shapes, each beside a raw COPY of the same heartbeats as one row per
instance-minute (the table the engine used before instance-hours) into a fresh table:

- backfill: 100 orgs x 10 instances x 195 consecutive minutes, each body one org's 1,000
  heartbeats (10 instances x 100 minutes): the shape of the earlier figures;
- stream: 10 orgs x 1,000 instances x 20 minutes, each body one org's fleet in one minute, as a
  live fleet sends. Every heartbeat after an hour's first minute updates its instance-hour.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from billing_core.periods import period_containing
from billing_engine.db import create_database
from billing_engine.usage.partitions import PartitionStore

SEED_ORGS = 200
SEED_INSTANCES_PER_ORG = 10
FULL_HOUR = (1 << 60) - 1


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# What the ingest keeps beside the daily rollups, for rollups a seed wrote straight into
# daily_usage: every org's period totals, set to the sums of its days.
TOTAL_PERIODS = (
    "INSERT INTO period_usage (minutes, first_day, org_id) "
    "SELECT sum(minutes), CAST(date_trunc('month', day) AS date), org_id FROM daily_usage "
    "GROUP BY 3, 2 ON CONFLICT (org_id, first_day) DO UPDATE SET minutes = EXCLUDED.minutes"
)


def seed_stored_minutes(url: str, minutes: int) -> dict[str, Any]:
    """Store `minutes` instance-minutes (rounded down to whole instance-hours) straight into
    usage_hours, daily_usage, instances and orgs. Returns what was written and how long it
    took."""
    instances = SEED_ORGS * SEED_INSTANCES_PER_ORG
    hours = minutes // 60 // instances
    if hours == 0:
        return {"minutes": 0, "rows": 0, "seconds": 0.0}
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    last_hour = int(now.timestamp()) // 3600 - 1  # the last complete hour
    first_hour = last_hour - hours + 1
    earliest = datetime.fromtimestamp(first_hour * 3600, UTC)
    # Partitions reaching back to the first seeded hour.
    database = create_database(url, pool_size=1)
    try:
        first, current = period_containing(earliest), period_containing(now)
        months = []
        period = first
        while period.start <= current.start:
            months.append(period)
            period = period.next()
        PartitionStore(database).ensure(months)
    finally:
        database.dispose()
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(libpq(url), autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy("COPY orgs (id, name, billing_email, plan, created_at, updated_at) "
                      "FROM STDIN") as copy:
            for o in range(SEED_ORGS):
                copy.write_row((f"org_seed{o:04d}", f"Seeded {o}", f"s{o}@seed.example",
                                ("free", "base_usage", "team")[o % 3], earliest, earliest))
        with cur.copy("COPY usage_hours (minute_mask, hour, minutes_added, org_id, instance_id)"
                      " FROM STDIN") as copy:
            for o in range(SEED_ORGS):
                org = f"org_seed{o:04d}"
                for i in range(SEED_INSTANCES_PER_ORG):
                    instance = f"i-0seed{o:04d}{i:08d}"
                    for hour in range(first_hour, last_hour + 1):
                        copy.write_row((FULL_HOUR, hour, 60, org, instance))
                        rows += 1
        per_day: Counter[date] = Counter()  # one org's minutes per day
        for hour in range(first_hour, last_hour + 1):
            per_day[datetime.fromtimestamp(hour * 3600, UTC).date()] += 60 * SEED_INSTANCES_PER_ORG
        with cur.copy("COPY daily_usage (org_id, day, minutes) FROM STDIN") as copy:
            for o in range(SEED_ORGS):
                for day, org_minutes in sorted(per_day.items()):
                    copy.write_row((f"org_seed{o:04d}", day, org_minutes))
        cur.execute(TOTAL_PERIODS)
        with cur.copy("COPY instances (instance_id, org_id, first_seen, last_seen, last_state) "
                      "FROM STDIN") as copy:
            for o in range(SEED_ORGS):
                for i in range(SEED_INSTANCES_PER_ORG):
                    copy.write_row((f"i-0seed{o:04d}{i:08d}", f"org_seed{o:04d}", earliest,
                                    now - timedelta(minutes=1), "running"))
        cur.execute("VACUUM ANALYZE usage_hours")
        cur.execute("ANALYZE daily_usage")
        cur.execute("ANALYZE period_usage")
    return {"minutes": rows * 60, "rows": rows, "seconds": round(time.perf_counter() - started, 1)}


def stored(url: str) -> dict[str, float]:
    """Bytes raw usage takes (every attached partition, index included) and the minutes it
    holds, read from the table itself."""
    database = create_database(url, pool_size=1)
    try:
        size = PartitionStore(database).storage_bytes() or 0
    finally:
        database.dispose()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        (minutes,) = conn.execute(
            "SELECT coalesce(sum(bit_count(CAST(minute_mask AS bit(64)))), 0) FROM usage_hours"
        ).fetchone() or (0,)
        (rows,) = conn.execute("SELECT count(*) FROM usage_hours").fetchone() or (0,)
    minutes = int(minutes)
    return {"bytes": size, "minutes": minutes, "rows": int(rows),
            "bytes_per_minute": size / minutes if minutes else float("nan")}
