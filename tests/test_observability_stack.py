"""docker-compose's traces and logs stack, checked by reading it (no Docker here): Jaeger takes
the processes' OTLP, Alloy ships every container's output to Loki under the `service` label the
logs links query, Loki's config is one Loki 3 starts on, and Grafana's data sources link a log
line's and a latency exemplar's trace id to Jaeger. The same links against a real engine and a
real Prometheus are in tests/test_tracing.py."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from alerts.delivery.links import LOKI_DATASOURCE, PROCESSES, logs_url, traces_url
from billing_core import logs, tracing
from tests.support.alloy import AlloySyntaxError, Block, Ref, parse, references, relabel
from tests.support.compose import interpolated, load_compose, read_env_file

ROOT = Path(__file__).resolve().parent.parent
TRACED = ("engine", "alerts", "console")
# The top-level sections of Loki 3's configuration (pkg/loki/loki.go, Config's yaml names).
LOKI_SECTIONS = {
    "target", "auth_enabled", "http_prefix", "ballast_bytes", "server", "internal_server",
    "distributor", "querier", "query_scheduler", "frontend", "query_range", "ruler",
    "ruler_storage", "ingester_client", "ingester", "block_builder", "block_scheduler",
    "pattern_ingester", "index_gateway", "bloom_build", "bloom_gateway", "storage_config",
    "chunk_store_config", "schema_config", "compactor", "compactor_client",
    "compactor_grpc_client", "limits_config", "frontend_worker", "table_manager", "memberlist",
    "kafka_config", "runtime_config", "operational_config", "tracing", "analytics", "profiling",
    "common", "shutdown_delay", "metrics_namespace",
}


def services() -> dict[str, Any]:
    env = {**read_env_file(), "CONSOLE_COOKIE_SECRET": "x" * 40}
    return interpolated(load_compose(), env)["services"]


def alloy() -> list[Block]:
    return parse((ROOT / "alloy" / "config.alloy").read_text())


def component(blocks: list[Block], name: str) -> Block:
    [found] = [block for block in blocks if block.name == name]
    return found


def loki_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "loki" / "loki.yml").read_text())


def datasources() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source
    return found


def published(service: dict[str, Any], inside: int) -> int:
    [port] = [int(p.split(":")[-2]) for p in service.get("ports", [])
              if int(p.split(":")[-1]) == inside]
    return port


def mounted(service: dict[str, Any], target: str) -> str:
    [source] = [v.split(":")[0] for v in service.get("volumes", []) if v.split(":")[1] == target]
    return source


# -- traces -----------------------------------------------------------------------------------


def test_the_processes_send_their_traces_to_jaeger_over_otlp_http():
    stack = services()
    jaeger = stack["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:2.")  # v2 runs all-in-one by default
    for name in TRACED:
        env = stack[name]["environment"]
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        # OTLP/HTTP on Jaeger's 4318, reached by its service name; the SDK adds /v1/traces.
        assert (endpoint.scheme, endpoint.hostname, endpoint.port, endpoint.path) == (
            "http", "jaeger", 4318, ""), name
        # Tracing is on for them (billing_core.tracing reads the same variables).
        assert tracing.tracing_enabled(env), name
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.01", name
    # .env can send them to another collector instead.
    other = {**read_env_file(), "CONSOLE_COOKIE_SECRET": "x" * 40,
             "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com:4318"}
    engine = interpolated(load_compose(), other)["services"]["engine"]["environment"]
    assert engine["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otel.example.com:4318"


def test_the_traces_link_in_alerts_opens_the_published_jaeger_ui():
    stack = services()
    alerts = stack["alerts"]["environment"]
    ui = urlsplit(alerts["TRACES_BASE_URL"])
    assert ui.hostname in {"localhost", "127.0.0.1"}
    assert ui.port == published(stack["jaeger"], 16686)
    link = urlsplit(traces_url("billing-engine", *_window(), base_url=alerts["TRACES_BASE_URL"]))
    assert link.path == "/search" and parse_qs(link.query)["service"] == ["billing-engine"]


def test_jaeger_publishes_its_ui_only_and_checks_its_own_health():
    jaeger = load_compose()["services"]["jaeger"]
    assert [p.split(":")[-1] for p in jaeger["ports"]] == ["16686"]  # OTLP stays inside
    assert "13133/status" in jaeger["healthcheck"]["test"][-1]


# -- logs -------------------------------------------------------------------------------------


def test_the_alloy_config_parses_and_every_reference_names_a_component_it_defines():
    blocks = alloy()
    defined = {f"{block.name}.{block.label}" for block in blocks}
    for block in blocks:
        for attribute in block.attributes.values():
            for path in references(attribute):
                assert any(path.startswith(name + ".") for name in defined), path
    assert component(blocks, "loki.source.docker").attributes["forward_to"] == [
        Ref("loki.write.local.receiver")]


def test_the_alloy_parser_rejects_what_alloy_would():
    for broken in ('loki.write "x" { endpoint { url = "http://a" }',  # unclosed
                   'discovery.docker "x" { host = }',
                   'a.b "x" { c = "one"\n c = "two" }',
                   'host = "outside any block"'):
        with pytest.raises(AlloySyntaxError):
            parse(broken)


def test_alloy_reads_this_projects_containers_through_the_mounted_docker_socket():
    blocks = alloy()
    discovery = component(blocks, "discovery.docker")
    [filter_] = discovery.children("filter")
    project = load_compose()["name"]
    assert filter_.attributes == {"name": "label",
                                  "values": [f"com.docker.compose.project={project}"]}
    socket = urlsplit(discovery.attributes["host"]).path
    assert component(blocks, "loki.source.docker").attributes["host"] == f"unix://{socket}"
    shipper = load_compose()["services"]["alloy"]
    assert mounted(shipper, socket) == "/var/run/docker.sock"
    assert mounted(shipper, "/etc/alloy/config.alloy") == "./alloy/config.alloy"
    assert "ports" not in shipper


@pytest.mark.processes
@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_alloys_healthcheck_asks_its_ready_endpoint(status: int, healthy: bool):
    """The shell line compose runs in Alloy's container, run here against a stand-in that
    answers /-/ready the way Alloy does, on a free port instead of 12345."""
    asked: list[str] = []

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.append(self.path)
            self.send_response(status if self.path == "/-/ready" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    check = load_compose()["services"]["alloy"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "bash", "-c"] and "/127.0.0.1/12345 " in check[3]
    with ThreadingHTTPServer(("127.0.0.1", 0), Ready) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        line = check[3].replace("/12345 ", f"/{server.server_address[1]} ")
        done = subprocess.run(["bash", "-c", line], timeout=10, capture_output=True)
        server.shutdown()
    assert asked == ["/-/ready"]
    assert (done.returncode == 0) == healthy, done


@pytest.mark.parametrize("compose_service", sorted(load_compose()["services"]))
def test_each_containers_logs_get_the_service_label_the_logs_links_query(compose_service: str):
    rules = component(alloy(), "discovery.relabel").children("rule")
    labels = relabel(rules, {
        "__meta_docker_container_label_com_docker_compose_service": compose_service,
        "__meta_docker_container_name": f"/billing-ops-{compose_service}-1",
        "__meta_docker_container_log_stream": "stderr"})
    assert labels is not None
    # Our three processes under the names they trace as and the alerts' links ask for.
    expected = {"engine": "billing-engine"}.get(compose_service, compose_service)
    assert labels["service"] == expected
    assert labels["container"] == f"billing-ops-{compose_service}-1"
    if compose_service in TRACED:
        assert labels["service"] in PROCESSES
        link = logs_url(labels["service"], *_window(), base_url="http://localhost:3000")
        pane = json.loads(parse_qs(urlsplit(link).query)["panes"][0])["a"]
        assert pane["queries"][0]["expr"] == f'{{service="{labels["service"]}"}}'


def test_alloy_pushes_to_the_loki_of_the_compose_file():
    [endpoint] = component(alloy(), "loki.write").children("endpoint")
    url = urlsplit(endpoint.attributes["url"])
    assert (url.hostname, url.path) == ("loki", "/loki/api/v1/push")
    assert url.port == loki_config()["server"]["http_listen_port"]
    assert load_compose()["services"]["alloy"]["depends_on"]["loki"]["condition"] == (
        "service_healthy")


def test_the_loki_config_is_one_loki_3_starts_on():
    config = loki_config()
    assert set(config) <= LOKI_SECTIONS, set(config) - LOKI_SECTIONS
    # Loki 3 accepts structured metadata by default, which it refuses without TSDB and v13.
    newest = max(config["schema_config"]["configs"], key=lambda c: str(c["from"]))
    assert (newest["store"], newest["schema"], newest["object_store"]) == (
        "tsdb", "v13", "filesystem")
    assert newest["index"]["period"] == "24h"
    # Retention needs the compactor, and in Loki 3 a store for delete requests.
    assert config["limits_config"]["retention_period"] == "744h"
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    # Everything it writes is on its volume.
    loki = load_compose()["services"]["loki"]
    assert mounted(loki, "/loki") == "loki-data"
    storage = config["common"]["storage"]["filesystem"]
    for path in (config["common"]["path_prefix"], config["compactor"]["working_directory"],
                 *storage.values()):
        assert path == "/loki" or path.startswith("/loki/"), path
    assert mounted(loki, "/etc/loki/loki.yml") == "./loki/loki.yml"
    assert loki["command"] == ["-config.file=/etc/loki/loki.yml"]
    port = config["server"]["http_listen_port"]
    assert f"127.0.0.1:{port}/ready" in loki["healthcheck"]["test"][-1]
    assert "ports" not in loki  # read through Grafana, which signs people in


def test_the_alerts_process_watches_the_disks_of_prometheus_and_loki():
    alerts = load_compose()["services"]["alerts"]
    watched = dict(pair.split("=") for pair in alerts["environment"]["WATCH_VOLUMES"].split(","))
    assert set(watched) == {"prometheus", "loki"}
    assert mounted(alerts, watched["prometheus"]) == "prometheus-data"
    assert mounted(alerts, watched["loki"]) == "loki-data"
    assert all(v.endswith(":ro") for v in alerts["volumes"])


# -- Grafana ----------------------------------------------------------------------------------


def test_grafana_has_jaeger_and_loki_at_their_compose_addresses():
    sources = datasources()
    assert {uid: s["type"] for uid, s in sources.items()} == {
        "prometheus": "prometheus", "jaeger": "jaeger", "loki": "loki"}
    # The logs links in alerts open Explore on this uid.
    assert {"type": sources["loki"]["type"], "uid": "loki"} == LOKI_DATASOURCE
    assert urlsplit(sources["loki"]["url"]).hostname == "loki"
    assert urlsplit(sources["loki"]["url"]).port == loki_config()["server"]["http_listen_port"]
    assert sources["jaeger"]["url"] == "http://jaeger:16686"
    assert [s for s in sources.values() if s.get("isDefault")] == [sources["prometheus"]]
    grafana = load_compose()["services"]["grafana"]
    assert set(grafana["depends_on"]) >= {"prometheus", "loki", "jaeger"}


def test_a_log_lines_trace_id_links_to_jaeger():
    [field] = datasources()["loki"]["jsonData"]["derivedFields"]
    assert field["datasourceUid"] == "jaeger"
    # `$$` is Grafana's escape for a literal `$` in provisioning files.
    assert field["url"] == "$${__value.raw}"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    line = _log_line(trace_id)
    [found] = re.findall(field["matcherRegex"], line)
    assert found == trace_id
    assert re.findall(field["matcherRegex"], _log_line(None)) == []


def test_a_latency_exemplar_links_to_jaeger_under_the_label_the_engine_uses():
    [destination] = datasources()["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["datasourceUid"] == "jaeger"
    previous = logs.trace_ids
    logs.trace_ids = lambda: ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)
    try:
        exemplar = tracing.exemplar(error=False)
    finally:
        logs.trace_ids = previous
    assert exemplar is not None and list(exemplar) == [destination["name"]]


def test_spans_link_to_the_logs_of_their_service():
    jaeger = datasources()["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert jaeger["datasourceUid"] == "loki"
    assert jaeger["tags"] == [{"key": "service.name", "value": "service"}]


def test_the_latency_panel_shows_exemplars():
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / "billing-overview.json").read_text())
    [panel] = [p for p in dashboard["panels"] if p.get("title") == "Latency p50 / p95 / p99"]
    with_exemplars = [t for t in panel["targets"] if t.get("exemplar")]
    assert len(with_exemplars) == 1  # one set of dots, not one per percentile
    assert "http_request_duration_seconds_bucket" in with_exemplars[0]["expr"]


def test_prometheus_keeps_exemplars_in_compose_and_in_make_run():
    assert "--enable-feature=exemplar-storage" in load_compose()["services"]["prometheus"][
        "command"]
    make_run = runpy.run_path(str(ROOT / "scripts" / "run_local.py"))["build_stack"]()
    make_run.build()
    assert "--enable-feature=exemplar-storage" in make_run.prometheus.argv()


def test_the_new_images_are_pinned_to_a_release():
    stack = load_compose()["services"]
    for name in ("jaeger", "loki", "alloy"):
        image = stack[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), image


# -- helpers ----------------------------------------------------------------------------------


def _window() -> tuple[Any, Any]:
    from datetime import UTC, datetime, timedelta
    start = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    return start, start + timedelta(minutes=20)


def _log_line(trace_id: str | None) -> str:
    """One log line as the engine writes it (billing_core.logs), traced or not."""
    import logging

    previous = logs.trace_ids
    logs.trace_ids = (lambda: (trace_id, "00f067aa0ba902b7", True)) if trace_id else None
    try:
        record = logging.LogRecord("billing_engine", logging.INFO, __file__, 1, "request", None,
                                   None)
        record.endpoint = "/v1/heartbeats"
        return logs.JsonFormatter().format(record)
    finally:
        logs.trace_ids = previous
