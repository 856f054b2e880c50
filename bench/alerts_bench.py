"""Alerts benchmarks: page latency and budget evaluation time.

page:   the engine, a Prometheus scraping it every 5 s with the shipped rules, and
        `python -m alerts serve` with the shipped rule files and its default evaluation interval
        (15 s), delivering to a real aiosmtpd server and a Slack webhook stand-in. We stop the
        engine and measure the seconds from the first failed scrape (the first `up == 0` sample
        Prometheus stored) to the BillingEngineDown page arriving at each receiver. The rule's
        `for: 1m` is most of it, by design.
budget: 100,000 orgs (plans free / base_usage / team in turn) with 30 days of rollups each
        (3,000,000 daily_usage rows), then budget rounds: the first one finds and queues every
        threshold already reached; the steady ones find nothing new, which is what every round
        costs in production.

Run alone: `python -m bench.alerts_bench` (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else a
throwaway PostgreSQL). From bench/__main__.py: call `bench_alerts_page(url)` and
`bench_alerts_budget(url, orgs=...)` on a migrated scratch database each, and
`print_alerts(results)`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from alerts.budget.evaluator import BudgetEvaluator
from alerts.delivery.links import LinkSettings
from alerts.delivery.routes_file import load_routes
from alerts.observability.metrics import AlertsMetrics
from alerts.store.database import create_alerts_engine
from alerts.store.migrate import migrate as migrate_alerts
from alerts.store.repository import AlertStore
from billing_core.catalogue import DEFAULT_PLANS_FILE, load_plans
from billing_engine.db import migrate as migrate_engine

ROOT = Path(__file__).resolve().parent.parent
PLANS = ("free", "base_usage", "team")


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# -- budget ------------------------------------------------------------------------------------


def seed_budget(url: str, *, orgs: int, days: int = 30, year: int = 2026, month: int = 11
                ) -> int:
    """`orgs` orgs with `days` days of rollups each, by COPY. Returns the rows written."""
    now = datetime(year, month, 1, tzinfo=UTC)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        with conn.cursor().copy(
                "COPY orgs (id, name, billing_email, plan, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(orgs):
                copy.write_row((f"org{i:06d}", f"Org {i}", f"billing@org{i}.example",
                                PLANS[i % 3], now, now))
        rows = 0
        with conn.cursor().copy("COPY daily_usage (org_id, day, minutes) FROM STDIN") as copy:
            for i in range(orgs):
                per_day = (i * 7919) % 400  # 0 to 399 minutes a day: many orgs cross, not all
                if per_day == 0:
                    continue
                for d in range(1, days + 1):
                    copy.write_row((f"org{i:06d}", date(year, month, d), per_day))
                    rows += 1
        conn.execute("ANALYZE orgs")
        conn.execute("ANALYZE daily_usage")
    return rows


def bench_alerts_budget(url: str, *, orgs: int = 100_000, steady_rounds: int = 5
                        ) -> dict[str, float]:
    migrate_alerts(url)
    started = time.perf_counter()
    rows = seed_budget(url, orgs=orgs)
    seed_seconds = time.perf_counter() - started
    engine = create_alerts_engine(url)
    try:
        at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        evaluator = BudgetEvaluator(
            store=AlertStore(engine), catalog=load_plans(DEFAULT_PLANS_FILE),
            routing=load_routes(environ={"ONCALL_EMAIL": "oncall@bench.example",
                                         "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/bench"}),
            links=LinkSettings(), metrics=AlertsMetrics(), clock=lambda: at)
        first = evaluator.run_round()
        steady = [evaluator.run_round() for _ in range(steady_rounds)]
        assert all(not r.crossings for r in steady), "a steady round found new crossings"
    finally:
        engine.dispose()
    return {
        "orgs": orgs,
        "daily_usage_rows": rows,
        "seed_seconds": round(seed_seconds, 1),
        "first_round_seconds": round(first.seconds, 3),
        "first_round_crossings": len(first.crossings),
        "first_round_messages": first.queued,
        "steady_round_median_seconds": round(statistics.median(r.seconds for r in steady), 3),
        "steady_round_max_seconds": round(max(r.seconds for r in steady), 3),
    }


# -- page latency ------------------------------------------------------------------------------


def _first_failed_scrape(prometheus_url: str, after: float) -> float | None:
    """Wall time of the first `up == 0` sample of the engine stored after `after`."""
    body = httpx.get(f"{prometheus_url}/api/v1/query",
                     params={"query": 'up{job="billing-engine"}[5m]'}, timeout=10).json()
    for series in body["data"]["result"]:
        for ts, value in series["values"]:
            if float(ts) >= after - 10 and value == "0":
                return float(ts)
    return None


def bench_alerts_page(url: str, *, scrape_interval: str = "5s",
                      evaluation_interval: str | None = None) -> dict[str, float | str]:
    from devstack.processes import SHIPPED_RULES, AlertsProcess, EngineProcess, PrometheusServer
    from devstack.receivers import SlackReceiver, SmtpServer
    from devstack.servers import wait_for

    engine = EngineProcess(database_url=url).start()
    prometheus = PrometheusServer(targets={"billing-engine": f"127.0.0.1:{engine.port}"},
                                 rule_files=SHIPPED_RULES, scrape_interval=scrape_interval)
    prometheus.start()
    smtp, slack = SmtpServer().start(), SlackReceiver().start()
    env = {"DATABASE_URL": url, "PROMETHEUS_URL": prometheus.url,
           "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port),
           "ONCALL_EMAIL": "oncall@bench.example", "SLACK_WEBHOOK_URL": slack.url}
    if evaluation_interval is not None:
        env["EVALUATION_INTERVAL_SECONDS"] = evaluation_interval
    alerts = AlertsProcess(env=env)
    monotonic_to_wall = time.time() - time.monotonic()
    try:
        wait_for(lambda: prometheus.get("/api/v1/query", query="up == 1")["result"],
                 timeout=60, what="a first scrape")
        alerts.start()
        # steady state: the process leads and has sent the Watchdog
        wait_for(lambda: [p for p in slack.posts if "Watchdog" in p.json.get("text", "")],
                 timeout=90, what="the Watchdog")
        stopped = time.time()
        engine.kill()

        def page_mail() -> list[Any]:
            return [m for m in smtp.messages if "FIRING BillingEngineDown" in m.subject]

        def page_post() -> list[Any]:
            return [p for p in slack.posts if "FIRING" in p.json.get("text", "")
                    and "BillingEngineDown" in p.json.get("text", "")]

        [mail] = wait_for(page_mail, timeout=240, interval=0.2, what="the page by email")
        [post] = wait_for(page_post, timeout=30, interval=0.2, what="the page in Slack")
        failed = wait_for(lambda: _first_failed_scrape(prometheus.url, stopped), timeout=30,
                          what="the failed scrape in Prometheus")
    finally:
        alerts.stop()
        slack.stop()
        smtp.stop()
        prometheus.destroy()
        engine.stop()
    return {
        "scrape_interval": scrape_interval,
        "evaluation_interval": evaluation_interval or "15 (default)",
        "rule": "BillingEngineDown (shipped: for 1m)",
        "email_seconds": round(mail.received_at + monotonic_to_wall - failed, 1),
        "slack_seconds": round(post.received_at + monotonic_to_wall - failed, 1),
    }


# -- output ------------------------------------------------------------------------------------


def print_alerts(results: dict[str, Any]) -> None:
    page, budget = results.get("alerts_page"), results.get("alerts_budget")
    if page:
        print(f"alerts  page latency  email {page['email_seconds']:.1f} s  slack "
              f"{page['slack_seconds']:.1f} s from the first failed scrape  "
              f"({page['rule']}, scrape {page['scrape_interval']}, evaluation every "
              f"{page['evaluation_interval']} s)")
    if budget:
        print(f"alerts  budget round  steady {budget['steady_round_median_seconds']:.3f} s "
              f"(max {budget['steady_round_max_seconds']:.3f} s) for {budget['orgs']:,} orgs, "
              f"{budget['daily_usage_rows']:,} rollup rows  (target: < 2 s)")
        print(f"alerts  budget round  first {budget['first_round_seconds']:.3f} s, queuing "
              f"{budget['first_round_crossings']:,} crossings as "
              f"{budget['first_round_messages']:,} messages")


def main() -> int:
    from devstack.servers import postgres_server, scratch_database

    parser = argparse.ArgumentParser(prog="python -m bench.alerts_bench")
    parser.add_argument("--orgs", type=int, default=100_000)
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument("--skip-budget", action="store_true")
    parser.add_argument("--json", type=Path,
                        default=ROOT / "var" / "bench" / "alerts-results.json")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with postgres_server("BENCH_DATABASE_URL", "TEST_DATABASE_URL") as server_url:
        runs: list[tuple[str, Callable[[str], dict[str, Any]]]] = []
        if not args.skip_budget:
            runs.append(("alerts_budget", lambda u: bench_alerts_budget(u, orgs=args.orgs)))
        if not args.skip_page:
            runs.append(("alerts_page", bench_alerts_page))
        for name, run in runs:
            with scratch_database(server_url, prefix="alerts_bench", setup=migrate_engine) as url:
                results[name] = run(url)
    print_alerts(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
