"""make bench: ingest, lookup, storage, console and alerts figures, each beside a same-run
reference.

At 0, 10 million and 100 million stored instance-minutes (bench/scale.py): ingest in heartbeats/s
through POST /v1/heartbeats (1,000 per batch) into PostgreSQL, in two shapes, beside a raw COPY
of the same heartbeats as minute rows and beside an endpoint that only counts the same bodies
(bench/bare.py: what the HTTP round trip alone allows); GET /v1/billing latency at a fixed
arrival rate with 10,000 orgs holding 30 days of usage, beside GET /healthz on the same server;
bytes per stored instance-minute. Then the console, budget rounds at 100,000 and 1,000,000
orgs, page latency, and usage reporting to Stripe: 200,000 hour records drained to the Stripe
stand-in at 80 ms per round trip (bench/meters.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.alerts_bench import (
    bench_alerts_budget,
    bench_alerts_page,
    bench_page_behind_flood,
    print_alerts,
)
from bench.bare import BareEndpoint
from bench.console import bench_console, print_console
from bench.load import open_loop
from bench.meters import bench_meters, print_meters
from bench.scale import TOTAL_PERIODS, seed_stored_minutes, stored
from billing_core.access.tokens import display_prefix, new_token, token_hash
from billing_engine.db import migrate
from devstack.processes import EngineProcess
from devstack.servers import postgres_server, scratch_database

ADMIN = "bench-admin-key-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    python = platform.python_version()
    return f"{os.cpu_count()} cores, {cpu}, {platform.platform()}, Python {python}, {pg}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# -- ingest --------------------------------------------------------------------------------------


def ingest_rows(shape: str, tag: str, now: datetime) -> list[tuple[str, datetime, str]]:
    """(instance_id, ts, org_id) of one ingest run, in the order bodies are cut from them."""
    rows = []
    if shape == "backfill":  # 100 orgs x 10 instances x 195 consecutive minutes
        start = max(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
                    now - timedelta(days=5))
        for o in range(100):
            for i in range(10):
                for m in range(195):
                    rows.append((f"{tag}{o}-i{i}", start + timedelta(minutes=m), f"org_{tag}{o}"))
        return rows
    # stream: 10 orgs x 1,000 instances, each org's fleet sending one minute per body
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=25)
    for m in range(20):
        for o in range(10):
            for i in range(1000):
                rows.append((f"{tag}{o}-i{i:04d}", start + timedelta(minutes=m, seconds=7),
                             f"org_{tag}{o}"))
    return rows


def ingest_bodies(url: str, rows: list[tuple[str, datetime, str]], *, shape: str
                  ) -> list[tuple[str, bytes]]:
    """The (org, body) pairs of `rows` (from ingest_rows) in the order they are sent, their orgs
    created.
    A fleet sends for its own org only: each body holds one org's heartbeats, 1,000 at most; the
    stream shape goes minute by minute, the orgs of a minute side by side."""
    by_org: dict[str, list[tuple[str, datetime, str]]] = {}
    for row in rows:
        by_org.setdefault(row[2], []).append(row)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for org in by_org:
            conn.execute(
                "INSERT INTO orgs (id, name, billing_email, plan, created_at, updated_at) "
                "VALUES (%s, %s, %s, 'team', now(), now()) ON CONFLICT DO NOTHING",
                (org, f"Bench {org}", f"{org}@bench.example"),
            )
    bodies: list[tuple[str, bytes]] = []
    for org, org_rows in by_org.items():
        for i in range(0, len(org_rows), 1000):
            beats = [
                {"instance_id": iid, "org_id": org, "ts": ts.isoformat(), "state": "running"}
                for iid, ts, _org in org_rows[i : i + 1000]
            ]
            bodies.append((org, json.dumps({"heartbeats": beats}).encode()))
    if shape == "stream":
        bodies.sort(key=lambda body: body[1][body[1].index(b'"ts"'):][:30])
    return bodies


def create_org_key(engine_url: str, org: str, scopes: tuple[str, ...] = ("usage:write",)) -> str:
    answer = httpx.post(
        f"{engine_url}/admin/orgs/{org}/keys",
        headers={"X-Admin-Key": ADMIN},
        json={"name": "bench", "scopes": list(scopes)},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["key"])


def seed_read_keys(url: str, orgs: list[str]) -> dict[str, str]:
    """A billing:read key per org, written straight into api_keys as the engine stores them
    (thousands of orgs: through the API this would be most of the run)."""
    keys = {org: new_token("org") for org in orgs}
    now = datetime.now(UTC)
    with psycopg.connect(libpq(url), autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO api_keys (id, prefix, sha256, kind, org_id, name, scopes, created_by,"
            " created_at) VALUES (%s, %s, %s, 'org', %s, 'bench', 'billing:read', 'bench', %s)"
            " ON CONFLICT DO NOTHING",
            [(f"key_{n:016x}", display_prefix(token), token_hash(token), org, now)
             for n, (org, token) in enumerate(keys.items())],
        )
    return keys


def bench_ingest(url: str, *, shape: str, tag: str, workers: int, clients: int
                 ) -> dict[str, Any]:
    """Heartbeats/s through the API in one of two shapes (bench/scale.py), beside a COPY of the
    same heartbeats as minute rows."""
    rows = ingest_rows(shape, tag, datetime.now(UTC))
    bodies = ingest_bodies(url, rows, shape=shape)
    by_org = dict.fromkeys(org for org, _body in bodies)

    engine = EngineProcess(
        url, admin_key=ADMIN, workers=workers, extra_env={"LOG_LEVEL": "WARNING"}
    ).start()
    try:
        # One org key per org, made through the admin API as an operator would.
        keys = {org: create_org_key(engine.url, org) for org in by_org}
        accepted, api_seconds = post_bodies(engine.url, bodies, keys, clients)
    finally:
        engine.stop()
    api_rows = len(rows) - sum(body.count(b'"instance_id"') for _org, body in bodies[:5])
    assert accepted == api_rows, f"accepted {accepted} of {api_rows}"
    bare = BareEndpoint(workers=workers).start()
    try:
        counted, bare_seconds = post_bodies(bare.url, bodies, keys, clients)
    finally:
        bare.stop()
    assert counted == api_rows, f"the bare endpoint counted {counted} of {api_rows}"

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        # The table a row per instance-minute took before instance-hours (migration 0007).
        conn.execute("DROP TABLE IF EXISTS copy_reference")
        conn.execute(
            "CREATE TABLE copy_reference (instance_id varchar(128) NOT NULL,"
            " minute bigint NOT NULL, org_id varchar(64) NOT NULL, state varchar(8) NOT NULL,"
            " PRIMARY KEY (instance_id, minute))"
        )
        conn.execute("CREATE INDEX ON copy_reference (org_id, minute)")
        minute_rows = [(iid, int(ts.timestamp() // 60), org, "running") for iid, ts, org in rows]
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY copy_reference (instance_id, minute, org_id, state) FROM STDIN") as copy,
        ):
            for minute_row in minute_rows:
                copy.write_row(minute_row)
        copy_seconds = time.perf_counter() - started
        conn.execute("DROP TABLE copy_reference")
    api_rate = api_rows / api_seconds
    copy_rate = len(minute_rows) / copy_seconds
    return {
        "shape": shape,
        "api_rows": api_rows,
        "api_per_s": api_rate,
        "copy_rows": len(minute_rows),
        "copy_per_s": copy_rate,
        "ratio": api_rate / copy_rate,
        "bare_per_s": api_rows / bare_seconds,
    }


def post_bodies(base_url: str, bodies: list[tuple[str, bytes]], keys: dict[str, str],
                clients: int) -> tuple[int, float]:
    """POST every body to /v1/heartbeats from `clients` threads, each with its own connection:
    the `accepted` they were answered in all (the first five bodies, sent to warm up, left out)
    and the seconds the rest took."""

    def send(org: str, body: bytes, client: httpx.Client) -> int:
        r = client.post(
            "/v1/heartbeats",
            content=body,
            headers={"content-type": "application/json",
                     "authorization": f"Bearer {keys[org]}"},
        )
        r.raise_for_status()
        return int(r.json()["accepted"])

    local = threading.local()

    def task(item: tuple[str, bytes]) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=60)
        return send(*item, local.client)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(task, bodies[:5]))  # warm-up: connections, caches
        started = time.perf_counter()
        accepted = sum(pool.map(task, bodies[5:]))
        return accepted, time.perf_counter() - started


# -- lookup --------------------------------------------------------------------------------------


def seed_lookup(url: str, orgs: int, days: int) -> None:
    today = datetime.now(UTC).date()
    with psycopg.connect(libpq(url), autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY orgs (id, name, billing_email, plan, created_at, updated_at) FROM STDIN"
        ) as copy:
            for o in range(orgs):
                plan = ("free", "base_usage", "team")[o % 3]
                copy.write_row(
                    (
                        f"org_l{o}",
                        f"Lookup {o}",
                        f"l{o}@lookup.example",
                        plan,
                        datetime.now(UTC),
                        datetime.now(UTC),
                    )
                )
        with cur.copy("COPY daily_usage (org_id, day, minutes) FROM STDIN") as copy:
            for o in range(orgs):
                for d in range(days):
                    copy.write_row((f"org_l{o}", today - timedelta(days=d), 30 + (o * 7 + d) % 400))
        cur.execute(TOTAL_PERIODS)
        cur.execute("ANALYZE")


def bench_lookup(url: str, *, orgs: int, rate: float, seconds: float) -> dict[str, float]:
    seed_lookup(url, orgs, 30)
    engine = EngineProcess(
        url, admin_key=ADMIN, workers=2, extra_env={"LOG_LEVEL": "WARNING"}
    ).start()
    try:
        readers = [f"org_l{(o * 7919) % orgs}" for o in range(2000)]
        keys = seed_read_keys(url, sorted(set(readers)))
        billing = [f"/v1/billing?org_id={org}" for org in readers]
        # Each customer's CLI reads its own billing with its own billing:read key.
        auth = [{"Authorization": f"Bearer {keys[org]}"} for org in readers]
        open_loop(engine.url, billing[:50], rate=rate, seconds=1, headers=auth[:50])  # warm-up
        api = open_loop(engine.url, billing, rate=rate, seconds=seconds, headers=auth)
        bare = open_loop(engine.url, ["/healthz"], rate=rate, seconds=seconds)
    finally:
        engine.stop()
    ms = 1000
    return {
        "requests": len(api),
        "rate": rate,
        "billing_p50_ms": percentile(api, 50) * ms,
        "billing_p95_ms": percentile(api, 95) * ms,
        "billing_p99_ms": percentile(api, 99) * ms,
        "bare_p50_ms": percentile(bare, 50) * ms,
        "bare_p95_ms": percentile(bare, 95) * ms,
        "bare_p99_ms": percentile(bare, 99) * ms,
        "mean_ratio": statistics.mean(api) / statistics.mean(bare),
    }


def bench_at_size(url: str, size: int, args: argparse.Namespace) -> dict[str, object]:
    """Seed `size` stored instance-minutes, then ingest (both shapes), lookup and storage."""
    seeded = seed_stored_minutes(url, size)
    tag = f"s{size // 1_000_000}m"
    backfill = bench_ingest(url, shape="backfill", tag=f"{tag}b", workers=args.workers,
                            clients=args.clients)
    stream = bench_ingest(url, shape="stream", tag=f"{tag}s", workers=args.workers,
                          clients=args.clients)
    lookup = bench_lookup(url, orgs=args.orgs, rate=args.rate, seconds=args.seconds)
    return {"stored_minutes": size, "seed": seeded, "backfill": backfill, "stream": stream,
            "lookup": lookup, "storage": stored(url)}


def print_scale(scale: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nscale   at each size: stored instance-minutes seeded straight into the tables, "
          f"then ingest through the API ({args.workers} workers, {args.clients} clients) beside "
          "COPY of the same heartbeats as minute rows, and beside an endpoint that only counts "
          "the same bodies (bench/bare.py)")
    print(f"{'stored':>12} {'shape':>9} {'API hb/s':>10} {'COPY rows/s':>12} {'ratio':>6} "
          f"{'bare hb/s':>10} {'bare/COPY':>9}   "
          f"{'billing p50/p95 ms':>18} {'healthz p50/p95 ms':>18} {'bytes/min':>9}")
    for size, r in scale.items():
        lookup, storage = r["lookup"], r["storage"]
        for shape in ("backfill", "stream"):
            ingest = r[shape]
            print(f"{int(size):>12,} {shape:>9} {ingest['api_per_s']:>10,.0f} "
                  f"{ingest['copy_per_s']:>12,.0f} {ingest['ratio']:>6.3f} "
                  f"{ingest['bare_per_s']:>10,.0f} "
                  f"{ingest['bare_per_s'] / ingest['copy_per_s']:>9.3f}   "
                  f"{lookup['billing_p50_ms']:>8.1f} / {lookup['billing_p95_ms']:<7.1f} "
                  f"{lookup['bare_p50_ms']:>8.1f} / {lookup['bare_p95_ms']:<7.1f} "
                  f"{storage['bytes_per_minute']:>9.2f}")
    sizes = list(scale)
    if len(sizes) > 1:
        first, last = scale[sizes[0]], scale[sizes[-1]]
        for shape in ("backfill", "stream"):
            kept = last[shape]["api_per_s"] / first[shape]["api_per_s"]
            print(f"scale   {shape}: ingest at {int(sizes[-1]):,} stored is {kept:.2f} of ingest "
                  f"at {int(sizes[0]):,} (target >= 0.80); {last[shape]['ratio']:.2f} of raw "
                  "minute-row COPY (target >= 1.00)")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--console-runs", type=int, default=20)
    parser.add_argument("--sizes", default="0,10000000,100000000",
                        help="stored instance-minutes to measure at, comma-separated")
    parser.add_argument("--alert-orgs", default="100000,1000000",
                        help="orgs of each budget-round measurement, comma-separated")
    parser.add_argument("--meter-records", type=int, default=200_000,
                        help="hour records in the usage-reporting backlog")
    parser.add_argument("--only", default="scale,console,alerts_budget,alerts_page,meters",
                        help="parts to run, comma-separated")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "results.json")
    args = parser.parse_args()
    parts = set(args.only.split(","))

    results: dict[str, Any] = {"machine": machine(), "date": date.today().isoformat()}
    with postgres_server("BENCH_DATABASE_URL", "TEST_DATABASE_URL") as server_url:
        runs: list[tuple[str, Any]] = []
        if "scale" in parts:
            for size in (int(v) for v in args.sizes.split(",")):
                runs.append((f"scale/{size}", lambda u, n=size: bench_at_size(u, n, args)))
        if "console" in parts:
            runs.append(("console",
                         lambda u: bench_console(u, runs=args.console_runs, orgs=args.orgs)))
        if "alerts_budget" in parts:
            for orgs in (int(v) for v in args.alert_orgs.split(",")):
                runs.append((f"alerts_budget/{orgs}",
                             lambda u, n=orgs: bench_alerts_budget(u, orgs=n)))
        if "alerts_page" in parts:
            runs.append(("alerts_page", bench_alerts_page))
            runs.append(("alerts_flood", bench_page_behind_flood))
        if "meters" in parts:
            runs.append(("meters", lambda u: bench_meters(u, records=args.meter_records)))
        for name, run in runs:
            with scratch_database(server_url, prefix="billing_bench", setup=migrate) as url:
                group, _, key = name.partition("/")
                if key:
                    results.setdefault(group, {})[key] = run(url)
                else:
                    results[name] = run(url)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=2))  # each part as it ends

    print(f"\nmachine: {results['machine']}")
    if "scale" in results:
        print_scale(results["scale"], args)
    if "console" in results:
        print_console(results["console"])
    for budget in results.get("alerts_budget", {}).values():
        print_alerts({"alerts_budget": budget})
    if "alerts_page" in results:
        print_alerts({"alerts_page": results["alerts_page"]})
    if "alerts_flood" in results:
        print_alerts({"alerts_flood": results["alerts_flood"]})
    if "meters" in results:
        print_meters(results["meters"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
