"""Traces, read as a collector gets them: our processes export OTLP/HTTP protobuf to a real
receiver (tests/support/otlp.py), and one request across two processes is one trace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from devstack.processes import AlertsProcess, EngineProcess, PrometheusServer
from devstack.receivers import WebhookReceiver
from tests.support.otlp import OtlpReceiver

pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_tracing")]
ADMIN = "test-admin-key-0123456789"
SERVER, CLIENT = 2, 3  # the protocol's SpanKind numbers
ROOT = Path(__file__).resolve().parents[1]
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources"


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def engine(otlp: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    database = tmp_path_factory.mktemp("traced") / "billing.db"
    process = EngineProcess(f"sqlite:///{database}", admin_key=ADMIN, extra_env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    process.start()
    yield process
    process.stop()


def console_call(otlp: OtlpReceiver, url: str) -> str:
    """A call made as the console makes its calls: tracing set up by the console's own start
    (dashboard/server.py's configure_tracing), httpx instrumented, in a process of its own.
    Returns the trace id its client span had."""
    script = textwrap.dedent(f"""
        import json, httpx
        from billing_core.tracing import configure_tracing, current_trace_ids
        from opentelemetry import trace
        provider = configure_tracing("console", instrument=("httpx",))
        with trace.get_tracer("test").start_as_current_span("console page"):
            ids = current_trace_ids()
            httpx.put({url!r}, headers={{"X-Admin-Key": {ADMIN!r}}},
                      json={{"name": "Traced", "email": "t@x.example", "plan": "free"}})
        provider.force_flush()
        print(json.dumps(ids))
    """)
    env = {"PATH": "/usr/bin:/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
           "OTEL_TRACES_SAMPLER": "always_on"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, timeout=60,
                          capture_output=True, text=True, check=True)
    return str(json.loads(done.stdout.strip().splitlines()[-1])[0])


def test_one_request_from_the_console_to_the_engine_is_one_trace(
        otlp: OtlpReceiver, engine: EngineProcess) -> None:
    org = f"org_{uuid.uuid4().hex[:8]}"
    trace_id = console_call(otlp, f"{engine.url}/admin/orgs/{org}")

    spans = otlp.wait_for(lambda s: s.trace_id == trace_id and s.service == "billing-engine"
                          and s.kind == SERVER)
    [server] = spans
    client = [s for s in otlp.spans if s.trace_id == trace_id and s.service == "console"
              and s.kind == CLIENT]
    assert client, "the console's client span was not exported"
    # The engine's server span is the child of the console's call: traceparent crossed.
    assert server.parent_span_id == client[0].span_id
    assert server.attributes.get("http.route") == "/admin/orgs/{org_id}"
    # SQL spans of the same request, in the same trace.
    sql = otlp.wait_for(lambda s: s.trace_id == trace_id and s.service == "billing-engine"
                        and s.kind == CLIENT and "sqlite" in str(s.attributes.get("db.system",
                        s.attributes.get("db.system.name", ""))))
    assert sql


def test_the_request_log_line_and_the_latency_exemplar_carry_the_trace_id(
        otlp: OtlpReceiver, engine: EngineProcess) -> None:
    org = f"org_{uuid.uuid4().hex[:8]}"
    trace_id = console_call(otlp, f"{engine.url}/admin/orgs/{org}")
    otlp.wait_for(lambda s: s.trace_id == trace_id and s.service == "billing-engine")

    lines = [json.loads(line) for line in engine.log().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"
                and line.get("trace_id") == trace_id]
    assert requests and requests[0]["endpoint"] == "/admin/orgs/{org_id}"
    assert len(requests[0]["span_id"]) == 16

    openmetrics = httpx.get(f"{engine.url}/metrics", timeout=5, headers={
        "Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert f'# {{trace_id="{trace_id}"}}' in openmetrics.text
    plain = httpx.get(f"{engine.url}/metrics", timeout=5)
    assert "trace_id" not in plain.text  # the classic format has no exemplars


def test_prometheus_stores_the_engines_exemplar_and_grafana_links_it_and_the_log_to_the_trace(
        otlp: OtlpReceiver, engine: EngineProcess) -> None:
    """What a person clicks in Grafana: a dot on the latency panel (an exemplar Prometheus
    stored from its scrape) and a trace id in a log line both lead to the trace, under the names
    Grafana's provisioned data sources look for."""
    sources = {source["uid"]: source for path in sorted(DATASOURCES.glob("*.yml"))
               for source in yaml.safe_load(path.read_text())["datasources"]}
    [destination] = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    [derived] = sources["loki"]["jsonData"]["derivedFields"]
    prometheus = PrometheusServer(targets={"billing-engine": f"127.0.0.1:{engine.port}"},
                                  rule_files=[])
    prometheus.start()
    try:
        org = f"org_{uuid.uuid4().hex[:8]}"
        trace_id = console_call(otlp, f"{engine.url}/admin/orgs/{org}")
        start = time.time() - 60
        deadline = time.monotonic() + 30
        stored: set[str] = set()
        while trace_id not in stored and time.monotonic() < deadline:
            time.sleep(1)
            found = prometheus.get("/api/v1/query_exemplars",
                                   query="http_request_duration_seconds_bucket",
                                   start=str(start), end=str(time.time() + 5))
            stored = {exemplar["labels"].get(destination["name"], "")
                      for series in found for exemplar in series["exemplars"]}
    finally:
        prometheus.stop()
    assert trace_id in stored, stored

    lines = [line for line in engine.log().splitlines() if trace_id in line]
    assert lines and all(re.findall(derived["matcherRegex"], line) == [trace_id]
                         for line in lines)


def test_the_alerts_process_carries_the_trace_to_prometheus(
        otlp: OtlpReceiver, tmp_path: Path) -> None:
    with WebhookReceiver() as prometheus:
        alerts = AlertsProcess(env={
            "DATABASE_URL": f"sqlite:///{tmp_path / 'alerts.db'}",
            "PROMETHEUS_URL": prometheus.url.removesuffix(prometheus.webhook_path),
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_TRACES_SAMPLER": "always_on", "EVALUATION_INTERVAL_SECONDS": "1"})
        alerts.start()
        try:
            [query, *_] = prometheus.wait_for_posts(1, timeout=30)
        finally:
            alerts.stop()
    version, trace_id, parent_id, flags = query.headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    [span] = otlp.wait_for(lambda s: s.span_id == parent_id)
    assert (span.service, span.kind, span.trace_id) == ("alerts", CLIENT, trace_id)


def test_tracing_off_loads_no_sdk_no_instrumentation_and_no_log_hook(tmp_path: Path) -> None:
    # FastAPI imports the OpenTelemetry API and redis-py parts of the SDK on their own; the
    # exporter, the instrumentations and a tracer provider are ours, and stay out while off.
    script = textwrap.dedent("""
        import sys
        from opentelemetry import trace
        from billing_core import logs
        from billing_engine.asgi import app_from_env
        app_from_env()
        import dashboard.server, alerts.cli
        assert logs.trace_ids is None
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        print(sorted(m for m in sys.modules if m.startswith(
            ("opentelemetry.exporter", "opentelemetry.instrumentation"))))
    """)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
           "APP_ENV": "test"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, timeout=60,
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
