"""Rule evaluation against a real Prometheus scraping a real engine."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_from_json
from alerts.delivery.routes_file import load_routes
from alerts.observability.metrics import AlertsMetrics
from alerts.process import utc_now
from alerts.rules.evaluator import Evaluator
from alerts.rules.files import load_rules
from alerts.rules.model import AlertStatus
from alerts.rules.prometheus import PrometheusClient
from alerts.store.repository import AlertStore
from devstack.processes import EngineProcess, PrometheusServer
from devstack.servers import wait_for
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import SHIPPED_RULES, shipped_rule, write_rule_file

# One worker runs the whole module, so its module-scoped stack is started once.
pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_evaluator_live")]

ROUTES_ENV = {"ONCALL_EMAIL": "oncall@example.com",
              "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T/B/never-called"}


@pytest.fixture(scope="module")
def engine_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    db = tmp_path_factory.mktemp("engine") / "billing.db"
    engine = EngineProcess(database_url=f"sqlite:///{db}").start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def prometheus(engine_process: EngineProcess) -> Iterator[PrometheusServer]:
    """Scrapes the engine every second and loads the shipped rules (the SLO alerts read their
    recording rules)."""
    server = PrometheusServer(targets={"billing-engine": f"127.0.0.1:{engine_process.port}"},
                             rule_files=SHIPPED_RULES).start()
    wait_for(lambda: server.get("/api/v1/query", query='up{job="billing-engine"} == 1')["result"],
             timeout=30, what="a first scrape of the engine")
    yield server
    server.destroy()


def evaluator_for(store: AlertStore, prometheus_url: str, rules, metrics: AlertsMetrics
                  ) -> Evaluator:
    return Evaluator(store=store, prometheus=PrometheusClient(prometheus_url, timeout_seconds=2),
                     rules=rules, routing=load_routes(environ=ROUTES_ENV),
                     links=LinkSettings(), metrics=metrics, clock=utc_now)


def fast_engine_down(tmp_path: Path) -> list:
    """The shipped BillingEngineDown rule, its `for` cut from 1m to 2s."""
    rule = {**shipped_rule("BillingEngineDown"), "for": "2s"}
    return load_rules([write_rule_file(tmp_path / "fast.yml", [rule])])


def test_every_shipped_rule_evaluates_against_a_real_prometheus(prometheus, store: AlertStore,
                                                                alerts_metrics):
    rules = load_rules(SHIPPED_RULES)
    evaluator = evaluator_for(store, prometheus.url, rules, alerts_metrics)
    report = evaluator.run_round()
    assert report.failed == 0 and report.evaluated == len(rules)
    assert alerts_metrics.registry.get_sample_value("alert_prometheus_up") == 1
    states = {a.alertname: a.status for a in store.load_alerts()}
    assert states["Watchdog"] == AlertStatus.FIRING
    assert "BillingEngineDown" not in states  # the engine is up
    # the Watchdog (P3) goes to Slack only, once
    keys = store.notification_keys(a.fingerprint for a in store.load_alerts()
                                   if a.alertname == "Watchdog")
    assert [(k.receiver, k.state) for k in keys] == [("oncall-slack", "firing")]
    evaluator.run_round()
    assert len(store.notification_keys(a.fingerprint for a in store.load_alerts())) == 1


def test_engine_down_goes_pending_firing_then_resolved_with_one_message_each_way(
        prometheus, engine_process, store: AlertStore, alerts_metrics, tmp_path):
    evaluator = evaluator_for(store, prometheus.url, fast_engine_down(tmp_path), alerts_metrics)
    engine_process.stop()
    try:
        def status() -> AlertStatus | None:
            evaluator.run_round()
            alerts = store.load_alerts()
            return alerts[0].status if alerts else None

        wait_for(lambda: status() == AlertStatus.PENDING, timeout=20, interval=0.2,
                 what="BillingEngineDown pending")
        wait_for(lambda: status() == AlertStatus.FIRING, timeout=20, interval=0.2,
                 what="BillingEngineDown firing")
    finally:
        engine_process.start()
    wait_for(lambda: status() == AlertStatus.RESOLVED, timeout=30, interval=0.2,
             what="BillingEngineDown resolved")
    [alert] = store.load_alerts()
    assert alert.labels["severity"] == "P0" and alert.labels["instance"].startswith("127.0.0.1:")
    assert f'instance "{alert.labels["instance"]}"' in alert.annotations["description"]
    keys = store.notification_keys([alert.fingerprint])
    assert sorted((k.receiver, k.state) for k in keys) == [
        ("oncall-email", "firing"), ("oncall-email", "resolved"),
        ("oncall-slack", "firing"), ("oncall-slack", "resolved")]
    claimed = store.claim_due(now=utc_now(), worker="t", lease=seconds(60), limit=10)  # noqa: F405
    messages = [message_from_json(item.payload or "") for item in claimed]
    email = next(m for m in messages if m.state == "firing" and m.recipients)
    assert email.recipients == ("oncall@example.com",)
    assert email.runbook_url == ("http://127.0.0.1:8501/runbooks?runbook=billing-engine"
                                 "&section=billingenginedown")
    assert email.severity == "P0" and email.summary == "Billing engine is down"


def test_when_prometheus_is_unreachable_alerts_keep_their_state(
        prometheus, store: AlertStore, alerts_metrics, caplog, tmp_path):
    rule = {"alert": "AlwaysOn", "expr": "vector(1)", "labels": {"severity": "P3"},
            "annotations": {"summary": "on"}}
    rules = load_rules([write_rule_file(tmp_path / "on.yml", [rule])])
    evaluator = evaluator_for(store, prometheus.url, rules, alerts_metrics)
    evaluator.run_round()
    [before] = store.load_alerts()
    assert before.status == AlertStatus.FIRING

    unreachable = evaluator_for(store, "http://127.0.0.1:9", rules, alerts_metrics)
    with caplog.at_level(logging.ERROR, logger="alerts.evaluator"):
        report = unreachable.run_round()
    assert not report.prometheus_up and report.failed == 1
    [after] = store.load_alerts()
    assert after == before  # not resolved, not even touched
    assert alerts_metrics.registry.get_sample_value("alert_prometheus_up") == 0
    assert alerts_metrics.registry.get_sample_value("alert_rule_errors_total") == 1
    assert any("Prometheus cannot be reached" in r.getMessage() for r in caplog.records)

    evaluator.run_round()
    assert alerts_metrics.registry.get_sample_value("alert_prometheus_up") == 1


def test_a_rule_prometheus_refuses_counts_an_error_and_the_others_still_run(
        prometheus, store: AlertStore, alerts_metrics, tmp_path):
    rules = load_rules([write_rule_file(tmp_path / "mixed.yml", [
        {"alert": "Broken", "expr": "sum(rate(http_requests_total[5m]) by", "labels": {}},
        {"alert": "NotAVector", "expr": "scalar(vector(1))", "labels": {}},
        {"alert": "Fine", "expr": "vector(1)", "labels": {"severity": "P3"}},
    ])])
    report = evaluator_for(store, prometheus.url, rules, alerts_metrics).run_round()
    assert (report.evaluated, report.failed) == (1, 2)
    assert alerts_metrics.registry.get_sample_value("alert_rule_errors_total") == 2
    assert [a.alertname for a in store.load_alerts()] == ["Fine"]
