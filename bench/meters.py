"""Usage reporting to Stripe: a backlog of hour records drained to the Stripe stand-in
(tests/support/fake_stripe.py, a real HTTP server) with a fixed round trip per request.

The engine's own code does the work (MeterReporting over PostgreSQL, the official `stripe`
library over HTTP): claims, the v2 meter event stream with its session, marking records sent.
Then the same backlog through the stream by two replicas at once (sharing it through the
claims), and through v1 calls: one at a time (the engine before the stream) and with customers
side by side. Those are measured on a subset and extrapolated to the whole
backlog, since one at a time at 80 ms would take hours; the report says so.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from billing_engine.customers.tables import orgs
from billing_engine.db import create_database
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.circuit_breaker import CircuitBreaker
from billing_engine.stripe.client import StripeProvider
from billing_engine.stripe.meters.service import MeterConfig, MeterReporting
from billing_engine.stripe.meters.store import MeterStore
from tests.support.fake_stripe import FakeStripe


@dataclass
class StandIn:
    """The Stripe stand-in in a process of its own, as Stripe is: it does not share the
    engine's interpreter (nor its GIL). `counts` is filled when it stops."""

    url: str
    api_key: str
    counts: dict[str, int]


def _serve(latency: float, conn: Any) -> None:
    with FakeStripe(latency_seconds=latency) as fake:
        conn.send((fake.url, fake.api_key))
        conn.recv()  # until told to stop
        conn.send({"events": len(fake.meter_events), "requests": len(fake.requests),
                   "concurrent_refusals": fake.concurrent_refusals})


@contextmanager
def stand_in(latency: float) -> Iterator[StandIn]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(latency, theirs), daemon=True)
    process.start()
    url, key = ours.recv()
    running = StandIn(url=url, api_key=key, counts={})
    try:
        yield running
    finally:
        ours.send("stop")
        running.counts.update(ours.recv())
        process.join(timeout=30)


def seed_backlog(url: str, *, orgs_count: int, hours: int, now: datetime) -> int:
    """`orgs_count` linked orgs with `hours` pending hour records each, the newest three hours
    old: what a Stripe outage (or a first link of many orgs) leaves behind."""
    database = create_database(url)
    try:
        with database.engine.begin() as conn:
            conn.execute(orgs.insert(), [
                {"id": f"org_b{n:05d}", "name": f"bench {n}", "billing_email": f"b{n}@x.example",
                 "plan": "base_usage", "stripe_customer_id": f"cus_bench{n:05d}",
                 "created_at": now, "updated_at": now}
                for n in range(orgs_count)
            ])
            newest = int(now.timestamp()) // 3600 - 3
            conn.execute(text(
                "INSERT INTO meter_outbox (org_id, hour, version, identifier, minutes, state,"
                " attempts, next_attempt_at, created_at, generation)"
                " SELECT o.id, h.hour, 1,"
                " 'usage-' || o.id || '-' || to_char(to_timestamp(h.hour * 3600) AT TIME ZONE"
                " 'UTC', 'YYYYMMDDHH24') || '-v1', 60, 'pending', 0, :now, :now, 0"
                " FROM orgs o CROSS JOIN (SELECT generate_series(:first, :last) AS hour) h"
                " WHERE o.id LIKE 'org_b%'"
            ), {"now": now, "first": newest - hours + 1, "last": newest})
            count = conn.execute(text("SELECT count(*) FROM meter_outbox")).scalar_one()
        return int(count)
    finally:
        database.dispose()


def drain(url: str, *, fake: StandIn, config: MeterConfig, limit: int | None = None,
          now: datetime) -> dict[str, Any]:
    """Flush until nothing is due (or `limit` records went); events/s over the wall clock."""
    database = create_database(url, pool_size=4)
    provider = StripeProvider(
        api_key=fake.api_key, api_base=fake.url, timeout_seconds=30,
        breaker=CircuitBreaker(failure_threshold=5, cooldown_seconds=30, clock=time.monotonic),
    )
    reporting = MeterReporting(store=MeterStore(database), provider=provider,
                               metrics=EngineMetrics(), config=config, clock=lambda: now)
    sent = 0
    started = time.perf_counter()
    try:
        while limit is None or sent < limit:
            result = reporting.flush(enqueue=False)
            if result.attempted == 0:
                break
            if result.failed or result.retrying:
                raise RuntimeError(f"the drain met errors: {result.as_json()['errors']}")
            sent += result.sent
    finally:
        seconds = time.perf_counter() - started
        reporting.close()
        database.dispose()
    return {
        "records": sent,
        "seconds": round(seconds, 2),
        "events_per_second": round(sent / seconds, 1) if seconds else 0.0,
        "sessions": provider.sessions_created,
    }


def bench_meters(url: str, *, records: int = 200_000, orgs_count: int = 2000,
                 latency: float = 0.08, concurrency: int = 16,
                 v1_subset: int = 200, v1_parallel_subset: int = 3200) -> dict[str, Any]:
    hours = records // orgs_count
    now = datetime.now(UTC).replace(microsecond=0)
    seeded = seed_backlog(url, orgs_count=orgs_count, hours=hours, now=now)
    base = MeterConfig(batch_size=10_000, chunk_size=2000, concurrency=concurrency,
                       stream_min_records=20, lease=timedelta(minutes=10))
    with stand_in(latency) as fake:
        stream = drain(url, fake=fake, config=base, now=now)
    counted = fake.counts["events"]
    stream["requests"] = fake.counts["requests"]
    if counted != seeded or stream["records"] != seeded:
        raise RuntimeError(f"stream: {seeded} seeded, {stream['records']} sent, "
                           f"{counted} counted by the stand-in")

    # The same backlog again each time: everything requeued as a new generation.
    def requeue() -> None:
        database = create_database(url)
        with database.engine.begin() as conn:
            conn.execute(text("UPDATE meter_outbox SET state = 'pending', "
                              "generation = generation + 1, next_attempt_at = :now"),
                         {"now": now})
        database.dispose()

    # Two replicas draining together (threads of this process, each with its own pool and
    # MeterReporting: the claims keep them apart, the stand-in checks nothing went twice).
    requeue()
    with stand_in(latency) as fake:
        shared: list[dict[str, Any]] = []
        started = time.perf_counter()
        replicas = [threading.Thread(target=lambda: shared.append(
            drain(url, fake=fake, config=base, now=now))) for _ in range(2)]
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.join()
        seconds = time.perf_counter() - started
    two = {
        "records": sum(r["records"] for r in shared),
        "seconds": round(seconds, 2),
        "events_per_second": round(sum(r["records"] for r in shared) / seconds, 1),
        "per_replica": [r["records"] for r in shared],
        "requests": fake.counts["requests"],
        "counted": fake.counts["events"],
    }
    if two["counted"] != seeded or two["records"] != seeded:
        raise RuntimeError(f"two replicas: {seeded} seeded, {two['records']} sent, "
                           f"{two['counted']} counted by the stand-in")

    requeue()
    with stand_in(latency) as fake:
        one = drain(url, fake=fake, now=now, limit=v1_subset, config=replace(
            base, concurrency=1, chunk_size=50, batch_size=50, stream_min_records=10**9))
    requeue()
    with stand_in(latency) as fake:
        side = drain(url, fake=fake, now=now, limit=v1_parallel_subset, config=replace(
            base, chunk_size=v1_parallel_subset, batch_size=v1_parallel_subset,
            stream_min_records=10**9))
    refusals = fake.counts["concurrent_refusals"]
    for run in (one, side):
        run["extrapolated_seconds"] = round(seeded / run["events_per_second"], 1)
    return {
        "records": seeded,
        "orgs": orgs_count,
        "latency_ms": latency * 1000,
        "concurrency": concurrency,
        "stream": stream,
        "stream_two_replicas": two,
        "v1_one_at_a_time": one,
        "v1_customers_side_by_side": {**side, "concurrent_refusals": refusals},
    }


def print_meters(result: dict[str, Any]) -> None:
    stream, one, side = (result["stream"], result["v1_one_at_a_time"],
                         result["v1_customers_side_by_side"])
    print(f"\nusage reporting: {result['records']:,} hour records of {result['orgs']:,} orgs, "
          f"{result['latency_ms']:.0f} ms per round trip, {result['concurrency']} in flight")
    print(f"  v2 stream         {stream['events_per_second']:>9,.0f} events/s  "
          f"{stream['seconds']:>8,.1f} s  ({stream['requests']:,} requests, "
          f"{stream['sessions']} session)")
    two = result["stream_two_replicas"]
    print(f"  v2, 2 replicas    {two['events_per_second']:>9,.0f} events/s  "
          f"{two['seconds']:>8,.1f} s  ({two['per_replica'][0]:,} + {two['per_replica'][1]:,} "
          f"records, none twice)")
    print(f"  v1 side by side   {side['events_per_second']:>9,.0f} events/s  "
          f"{side['extrapolated_seconds']:>8,.1f} s  extrapolated from {side['records']:,} "
          f"records ({side['concurrent_refusals']} concurrent refusals)")
    print(f"  v1 one at a time  {one['events_per_second']:>9,.0f} events/s  "
          f"{one['extrapolated_seconds']:>8,.1f} s  extrapolated from {one['records']:,} "
          f"records")
    for name, run in (("one replica", stream), ("two replicas", two)):
        target = "meets" if run["events_per_second"] >= 4000 else "misses"
        print(f"  target 4,000 events/s: the stream with {name} {target} it")
