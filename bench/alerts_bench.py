"""Alerts benchmarks: page latency and budget evaluation time.

page:   ours against Alertmanager on the same outages (bench_alerts_page): the engine, a
        Prometheus with the shipped rules and intervals sending to Debian's Alertmanager, and
        `python -m alerts serve` evaluating the same rules at its default interval. Seconds from
        the first failed scrape to the BillingEngineDown page (for: 1m, most of it by design).
flood:  a P0 page behind 100,000 queued budget emails and an SMTP relay taking 50 ms a message,
        against the same page with an empty outbox (bench_page_behind_flood).
budget: 100,000 orgs (plans free / base_usage / team in turn) with 30 days of rollups each
        (3,000,000 daily_usage rows) and their period totals, then budget rounds: the first one
        finds and queues every threshold already reached; the steady ones find nothing new,
        which is what every round costs in production. The seeded tables, and the notices and
        outbox after the first round, are vacuumed first, as autovacuum would have by then.

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
        # The period totals the ingest keeps beside the days (what the budget round reads).
        with conn.cursor().copy("COPY period_usage (minutes, first_day, org_id) FROM STDIN"
                                ) as copy:
            for i in range(orgs):
                per_day = (i * 7919) % 400
                if per_day:
                    copy.write_row((per_day * days, date(year, month, 1), f"org{i:06d}"))
    vacuum(url, "orgs", "daily_usage", "period_usage")
    return rows


def vacuum(url: str, *tables: str) -> None:
    """What autovacuum does some time after a bulk write. Without it the steady rounds right
    after the seed or the first round would share the 2 cores with autovacuum working through
    those rows, which a production round, minutes or hours later, does not."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")  # names written here, not input


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
        vacuum(url, "alert_budget_notices", "alert_outbox")
        steady = [evaluator.run_round() for _ in range(steady_rounds)]
        assert all(not r.notices for r in steady), "a steady round found new crossings"
    finally:
        engine.dispose()
    return {
        "orgs": orgs,
        "daily_usage_rows": rows,
        "seed_seconds": round(seed_seconds, 1),
        "first_round_seconds": round(first.seconds, 3),
        "first_round_thresholds": first.notices,
        "first_round_orgs": first.orgs,
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


def bench_alerts_page(url: str, *, outages: int = 3, scrape_interval: str = "15s",
                      evaluation_interval: str = "15s") -> dict[str, Any]:
    """Ours and Alertmanager on the same outages. One Prometheus, with the shipped rules and the
    shipped prometheus.yml's intervals (15 s), scrapes the engine and sends its alerts to Debian's
    Alertmanager (its defaults: group_wait 30 s), which posts them to a webhook; our alerts process
    evaluates the same rules through that Prometheus at its default interval and pages by email
    and Slack. Each outage kills the engine; both latencies are counted from the first failed
    scrape Prometheus stored. The engine then comes back and both resolve before the next one."""
    from devstack.processes import (
        SHIPPED_RULES,
        Alertmanager,
        AlertsProcess,
        EngineProcess,
        PrometheusServer,
    )
    from devstack.receivers import SlackReceiver, SmtpServer
    from devstack.servers import free_port, wait_for

    engine_port = free_port()
    engine = EngineProcess(database_url=url, port=engine_port).start()
    hook = SlackReceiver().start()
    manager = Alertmanager(webhook_url=f"{hook.url}/alertmanager")
    manager.start()
    prometheus = PrometheusServer(targets={"billing-engine": f"127.0.0.1:{engine_port}"},
                                 rule_files=SHIPPED_RULES, scrape_interval=scrape_interval,
                                 evaluation_interval=evaluation_interval,
                                 alertmanager=f"127.0.0.1:{manager.port}")
    prometheus.start()
    smtp, slack = SmtpServer().start(), SlackReceiver().start()
    alerts = AlertsProcess(env={
        "DATABASE_URL": url, "PROMETHEUS_URL": prometheus.url, "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port), "ONCALL_EMAIL": "oncall@bench.example",
        "SLACK_WEBHOOK_URL": slack.url})
    wall = time.time() - time.monotonic()
    ours: list[float] = []
    theirs: list[float] = []

    def firing(posts: list[Any], *, manager_post: bool) -> list[Any]:
        if manager_post:
            return [p for p in posts if p.json.get("status") == "firing" and any(
                a["labels"].get("alertname") == "BillingEngineDown"
                for a in p.json.get("alerts", []))]
        return [p for p in posts if "FIRING" in p.json.get("text", "")
                and "BillingEngineDown" in p.json.get("text", "")]

    try:
        wait_for(lambda: prometheus.get("/api/v1/query", query="up == 1")["result"],
                 timeout=90, what="a first scrape")
        alerts.start()
        wait_for(lambda: [p for p in slack.posts if "Watchdog" in p.json.get("text", "")],
                 timeout=120, what="the Watchdog")
        for _ in range(outages):
            hook.clear(), slack.clear(), smtp.clear()
            stopped = time.time()
            engine.kill()
            [mail] = wait_for(lambda: [m for m in smtp.messages
                                       if "FIRING BillingEngineDown" in m.subject],
                              timeout=300, interval=0.2, what="our page by email")
            [post] = wait_for(lambda: firing(slack.posts, manager_post=False), timeout=60,
                              interval=0.2, what="our page in Slack")
            [theirs_post] = wait_for(lambda: firing(hook.posts, manager_post=True)[:1],
                                     timeout=300, interval=0.2, what="Alertmanager's page")
            failed = wait_for(lambda at=stopped: _first_failed_scrape(prometheus.url, at),
                              timeout=60, what="the failed scrape in Prometheus")
            ours.append(max(mail.received_at, post.received_at) + wall - failed)
            theirs.append(theirs_post.received_at + wall - failed)
            engine = EngineProcess(database_url=url, port=engine_port).start()
            wait_for(lambda: not prometheus.query('ALERTS{alertname="BillingEngineDown"}'),
                     timeout=300, what="the alert to resolve in Prometheus")
            time.sleep(20)  # our process resolves it too before the next outage
            # A fresh Alertmanager for each outage: one that just notified this group waits
            # group_interval (5 min) before its next notification, which would measure that.
            manager.stop()
            manager = Alertmanager(webhook_url=f"{hook.url}/alertmanager", port=manager.port)
            manager.start()
    finally:
        alerts.stop()
        for server in (slack, smtp, hook):
            server.stop()
        prometheus.destroy()
        manager.stop()
        engine.stop()
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    return {
        "outages": outages,
        "scrape_interval": scrape_interval,
        "prometheus_evaluation_interval": evaluation_interval,
        "rule": "BillingEngineDown (shipped: for 1m)",
        "ours_seconds": [round(v, 1) for v in ours],
        "alertmanager_seconds": [round(v, 1) for v in theirs],
        "ours_median_seconds": round(ours_median, 1),
        "alertmanager_median_seconds": round(theirs_median, 1),
        "ratio": round(ours_median / theirs_median, 3),
    }


def bench_page_behind_flood(url: str, *, flood_size: int = 100_000, repeats: int = 5,
                            relay_seconds: float = 0.05) -> dict[str, Any]:
    """A P0 page queued with an empty outbox, then behind `flood_size` budget emails, through an
    SMTP relay that takes `relay_seconds` a message: seconds until it reached the relay and
    Slack, median of `repeats`, and the ratio."""
    from alerts.delivery.message import Message
    from alerts.process import build_process
    from alerts.settings import Settings
    from devstack.pages import flood, time_to_page
    from devstack.receivers import SlackReceiver, SmtpServer

    migrate_alerts(url)
    now = datetime.now(UTC)
    page = Message(kind="rule", fingerprint="bench-page", alertname="BillingEngineDown",
                   state="firing", severity="P0", summary="page", description="bench",
                   starts_at=now, labels={"alertname": "BillingEngineDown", "severity": "P0"})
    budget = Message(kind="budget", fingerprint="bench-budget", alertname="BudgetThresholdReached",
                     state="firing", severity="P3", summary="budget", description="90 %",
                     starts_at=now, recipients=("billing@org.example",),
                     labels={"org_id": "org_bench", "threshold": "90", "period": "2026-11"},
                     values={"used_hours": 91.5, "included_hours": 100.0})
    from alerts.delivery.message import message_to_json

    with SmtpServer(data_delay_seconds=relay_seconds) as smtp, SlackReceiver() as slack:
        settings = Settings(database_url=url, environment="test", smtp_host=smtp.host,
                            smtp_port=smtp.port, oncall_email="oncall@example.com",
                            slack_webhook_url=slack.url, prometheus_url="http://127.0.0.1:9",
                            evaluation_interval_seconds=3600, budget_interval_seconds=3600)
        process = build_process(settings, environ={})
        assert process.scheduler is not None
        process.scheduler.start()
        try:
            empty = [time_to_page(process, smtp, slack, page, f"empty {i}")
                     for i in range(repeats)]
            started = time.perf_counter()
            flood(process, message_to_json(budget), count=flood_size)
            queued_in = time.perf_counter() - started
            time.sleep(1)
            before = len(smtp.messages)
            flooded = [time_to_page(process, smtp, slack, page, f"flood {i}")
                       for i in range(repeats)]
            bulk_sent = len(smtp.messages) - before - repeats
            waiting = process.store.outbox_stats(now=datetime.now(UTC))[0]
        finally:
            process.close()
    return {
        "flood": flood_size, "relay_ms": relay_seconds * 1000, "repeats": repeats,
        "flood_queued_seconds": round(queued_in, 2),
        "empty_median_seconds": round(statistics.median(empty), 3),
        "flood_median_seconds": round(statistics.median(flooded), 3),
        "ratio": round(statistics.median(flooded) / statistics.median(empty), 2),
        "bulk_sent_meanwhile": bulk_sent, "still_waiting": waiting,
    }


# -- output ------------------------------------------------------------------------------------


def print_alerts(results: dict[str, Any]) -> None:
    page, budget = results.get("alerts_page"), results.get("alerts_budget")
    flood = results.get("alerts_flood")
    if page:
        print(f"alerts  page latency  ours {page['ours_median_seconds']:.1f} s  Alertmanager "
              f"{page['alertmanager_median_seconds']:.1f} s  ratio {page['ratio']:.2f}  "
              f"(median of {page['outages']} outages from the first failed scrape; "
              f"{page['rule']}, scrape and Prometheus evaluation {page['scrape_interval']}; "
              f"target: ours <= for + 5 s = 65 s)")
        print(f"alerts  page latency  each outage: ours {page['ours_seconds']}, Alertmanager "
              f"{page['alertmanager_seconds']}")
    if flood:
        print(f"alerts  page behind a flood  {flood['flood_median_seconds']:.3f} s with "
              f"{flood['flood']:,} budget emails queued, {flood['empty_median_seconds']:.3f} s "
              f"with none  ratio {flood['ratio']:.2f}  (relay {flood['relay_ms']:.0f} ms a "
              f"message; {flood['bulk_sent_meanwhile']:,} budget emails sent meanwhile; "
              f"target: within 5 s of the empty queue)")
    if budget:
        print(f"alerts  budget round  steady {budget['steady_round_median_seconds']:.3f} s "
              f"(max {budget['steady_round_max_seconds']:.3f} s) for {budget['orgs']:,} orgs, "
              f"{budget['daily_usage_rows']:,} rollup rows  (target: < 2 s)")
        print(f"alerts  budget round  first {budget['first_round_seconds']:.3f} s: "
              f"{budget['first_round_thresholds']:,} thresholds reached by "
              f"{budget['first_round_orgs']:,} orgs, told in "
              f"{budget['first_round_messages']:,} messages (one email per org naming its "
              f"highest, one Slack digest)")


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
            runs.append(("alerts_flood", bench_page_behind_flood))
        for name, run in runs:
            with scratch_database(server_url, prefix="alerts_bench", setup=migrate_engine) as url:
                results[name] = run(url)
    print_alerts(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
