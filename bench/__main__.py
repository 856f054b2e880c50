"""make bench: ingest, lookup, console and alerts figures, each beside a same-run reference.

Ingest: heartbeats/s through POST /v1/heartbeats (1,000 per batch) into PostgreSQL, beside a raw
COPY of the same rows into a copy of the same table. Lookup: GET /v1/billing latency at a fixed
arrival rate with 10,000 orgs holding 30 days of usage, beside GET /healthz on the same server.
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

import httpx
import psycopg

from bench.alerts_bench import bench_alerts_budget, bench_alerts_page, print_alerts
from bench.console import bench_console, print_console
from bench.load import open_loop
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


def ingest_rows(orgs: int, instances_per_org: int, minutes: int, start: datetime):
    for o in range(orgs):
        for i in range(instances_per_org):
            for m in range(minutes):
                yield (f"bench{o}-i{i}", start + timedelta(minutes=m), f"org_bench{o}")


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


def bench_ingest(url: str, *, total: int, workers: int, clients: int) -> dict[str, float]:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for o in range(100):
            conn.execute(
                "INSERT INTO orgs (id, name, billing_email, plan, created_at, updated_at) "
                "VALUES (%s, %s, %s, 'team', now(), now()) ON CONFLICT DO NOTHING",
                (f"org_bench{o}", f"Bench {o}", f"b{o}@bench.example"),
            )
    now = datetime.now(UTC)
    start = max(
        now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now - timedelta(days=5)
    )
    minutes = max(1, total // (100 * 10))
    rows = list(ingest_rows(100, 10, minutes, start))[:total]
    # A fleet sends for its own org only: each body holds one org's heartbeats.
    by_org: dict[str, list[tuple[str, datetime, str]]] = {}
    for row in rows:
        by_org.setdefault(row[2], []).append(row)
    bodies: list[tuple[str, bytes]] = []
    for org, org_rows in by_org.items():
        for i in range(0, len(org_rows), 1000):
            chunk = org_rows[i : i + 1000]
            beats = [
                {"instance_id": iid, "org_id": org, "ts": ts.isoformat(), "state": "running"}
                for iid, ts, _org in chunk
            ]
            bodies.append((org, json.dumps({"heartbeats": beats}).encode()))

    engine = EngineProcess(
        url, admin_key=ADMIN, workers=workers, extra_env={"LOG_LEVEL": "WARNING"}
    ).start()
    try:
        # One org key per org, made through the admin API as an operator would.
        keys = {org: create_org_key(engine.url, org) for org in by_org}

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
                local.client = httpx.Client(base_url=engine.url, timeout=60)
            return send(*item, local.client)

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(task, bodies[:5]))  # warm-up: connections, caches, JIT-free paths
            started = time.perf_counter()
            accepted = sum(pool.map(task, bodies[5:]))
            api_seconds = time.perf_counter() - started
        api_rows = len(rows) - sum(body.count(b'"instance_id"') for _org, body in bodies[:5])
        assert accepted == api_rows, f"accepted {accepted} of {api_rows}"
    finally:
        engine.stop()

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        # The table a row per instance-minute took before instance-hours (migration 0007).
        conn.execute(
            "CREATE TABLE copy_reference (instance_id varchar(128) NOT NULL,"
            " minute bigint NOT NULL, org_id varchar(64) NOT NULL, state varchar(8) NOT NULL,"
            " PRIMARY KEY (instance_id, minute))"
        )
        conn.execute("CREATE INDEX ON copy_reference (org_id, minute)")
        copy_rows = [(iid, int(ts.timestamp() // 60), org, "running") for iid, ts, org in rows]
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY copy_reference (instance_id, minute, org_id, state) FROM STDIN") as copy,
        ):
            for row in copy_rows:
                copy.write_row(row)
        copy_seconds = time.perf_counter() - started
    api_rate = api_rows / api_seconds
    copy_rate = len(copy_rows) / copy_seconds
    return {
        "api_rows": api_rows,
        "api_per_s": api_rate,
        "copy_rows": len(copy_rows),
        "copy_per_s": copy_rate,
        "ratio": api_rate / copy_rate,
    }


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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--heartbeats", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--console-runs", type=int, default=20)
    parser.add_argument("--alert-orgs", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "results.json")
    args = parser.parse_args()

    results: dict[str, object] = {"machine": machine(), "date": date.today().isoformat()}
    with postgres_server("BENCH_DATABASE_URL", "TEST_DATABASE_URL") as server_url:
        for name, run in (
            (
                "ingest",
                lambda u: bench_ingest(
                    u, total=args.heartbeats, workers=args.workers, clients=args.clients
                ),
            ),
            (
                "lookup",
                lambda u: bench_lookup(u, orgs=args.orgs, rate=args.rate, seconds=args.seconds),
            ),
            (
                "console",
                lambda u: bench_console(u, runs=args.console_runs, orgs=args.orgs),
            ),
            ("alerts_budget", lambda u: bench_alerts_budget(u, orgs=args.alert_orgs)),
            ("alerts_page", bench_alerts_page),
        ):
            with scratch_database(server_url, prefix="billing_bench", setup=migrate) as url:
                results[name] = run(url)

    ingest, lookup = results["ingest"], results["lookup"]
    print(f"\nmachine: {results['machine']}")
    print(
        f"ingest  API   {ingest['api_per_s']:>10,.0f} heartbeats/s  ({ingest['api_rows']:,} rows, "
        f"1,000 per batch, {args.workers} workers, {args.clients} clients)"
    )
    print(
        f"ingest  COPY  {ingest['copy_per_s']:>10,.0f} rows/s        (same rows, same table shape)"
    )
    print(f"ingest  ratio {ingest['ratio']:.3f} of raw COPY  (target: >= 50,000 heartbeats/s)")
    print(
        f"lookup  GET /v1/billing  p50 {lookup['billing_p50_ms']:.1f} ms  p95 "
        f"{lookup['billing_p95_ms']:.1f} ms  p99 {lookup['billing_p99_ms']:.1f} ms  "
        f"({lookup['requests']:,} requests at {args.rate:.0f}/s, {args.orgs:,} orgs x 30 days)"
    )
    print(
        f"lookup  GET /healthz     p50 {lookup['bare_p50_ms']:.1f} ms  p95 "
        f"{lookup['bare_p95_ms']:.1f} ms  p99 {lookup['bare_p99_ms']:.1f} ms  (bare endpoint)"
    )
    print(
        f"lookup  mean latency ratio billing/bare {lookup['mean_ratio']:.2f}  (target: p95 < 50 ms)"
    )
    print_console(results["console"])
    print_alerts(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
