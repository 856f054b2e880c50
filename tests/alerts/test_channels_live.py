"""A page through the whole process to a Teams bridge (Alertmanager's webhook) and PagerDuty,
with a real Prometheus evaluating the rule: fired, acknowledged through the API, resolved.

The rule fires two alerts until a set time (`vector(time()) < END`), so the test chooses when
they fire and when they resolve by the round's evaluation time, with no waiting. Everything
else is the process as `python -m alerts` wires it (its evaluator, its lanes, its channels)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.api.app import create_app
from alerts.process import AlertsProcess, build_process
from alerts.settings import Settings
from devstack.processes import PrometheusServer
from devstack.receivers import PagerDutyReceiver, Reply, WebhookReceiver
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY
from tests.support.clock import FrozenClock

pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_channels_live")]

ADMIN = {"X-Admin-Key": ADMIN_KEY}
ROUTING_KEY = "pd0routing0key0for0tests0000001a"
TOKEN = "teams-bridge-token-4d7e"
START = datetime.now(UTC).replace(microsecond=0)
END = START + timedelta(minutes=10)  # the rule's alerts fire until then
RULES = f"""
groups:
  - name: payments
    rules:
      - alert: PaymentGatewayDown
        expr: >-
          (label_replace(vector(time()), "instance", "gw-1:9100", "", "")
           or label_replace(vector(time()), "instance", "gw-2:9100", "", ""))
          < {END.timestamp():.0f}
        labels:
          severity: P1
          service: payments
        annotations:
          summary: Payment gateway {{{{ $labels.instance }}}} is down
          description: "{{{{ $labels.instance }}}} has answered no health check."
          runbook_url: http://localhost:8501/runbooks?runbook=payments&section=paymentgatewaydown
          dashboard_url: http://localhost:3000/d/payments
"""
ROUTES = """
version: 1
receivers:
  teams:
    webhook:
      url: "${TEAMS_URL}"
      bearer_token: "${TEAMS_TOKEN}"
  pager:
    pagerduty:
      routing_key: "${PAGERDUTY_ROUTING_KEY}"
      url: "${PAGERDUTY_URL}"
routes:
  - match: {kind: rule}
    receivers: [teams, pager]
"""


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    server = PrometheusServer(targets={}, rule_files=[]).start()
    yield server
    server.destroy()


@dataclass
class Stack:
    process: AlertsProcess
    api: TestClient
    clock: FrozenClock
    teams: WebhookReceiver
    pagerduty: PagerDutyReceiver

    def round(self, at: datetime) -> None:
        self.clock.now = at
        assert self.process.evaluator is not None
        report = self.process.evaluator.run_round(at=at)
        assert report.failed == 0 and report.prometheus_up

    def drain(self) -> None:
        for worker in (self.process.page_worker, self.process.worker):
            assert worker is not None
            worker.drain()

    def sent(self, channel: str) -> float:
        value = self.process.metrics.registry.get_sample_value(
            "alert_notifications_sent_total", {"channel": channel})
        return value or 0.0


@pytest.fixture
def stack(prometheus: PrometheusServer, alerts_sqlite_url: str, tmp_path: Path
          ) -> Iterator[Stack]:
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "routes.yml").write_text(ROUTES)
    clock = FrozenClock(START)
    with WebhookReceiver() as teams, PagerDutyReceiver() as pagerduty:
        settings = Settings(database_url=alerts_sqlite_url, admin_api_key=ADMIN_KEY,
                            environment="test", prometheus_url=prometheus.url,
                            rule_files=str(tmp_path / "rules.yml"),
                            routes_file=tmp_path / "routes.yml",
                            runbook_base_url="https://console.example.com/runbooks",
                            grafana_url="https://grafana.example.com",
                            console_url="https://console.example.com")
        environ = {"TEAMS_URL": teams.url, "TEAMS_TOKEN": TOKEN,
                   "PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "PAGERDUTY_URL": pagerduty.url}
        process = build_process(settings, environ=environ, clock=clock)
        try:
            with TestClient(create_app(process, run_scheduler=False), headers=ADMIN) as api:
                yield Stack(process, api, clock, teams, pagerduty)
        finally:
            process.close()


def active(stack: Stack) -> dict[str, dict[str, Any]]:
    alerts = stack.api.get("/v1/alerts", params={"state": "recent"}).json()["alerts"]
    return {a["labels"]["instance"]: a for a in alerts}


def test_a_page_is_triggered_acknowledged_through_the_api_and_resolved_in_pagerduty(
        stack: Stack) -> None:
    stack.round(START)
    stack.drain()

    alerts = active(stack)
    gw1, gw2 = alerts["gw-1:9100"]["fingerprint"], alerts["gw-2:9100"]["fingerprint"]
    triggers = stack.pagerduty.wait_for_events(2)
    assert {(e["event_action"], e["dedup_key"]) for e in triggers} == {
        ("trigger", gw1), ("trigger", gw2)}
    assert {e["payload"]["summary"] for e in triggers} == {
        "[P1] PaymentGatewayDown: Payment gateway gw-1:9100 is down",
        "[P1] PaymentGatewayDown: Payment gateway gw-2:9100 is down"}
    assert all(e["payload"]["severity"] == "error" for e in triggers)
    [firing] = stack.teams.wait_for_posts(1)
    assert firing.headers["authorization"] == f"Bearer {TOKEN}"
    body = firing.json
    assert (body["status"], body["receiver"]) == ("firing", "teams")
    assert body["groupKey"] == '{}:{alertname="PaymentGatewayDown"}'
    assert [a["fingerprint"] for a in body["alerts"]] == [gw1, gw2]
    assert [a["annotations"]["description"] for a in body["alerts"]] == [
        "gw-1:9100 has answered no health check.", "gw-2:9100 has answered no health check."]
    assert body["commonLabels"] == {"alertname": "PaymentGatewayDown", "severity": "P1",
                                    "service": "payments"}

    # Someone acknowledges gw-1 in the console (through the API): PagerDuty is told, once.
    stack.clock.advance(minutes=2)
    acked = stack.api.post(f"/v1/alerts/{gw1}/ack")
    assert acked.status_code == 200, acked.text
    stack.round(stack.clock.now)
    stack.drain()
    assert stack.api.post(f"/v1/alerts/{gw1}/ack").status_code == 200  # again: nothing new
    stack.drain()
    [ack] = stack.pagerduty.events[2:]
    assert ack == {"routing_key": ROUTING_KEY, "dedup_key": gw1, "event_action": "acknowledge"}
    assert stack.pagerduty.alert(ROUTING_KEY, gw1).status == "acknowledged"
    assert stack.pagerduty.alert(ROUTING_KEY, gw2).status == "triggered"
    assert len(stack.teams.posts) == 1  # a Teams bridge is not told of acknowledgements
    shown = active(stack)["gw-1:9100"]
    assert shown["delivery"]["pagerduty"] == {**shown["delivery"]["pagerduty"],
                                              "state": "acked", "status": "sent"}

    # The condition clears: both resolve, in PagerDuty and at the bridge.
    stack.round(END + timedelta(seconds=15))
    stack.drain()
    resolves = stack.pagerduty.wait_for_events(5)[3:]
    assert {(e["event_action"], e["dedup_key"]) for e in resolves} == {
        ("resolve", gw1), ("resolve", gw2)}
    assert stack.pagerduty.alert(ROUTING_KEY, gw1).actions == [
        "trigger", "acknowledge", "resolve"]
    assert stack.pagerduty.alert(ROUTING_KEY, gw2).status == "resolved"
    assert len(stack.pagerduty.book.alerts) == 2  # one PagerDuty alert per alert, all along
    resolved = stack.teams.wait_for_posts(2)[1].json
    assert resolved["status"] == "resolved"
    assert resolved["groupKey"] == body["groupKey"]
    assert {a["status"] for a in resolved["alerts"]} == {"resolved"}
    assert all(a["endsAt"] != "0001-01-01T00:00:00Z" for a in resolved["alerts"])
    assert all(p.answered == 202 for p in stack.pagerduty.posts)
    assert (stack.sent("pagerduty"), stack.sent("webhook")) == (3.0, 2.0)


def test_receivers_that_refuse_are_retried_or_given_up_and_no_log_line_holds_a_secret(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    # Answers that echo what they were sent, as some do.
    stack.teams.script(Reply(500, body=f"cannot reach {stack.teams.url} with Bearer {TOKEN}"))
    stack.pagerduty.script(Reply(400, body=json.dumps(
        {"status": "invalid event", "message": f"routing key {ROUTING_KEY} is disabled",
         "errors": [ROUTING_KEY]}), content_type="application/json"))
    caplog.set_level(logging.WARNING, logger="httpx")  # as the process runs it

    with caplog.at_level(logging.DEBUG):
        stack.round(START)
        stack.drain()
        stack.clock.advance(minutes=1)  # past the first retry's backoff
        stack.drain()

    assert [p.answered for p in stack.teams.posts] == [500, 200]
    assert [p.answered for p in stack.pagerduty.posts] == [400]
    [pager] = [d for d in next(iter(active(stack).values()))["deliveries"]
               if d["channel"] == "pagerduty"]
    assert (pager["status"], pager["last_reason"]) == ("failed", "rejected")
    assert "routing key [redacted] is disabled" in pager["last_detail"]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "notification failed for good" in logged and "will retry" in logged
    for secret in (TOKEN, ROUTING_KEY, stack.teams.url):
        assert secret not in logged
        assert secret not in json.dumps(active(stack))
