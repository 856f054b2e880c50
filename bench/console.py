"""Console render time: the Customers card and the Overview, server side, with 30 days of data.

A real engine on PostgreSQL holds 10,000 orgs with 30 days of daily rollups plus one known
customer with instances reporting today; a real Prometheus holds 30 days of the engine's request
and latency series (backfilled with promtool at one sample a minute, then scraping the live
engine) and evaluates the shipped SLO rules over them. Each page is run with
streamlit.testing.v1.AppTest through dashboard/app.py: "cold" clears st.cache_data first, so every
fetch goes to the engine or Prometheus (the first viewer in a cache TTL); "warm" reruns the same
session at once (every later viewer, and the fragments' refreshes). The reference is a one-line
page run the same way, so the ratio is what the console's own work costs over Streamlit's.

`python -m bench.console` runs it alone; `make bench` runs it after ingest and lookup.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import streamlit as st
import yaml
from streamlit.testing.v1 import AppTest

from bench.scale import TOTAL_PERIODS
from devstack.processes import EngineProcess, OidcProvider, console_sign_in_env, console_user
from devstack.servers import free_port, wait_for
from devstack.stack import CONSOLE_CLIENT_ID

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
ADMIN = "bench-admin-key-0123456789"
STAFF = {"X-Admin-Key": ADMIN}  # the engine's reads need a staff credential
CUSTOMER_NAME = "Render Bench Co"
AVAILABILITY = "Availability, 30 d (objective 99.9 %)"
TRIVIAL_PAGE = "import streamlit as st\nst.write('ok')\n"

# Backfilled traffic: endpoint -> (method, requests/s); 0.06 % of requests are 5xx.
TRAFFIC = {"/v1/heartbeats": ("POST", 20.0), "/v1/billing": ("GET", 5.0),
           "/v1/customers": ("GET", 0.5)}
ERROR_SHARE = 0.0006
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKET_SHARE = (0.05, 0.25, 0.55, 0.80, 0.88, 0.93, 0.97, 0.99, 0.997, 0.999, 1.0, 1.0, 1.0)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# -- PostgreSQL: 10,000 orgs x 30 days of rollups, and the customer support looks up ------------


def seed_orgs(url: str, *, orgs: int, days: int) -> None:
    today = datetime.now(UTC).date()
    now = datetime.now(UTC)
    with psycopg.connect(_libpq(url), autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy("COPY orgs (id, name, billing_email, plan, created_at, updated_at) "
                      "FROM STDIN") as copy:
            for o in range(orgs):
                copy.write_row((f"org_r{o}", f"Render {o}", f"r{o}@render.example",
                                ("free", "base_usage", "team")[o % 3], now, now))
        with cur.copy("COPY daily_usage (org_id, day, minutes) FROM STDIN") as copy:
            for o in range(orgs):
                for d in range(days):
                    copy.write_row((f"org_r{o}", today - timedelta(days=d), 30 + (o * 7 + d) % 400))
        cur.execute(TOTAL_PERIODS)
        cur.execute("ANALYZE")


def seed_customer(engine_url: str, url: str, *, days: int, instances: int) -> str:
    """The org support searches for: instances reporting the last hour, rollups for 30 days."""
    org = f"org_render_{uuid.uuid4().hex[:6]}"
    response = httpx.put(f"{engine_url}/admin/orgs/{org}", headers={"X-Admin-Key": ADMIN},
                         json={"name": CUSTOMER_NAME, "email": f"{org}@example.com",
                               "plan": "team"}, timeout=10)
    response.raise_for_status()
    now = datetime.now(UTC).replace(second=5, microsecond=0)
    beats = [{"instance_id": f"{org}-vm{i}", "org_id": org,
              "ts": (now - timedelta(minutes=m + 1)).isoformat(), "state": "running"}
             for i in range(instances) for m in range(60)]
    key = httpx.post(f"{engine_url}/admin/orgs/{org}/keys", headers={"X-Admin-Key": ADMIN},
                     json={"name": "bench fleet", "scopes": ["usage:write"]}, timeout=10)
    key.raise_for_status()
    answer = httpx.post(f"{engine_url}/v1/heartbeats", json={"heartbeats": beats}, timeout=30,
                        headers={"Authorization": f"Bearer {key.json()['key']}"})
    answer.raise_for_status()
    today = now.date()
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO daily_usage (org_id, day, minutes) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            [(org, today - timedelta(days=d), 600 + 37 * d % 500) for d in range(1, days)])
        conn.execute(TOTAL_PERIODS)
    return org


# -- Prometheus: 30 days of the engine's series, then the live engine ---------------------------


def _openmetrics(start: int, end: int, *, step: int, origin: int) -> str:
    """Counters for [start, end): cumulative from `origin`, so the files join into one history."""
    stamps = range(start, end, step)
    lines = ["# TYPE http_requests counter\n"]
    for endpoint, (method, rate) in TRAFFIC.items():
        for status, share in (("200", 1 - ERROR_SHARE), ("500", ERROR_SHARE)):
            labels = (f'job="billing-engine",instance="backfill:0",method="{method}",'
                      f'endpoint="{endpoint}",status="{status}"')
            lines += [f"http_requests_total{{{labels}}} {(t - origin) * rate * share:.2f} {t}\n"
                      for t in stamps]
    lines.append("# TYPE http_request_duration_seconds histogram\n")
    for endpoint, (method, rate) in TRAFFIC.items():
        labels = (f'job="billing-engine",instance="backfill:0",method="{method}",'
                  f'endpoint="{endpoint}"')
        for le, share in [*zip(LATENCY_BUCKETS, BUCKET_SHARE, strict=True), ("+Inf", 1.0)]:
            lines += [f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                      f"{(t - origin) * rate * share:.2f} {t}\n" for t in stamps]
        lines += [f"http_request_duration_seconds_count{{{labels}}} {(t - origin) * rate:.2f} {t}\n"
                  for t in stamps]
        lines += [f"http_request_duration_seconds_sum{{{labels}}} "
                  f"{(t - origin) * rate * 0.02:.3f} {t}\n" for t in stamps]
    lines.append("# EOF\n")
    return "".join(lines)


def backfill(data_dir: Path, *, days: int, step: int) -> int:
    """TSDB blocks for the `days` before the last 2-hour boundary; returns the samples written.

    promtool re-reads its whole input for every 2-hour block it cuts, so the history goes in as
    one file a day (13 passes over a small file) rather than one file of 30 days (361 passes).
    """
    end = int(time.time()) // 7200 * 7200
    origin = end - days * 86400
    work = data_dir.parent / "backfill"
    work.mkdir(parents=True, exist_ok=True)
    samples = 0
    for day_start in range(origin, end, 86400):
        path = work / f"{day_start}.om"
        text = _openmetrics(day_start, min(day_start + 86400, end), step=step, origin=origin)
        path.write_text(text)
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(path),
                        str(data_dir)], check=True, capture_output=True)
        samples += text.count("\n") - 3  # less the two TYPE lines and EOF
    shutil.rmtree(work)
    return samples


@contextmanager
def prometheus_with_history(engine_port: int, *, days: int, step: int) -> Iterator[str]:
    """Prometheus with the shipped rules, 35 days' retention (as deployed), the backfill loaded."""
    base = Path(tempfile.mkdtemp(prefix="bench-prom-"))
    process = None
    try:
        samples = backfill(base / "data", days=days, step=step)
        config = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
            "rule_files": [str(p) for p in sorted((ROOT / "prometheus" / "rules").glob("*.yml"))],
            "scrape_configs": [{"job_name": "billing-engine",
                                "static_configs": [{"targets": [f"127.0.0.1:{engine_port}"]}]}],
        }
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        with open(base / "prometheus.log", "ab") as log:
            process = subprocess.Popen(
                ["prometheus", f"--config.file={base / 'prometheus.yml'}",
                 f"--storage.tsdb.path={base / 'data'}", "--storage.tsdb.retention.time=35d",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200,
                 timeout=60, what="prometheus to be ready")
        print(f"console: Prometheus loaded {samples:,} backfilled samples ({days} days, "
              f"one a minute)", flush=True)
        yield url
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(20)
        shutil.rmtree(base, ignore_errors=True)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    return list(body["data"]["result"])


def _compactions(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("prometheus_tsdb_compactions_total"))
    return float(line.split()[-1])


def settle(prometheus_url: str, engine_url: str, org_id: str) -> None:
    """Live traffic until the 5-minute and 30-day rules have values and compaction is done."""
    last = [-1.0]

    def ready() -> bool:
        for _ in range(20):
            httpx.get(f"{engine_url}/v1/billing", params={"org_id": org_id}, timeout=5,
                      headers=STAFF)
        httpx.get(f"{engine_url}/v1/billing", params={"org_id": "org_missing"}, timeout=5,
                  headers=STAFF)
        time.sleep(1)
        compactions, previous = _compactions(prometheus_url), last[0]
        last[0] = compactions
        return (compactions == previous
                and bool(_query(prometheus_url, "slo:http_availability_burn_rate:rate5m"))
                and bool(_query(prometheus_url, "slo:http_availability_error_ratio:rate30d")))

    wait_for(ready, timeout=180, interval=2, what="SLO rules over live and backfilled data")


# -- measuring ------------------------------------------------------------------------------------


def _timed(app: AppTest) -> float:
    started = time.perf_counter()
    app.run(timeout=60)
    elapsed = time.perf_counter() - started
    assert not app.exception, [e.value for e in app.exception]
    return elapsed


def _console_app(user: dict[str, Any]) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.user = dict(user)
    return app


def _customer_app(query: str, user: dict[str, Any]) -> AppTest:
    app = _console_app(user)
    app.switch_page("views/customers.py")
    app.session_state["customer_query"] = query
    return app


def _unexpected_errors(app: AppTest, alerts_url: str) -> list[str]:
    """Error banners, less the one naming the alerts API, which the bench does not run."""
    return [e.value for e in app.error if not ("alerts API" in e.value and alerts_url in e.value)]


def _check_customer(app: AppTest, used: str, alerts_url: str) -> None:
    errors = _unexpected_errors(app, alerts_url)
    assert not errors, errors
    metrics = {m.label: m.value for m in app.metric}
    assert metrics.get("Used") == used, f"card shows {metrics}, engine says Used {used}"


def _check_overview(app: AppTest, alerts_url: str) -> str:
    errors = _unexpected_errors(app, alerts_url)
    assert not errors, errors
    availability = {m.label: m.value for m in app.metric}[AVAILABILITY]
    assert availability.endswith("%"), f"overview shows availability {availability!r}"
    return str(availability)


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"median_ms": statistics.median(ms), "p95_ms": _percentile(ms, 95), "runs": len(ms)}


def measure(*, runs: int, org_id: str, used: str, alerts_url: str,
            user: dict[str, Any]) -> dict[str, Any]:
    """Interleaved, so load from anything else on the machine falls on every page alike."""
    times: dict[str, list[float]] = {k: [] for k in (
        "reference_cold", "reference_warm", "customer_cold", "customer_warm", "overview_cold",
        "overview_warm")}
    shown: dict[str, str] = {}

    def check(name: str, app: AppTest) -> None:
        """Every measured run rendered the page with its data, not an error or a blank."""
        if name == "customer":
            _check_customer(app, used, alerts_url)
        elif name == "overview":
            shown["availability"] = _check_overview(app, alerts_url)

    pages: dict[str, Callable[[], AppTest]] = {
        "customer": lambda: _customer_app(CUSTOMER_NAME[:12], user),
        "overview": lambda: _console_app(user),
        "reference": lambda: AppTest.from_string(TRIVIAL_PAGE, default_timeout=60),
    }
    for i in range(runs + 1):  # the first round warms imports and connections, not counted
        keep = i > 0
        for name, build in pages.items():
            app = build()
            st.cache_data.clear()
            cold = _timed(app)
            check(name, app)
            warm = _timed(app)
            check(name, app)
            if keep:
                times[f"{name}_cold"].append(cold)
                times[f"{name}_warm"].append(warm)
    result: dict[str, Any] = {k: _summary(v) for k, v in times.items()}
    result["availability_shown"] = shown["availability"]
    result["org_id"] = org_id
    return result


@contextmanager
def _console_env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def bench_console(url: str, *, runs: int = 20, orgs: int = 10_000, days: int = 30,
                  instances: int = 20) -> dict[str, Any]:
    """`url`: a migrated, empty database of the bench's own."""
    seed_orgs(url, orgs=orgs, days=days)
    # The console reads as a signed-in support agent, as people use it.
    oidc = OidcProvider().start()
    oidc_env = {"OIDC_ISSUER_URL": oidc.issuer, "OIDC_CLIENT_ID": CONSOLE_CLIENT_ID}
    engine = EngineProcess(url, admin_key=ADMIN, workers=2,
                           extra_env={"LOG_LEVEL": "WARNING", **oidc_env}).start()
    try:
        user = console_user(oidc.issuer, "support@example.com", client_id=CONSOLE_CLIENT_ID)
        org_id = seed_customer(engine.url, url, days=days, instances=instances)
        billing = httpx.get(f"{engine.url}/v1/billing", params={"org_id": org_id},
                            headers=STAFF).json()
        used = f"{billing['usage']['used_hours']:.2f} h"
        with prometheus_with_history(engine.port, days=days, step=60) as prometheus_url:
            settle(prometheus_url, engine.url, org_id)
            alerts_url = f"http://127.0.0.1:{free_port()}"  # no alerts process: Prometheus' own
            load_before = os.getloadavg()[0]
            # Outside `streamlit run`, every st.cache_data.clear() warns "no runtime": quiet.
            logging.disable(logging.WARNING)
            try:
                with _console_env(ENGINE_URL=engine.url, PROMETHEUS_URL=prometheus_url,
                                  ALERTS_URL=alerts_url, **console_sign_in_env(oidc_env)):
                    result = measure(runs=runs, org_id=org_id, used=used, alerts_url=alerts_url,
                                     user=user)
            finally:
                logging.disable(logging.NOTSET)
            result["load_average"] = [load_before, os.getloadavg()[0]]
    finally:
        engine.stop()
        oidc.stop()
    result["orgs"], result["days"], result["instances"] = orgs, days, instances
    return result


def print_console(result: dict[str, Any]) -> None:
    def line(label: str, key: str, note: str) -> str:
        m, ref = result[key], result["reference_" + key.rsplit("_", 1)[1]]
        ratio = "" if key.startswith("reference") else (
            f"  {m['median_ms'] / ref['median_ms']:5.1f}x reference")
        return (f"console {label:<24} median {m['median_ms']:7.1f} ms  p95 {m['p95_ms']:7.1f} ms"
                f"{ratio}{note}")

    runs = result["reference_cold"]["runs"]
    print(f"console render (AppTest through dashboard/app.py, {runs} runs each; "
          f"{result['orgs']:,} orgs x {result['days']} days in PostgreSQL, {result['days']} days "
          f"in Prometheus; load average {result['load_average'][0]:.1f} -> "
          f"{result['load_average'][1]:.1f})")
    print(line("Customers card, cold", "customer_cold", "  (target < 1000 ms)"))
    print(line("Overview, cold", "overview_cold", "  (target < 2000 ms)"))
    print(line("one-line page, cold", "reference_cold", "  (reference: a new session's run)"))
    print(line("Customers card, warm", "customer_warm", ""))
    print(line("Overview, warm", "overview_warm", ""))
    print(line("one-line page, warm", "reference_warm", "  (reference: a rerun)"))
    print(f"console overview showed availability {result['availability_shown']} over 30 days")


def main() -> int:
    from bench.__main__ import machine  # not at import time: bench.__main__ imports this module
    from billing_engine.db import migrate
    from devstack.servers import postgres_server, scratch_database

    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--orgs", type=int, default=10_000)
    args = parser.parse_args()
    with (postgres_server("BENCH_DATABASE_URL", "TEST_DATABASE_URL") as server_url,
          scratch_database(server_url, prefix="billing_bench", setup=migrate) as url):
        result = bench_console(url, runs=args.runs, orgs=args.orgs)
    print(f"\nmachine: {machine()}")
    print_console(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
