"""End to end, every part real: the engine and `python -m alerts serve` as processes on one
PostgreSQL database, a Prometheus scraping the engine every second, an aiosmtpd server and a
Slack webhook stand-in receiving what the alerts process sends.

The alerts process evaluates the shipped BillingEngineDown rule with its `for` cut from 1m to
2s (so the suite stays fast) and the shipped Watchdog; test_evaluator_live.py and the benchmark
run the shipped rule files as they are.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dashboard.runbooks import find_section, read_runbook
from devstack.processes import EngineProcess, PrometheusServer
from devstack.receivers import ReceivedMail, SlackPost, SlackReceiver, SmtpServer
from devstack.servers import create_scratch_database, drop_database, wait_for
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import (
    SHIPPED_RULES,
    AlertsProcess,
    shipped_rule,
    write_rule_file,
)
from tests.support.builders import engine_org_key

# One worker runs the whole module, so its module-scoped stack is started once.
pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_e2e")]

ONCALL = "oncall@example.com"
RUNBOOK_BASE = "http://127.0.0.1:8501/runbooks"


@pytest.fixture(scope="module")
def stack(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    url = create_scratch_database(pg_server_url, prefix="alerts_e2e")
    engine = EngineProcess(database_url=url).start()
    prometheus = PrometheusServer(targets={"billing-engine": f"127.0.0.1:{engine.port}"},
                                 rule_files=SHIPPED_RULES).start()
    rules = write_rule_file(tmp_path_factory.mktemp("rules") / "e2e.yml", [
        {**shipped_rule("BillingEngineDown"), "for": "2s"},
        shipped_rule("Watchdog"),
    ])
    smtp = SmtpServer().start()
    slack = SlackReceiver().start()
    env = {
        "DATABASE_URL": url, "PROMETHEUS_URL": prometheus.url, "RULE_FILES": str(rules),
        "EVALUATION_INTERVAL_SECONDS": "0.5", "BUDGET_INTERVAL_SECONDS": "0.5",
        "OUTBOX_INTERVAL_SECONDS": "0.2", "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port),
        "ONCALL_EMAIL": ONCALL, "SLACK_WEBHOOK_URL": slack.url,
        "RUNBOOK_BASE_URL": RUNBOOK_BASE,
    }
    wait_for(lambda: prometheus.get("/api/v1/query", query="up == 1")["result"], timeout=30,
             what="a first scrape of the engine")
    try:
        yield {"url": url, "engine": engine, "prometheus": prometheus, "smtp": smtp,
               "slack": slack, "env": env}
    finally:
        slack.stop()
        smtp.stop()
        prometheus.destroy()
        engine.stop()
        drop_database(url)


def emails_about(smtp: SmtpServer, text: str) -> list[ReceivedMail]:
    return [m for m in smtp.messages if text in m.subject]


def posts_about(slack: SlackPost | SlackReceiver, text: str) -> list[SlackPost]:
    assert isinstance(slack, SlackReceiver)
    return [p for p in slack.posts if text in p.json.get("text", "")]


def runbook_link_works(url: str) -> bool:
    """The link opens the console's runbook page at an existing section."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == RUNBOOK_BASE
    query = parse_qs(parts.query)
    markdown = read_runbook(query["runbook"][0])
    return markdown is not None and find_section(markdown, query["section"][0]) is not None


def slack_button(post: SlackPost, action: str) -> str:
    for block in post.json["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action:
                return str(element["url"])
    raise AssertionError(f"no {action} button in {post.json}")


def test_engine_down_pages_both_channels_with_a_working_runbook_link_then_resolves(stack):
    smtp, slack, engine = stack["smtp"], stack["slack"], stack["engine"]
    alerts = AlertsProcess(env=stack["env"]).start()
    try:
        wait_for(lambda: posts_about(slack, "Watchdog"), timeout=20, what="the Watchdog")
        engine.stop()
        try:
            [page] = wait_for(lambda: emails_about(smtp, "FIRING BillingEngineDown"),
                              timeout=30, what="the page by email")
            [post] = wait_for(lambda: [p for p in posts_about(slack, "BillingEngineDown")
                                       if "FIRING" in p.json["text"]],
                              timeout=10, what="the page in Slack")
        finally:
            engine.start()
        assert page.rcpt_tos == (ONCALL,) and "[P0]" in page.subject
        link = (f"{RUNBOOK_BASE}?runbook=billing-engine&section=billingenginedown")
        assert link in (page.text or "") and link.replace("&", "&amp;") in (page.html or "")
        assert slack_button(post, "runbook") == link
        assert runbook_link_works(link)

        wait_for(lambda: emails_about(smtp, "RESOLVED] BillingEngineDown"), timeout=30,
                 what="the resolved email")
        wait_for(lambda: [p for p in posts_about(slack, "BillingEngineDown")
                          if "RESOLVED" in p.json["text"]], timeout=10,
                 what="the resolved Slack post")
        time.sleep(1.5)  # a few more rounds: nothing is sent twice
        to_oncall = [m for m in emails_about(smtp, "BillingEngineDown") if m.rcpt_tos == (ONCALL,)]
        assert len(to_oncall) == 2
        # The on-call policy's primary was told personally too, then told it resolved.
        to_primary = [m for m in emails_about(smtp, "BillingEngineDown") if m.rcpt_tos != (ONCALL,)]
        assert len(to_primary) == 2 and "you are primary on call" in to_primary[0].subject
        posts = posts_about(slack, "BillingEngineDown")
        pages = [p for p in posts if "on call" not in p.json["text"]]
        assert len(pages) == 2  # firing and resolved
        assert len(posts) - len(pages) == 2  # the primary told in the channel, then resolved
        assert len(posts_about(slack, "Watchdog")) == 1

        listed = httpx.get(f"{alerts.url}/v1/alerts", params={"state": "recent"},
                           headers={"X-Admin-Key": "test-admin-key-0123456789"}).json()
        down = next(a for a in listed["alerts"] if a["alertname"] == "BillingEngineDown")
        assert down["state"] == "resolved"
        assert down["delivery"]["email"]["status"] == "sent"
        assert down["delivery"]["slack"]["status"] == "sent"
    finally:
        alerts.stop()


def _month_minutes(count: int) -> list[datetime]:
    """`count` past minutes of the current UTC month (the last ones before now)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now.replace(day=1, hour=0, minute=0)
    minutes = [now - timedelta(minutes=k) for k in range(1, count + 1)]
    if minutes[-1] < start:  # the month is too young: the test would straddle two periods
        pytest.fail("run this test later than the first hours of a month")
    return minutes


def _heartbeats(engine: EngineProcess, org: str, instances: int, minutes: int, *,
                prefix: str) -> None:
    stamps = _month_minutes(minutes)
    batch = [{"instance_id": f"{org}-{prefix}{i}", "org_id": org, "ts": ts.isoformat(),
              "state": "running"} for i in range(instances) for ts in stamps]
    response = httpx.post(f"{engine.url}/v1/heartbeats", json={"heartbeats": batch}, timeout=30,
                          headers=engine_org_key(engine.url, engine.admin_key, org))
    assert response.status_code == 200, response.text


def test_an_org_past_50_and_90_percent_gets_exactly_two_emails_even_across_a_restart(stack):
    smtp, engine = stack["smtp"], stack["engine"]
    org = f"org_{uuid.uuid4().hex[:8]}"
    billing = f"billing@{org}.example"
    created = httpx.put(f"{engine.url}/admin/orgs/{org}", headers={"X-Admin-Key":
                                                                    engine.admin_key},
                        json={"name": "Budget Test Co", "email": billing, "plan": "free"})
    assert created.status_code in (200, 201), created.text
    alerts = AlertsProcess(env=stack["env"]).start()
    try:
        def customer_mail() -> list[ReceivedMail]:
            return [m for m in smtp.messages if m.rcpt_tos == (billing,)]

        _heartbeats(engine, org, instances=3, minutes=110, prefix="a")  # 330 of 600: 55 %
        [first] = wait_for(customer_mail, timeout=20, what="the 50 % email")
        assert "50" in first.subject
        _heartbeats(engine, org, instances=1, minutes=220, prefix="b")  # 550: 91.7 %
        wait_for(lambda: len(customer_mail()) == 2, timeout=20, what="the 90 % email")
        assert "90" in customer_mail()[1].subject

        alerts.stop()
        alerts = AlertsProcess(env=stack["env"]).start()
        rounds = alerts.metric("alert_budget_evaluation_duration_seconds_count") or 0.0
        wait_for(lambda: (alerts.metric("alert_budget_evaluation_duration_seconds_count")
                          or 0) >= rounds + 4, timeout=20, what="budget rounds after restart")
        time.sleep(0.5)
        assert len(customer_mail()) == 2
        history = httpx.get(f"{alerts.url}/debug/alerts/{org}",
                            headers={"X-Admin-Key": "test-admin-key-0123456789"}).json()
        assert [(n["threshold"], n["email"]) for n in history["budget_alerts"]] == [
            (50, billing), (90, billing)]
    finally:
        alerts.stop()


def test_two_alerts_processes_on_one_postgres_one_leads_no_doubles_and_failover(stack):
    smtp, slack, engine = stack["smtp"], stack["slack"], stack["engine"]
    smtp.clear()
    slack.clear()
    first = AlertsProcess(env=stack["env"]).start()
    second = AlertsProcess(env=stack["env"]).start()
    try:
        def leaders() -> list[float | None]:
            return [p.metric("alert_leader") for p in (first, second)]

        wait_for(lambda: sorted(leaders()) == [0.0, 1.0], timeout=20, what="exactly one leader")
        leader, standby = (first, second) if leaders()[0] == 1.0 else (second, first)

        def watchdog_delivered() -> bool:
            listed = httpx.get(f"{leader.url}/v1/alerts", headers={
                "X-Admin-Key": "test-admin-key-0123456789"}).json()["alerts"]
            return any(a["alertname"] == "Watchdog"
                       and a["delivery"].get("slack", {}).get("status") == "sent"
                       for a in listed)

        wait_for(watchdog_delivered, timeout=20, what="the Watchdog delivered (now or before)")
        slack.clear()
        time.sleep(2)  # both run several rounds
        assert sorted(leaders()) == [0.0, 1.0]
        assert (standby.metric("alert_evaluations_total") or 0) == 0

        leader.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: standby.metric("alert_leader") == 1.0, timeout=30,
                 what="the standby to take over")
        takeover = time.monotonic() - killed_at
        assert takeover < 30

        engine.stop()
        try:
            wait_for(lambda: emails_about(smtp, "FIRING BillingEngineDown"), timeout=30,
                     what="a page from the new leader")
            wait_for(lambda: posts_about(slack, "BillingEngineDown"), timeout=10,
                     what="the Slack page from the new leader")
        finally:
            engine.start()
        wait_for(lambda: len(emails_about(smtp, "BillingEngineDown")) == 2, timeout=30,
                 what="the resolved email")
        time.sleep(1.5)
        assert len(emails_about(smtp, "FIRING BillingEngineDown")) == 1
        assert len([p for p in posts_about(slack, "BillingEngineDown")
                    if "FIRING" in p.json["text"]]) == 1
        # The Watchdog was delivered before the failover: neither replica sends it again.
        assert posts_about(slack, "Watchdog") == []
    finally:
        first.stop()
        second.stop()


def test_the_process_log_never_shows_secrets(stack, tmp_path: Path):
    env = {**stack["env"], "SMTP_USERNAME": "alerts", "SMTP_PASSWORD": "smtp-secret-9f8e7d"}
    alerts = AlertsProcess(env=env).start()
    try:
        httpx.post(f"{alerts.url}/admin/test-slack",
                   headers={"X-Admin-Key": "test-admin-key-0123456789"})
    finally:
        alerts.stop()
    log = alerts.log()
    assert "serving" in log
    for secret in ("smtp-secret-9f8e7d", "test-admin-key-0123456789",
                   SlackReceiver.webhook_path):
        assert secret not in log


def test_embedded_mode_engine_and_alerts_share_one_sqlite_file(tmp_path: Path):
    """`make run`'s shape: both processes on one SQLite file, no Prometheus needed for budgets."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    engine = EngineProcess(database_url=url).start()
    smtp = SmtpServer().start()
    alerts = AlertsProcess(env={
        "DATABASE_URL": url, "PROMETHEUS_URL": "http://127.0.0.1:9", "RULE_FILES":
        str(write_rule_file(tmp_path / "none.yml", [shipped_rule("Watchdog")])),
        "BUDGET_INTERVAL_SECONDS": "0.5", "OUTBOX_INTERVAL_SECONDS": "0.2",
        "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port)})
    try:
        org = "org_embedded"
        httpx.put(f"{engine.url}/admin/orgs/{org}", headers={"X-Admin-Key": engine.admin_key},
                  json={"name": "Embedded", "email": "billing@embedded.example", "plan": "free"})
        alerts.start()
        assert alerts.metric("alert_leader") == 1.0
        _heartbeats(engine, org, instances=1, minutes=320, prefix="e")  # 53 % of 10 h
        [mail] = wait_for(lambda: [m for m in smtp.messages
                                   if m.rcpt_tos == ("billing@embedded.example",)],
                          timeout=20, what="the budget email")
        assert "50" in mail.subject
        wait_for(lambda: alerts.metric("alert_prometheus_up") == 0.0, timeout=20,
                 what="the unreachable Prometheus to show")
        assert httpx.get(f"{engine.url}/ready").status_code == 200
    finally:
        alerts.stop()
        smtp.stop()
        engine.stop()
