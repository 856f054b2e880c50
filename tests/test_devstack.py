"""devstack, the one place that starts the stack: the lane guard, and how the parts are wired."""

from __future__ import annotations

import pytest

from devstack.processes import EngineProcess, PrometheusServer
from devstack.stack import PARTS, Stack


def test_a_test_without_the_processes_mark_cannot_start_a_process() -> None:
    engine = EngineProcess("sqlite://")
    with pytest.raises(RuntimeError, match="mark it `processes`"):
        engine.start()
    assert engine.process is None


def test_the_parts_are_wired_to_each_other_on_their_ports() -> None:
    stack = Stack("postgresql+psycopg://u@db/billing", admin_key="k" * 24,
                  alerts_env={"EVALUATION_INTERVAL_SECONDS": "1"})
    processes = stack.build()
    assert [p.name for p in processes] == [
        "OIDC provider", "billing engine", "mail sink", "prometheus", "alerts process", "console"]
    assert len({p.port for p in processes}) == len(PARTS)
    assert stack.engine and stack.alerts and stack.console and stack.prometheus
    alerts_env = stack.alerts.environ()
    assert alerts_env["PROMETHEUS_URL"] == stack.prometheus.url
    assert alerts_env["SMTP_PORT"] == str(stack.ports["mailsink"])
    assert alerts_env["ADMIN_API_KEY"] == "k" * 24
    assert alerts_env["EVALUATION_INTERVAL_SECONDS"] == "1"
    assert alerts_env["PORT"] == str(stack.ports["alerts"])
    assert stack.engine.environ()["DATABASE_URL"] == alerts_env["DATABASE_URL"]
    issuer = stack.engine.environ()["OIDC_ISSUER_URL"]
    assert issuer == alerts_env["OIDC_ISSUER_URL"] == stack.url("oidc")
    console_env = stack.console.environ()
    assert (console_env["ENGINE_URL"], console_env["ALERTS_URL"]) == (
        stack.engine.url, stack.alerts.url)
    # People sign in to the console through the same provider; it has no key of its own.
    assert console_env["OIDC_ISSUER_URL"] == issuer
    assert console_env["OIDC_CLIENT_ID"] == alerts_env["OIDC_CLIENT_ID"]
    assert console_env["CONSOLE_URL"] == stack.console.url
    assert "ENGINE_API_KEY" not in console_env
    in_tests = stack.console_environ()  # what AppTest runs of the app are given
    assert {k: in_tests[k] for k in ("ENGINE_URL", "OIDC_ISSUER_URL", "CONSOLE_URL")} == {
        k: console_env[k] for k in ("ENGINE_URL", "OIDC_ISSUER_URL", "CONSOLE_URL")}
    # The console is scraped on its own metrics port, not the port people open.
    assert console_env["CONSOLE_METRICS_PORT"] == str(stack.console.metrics_port)
    assert stack.prometheus.targets == {
        "billing-engine": f"127.0.0.1:{stack.engine.port}",
        "alerts": f"127.0.0.1:{stack.alerts.port}",
        "console": f"127.0.0.1:{stack.console.metrics_port}"}


def test_a_part_left_out_has_a_url_nothing_answers_on() -> None:
    stack = Stack("sqlite://", parts=("engine", "prometheus"))
    stack.build()
    assert stack.alerts is None and stack.console is None
    assert stack.url("alerts") == f"http://127.0.0.1:{stack.ports['alerts']}"
    assert isinstance(stack.prometheus, PrometheusServer)
    assert list(stack.prometheus.targets) == ["billing-engine"]


def test_an_unknown_part_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="grafana"):
        Stack("sqlite://", parts=("engine", "grafana"))
