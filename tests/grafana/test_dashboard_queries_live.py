"""Run every dashboard query against a real Prometheus.

The structural tests prove the dashboards are well formed; only a real Prometheus scraping a real
engine proves that each panel's PromQL parses and that the metrics it names exist. This module
holds the check; the test that calls it needs a Prometheus that has loaded prometheus/rules/*.yml
and has scraped the billing engine (and the alerts process) at least twice, so that rates and the
SLO recording rules have values. That fixture lives in tests/conftest.py; wire it like this:

    def test_every_panel_query_returns_series(prometheus_url):
        failures = check_queries_against(prometheus_url)
        assert not failures, "\\n".join(str(f) for f in failures)

A query "returns series" when Prometheus answers with at least one sample, NaN included (a ratio
of two zero rates is NaN, and that is an honest answer on an idle system). An empty result means
a metric name is wrong or not exported yet, which is exactly what this check is for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import NamedTuple

import httpx

from .dashboards_lib import PanelQuery, iter_panel_queries


class QueryFailure(NamedTuple):
    dashboard_uid: str
    panel_title: str
    expr: str
    problem: str

    def __str__(self) -> str:
        return f"{self.dashboard_uid} / {self.panel_title}: {self.problem}\n    {self.expr}"


def check_queries_against(
    prometheus_url: str,
    *,
    queries: Iterable[PanelQuery] | None = None,
    allow_empty: Collection[tuple[str, str]] = (),
    timeout: float = 10.0,
) -> list[QueryFailure]:
    """Send every dashboard query to `prometheus_url` (e.g. "http://127.0.0.1:9090") as an
    instant query through /api/v1/query and return what went wrong, one entry per failing
    query: HTTP or parse errors (Prometheus answers 400 with errorType "bad_data"), and results
    with no series at all. An empty list means every panel has something to draw.

    `queries` defaults to iter_panel_queries() (all shipped dashboards, Grafana variables
    already replaced). `allow_empty` lists (dashboard uid, panel title) pairs whose queries may
    legitimately return nothing in the test's setup; use it sparingly and say why at the call.
    """
    failures: list[QueryFailure] = []
    endpoint = prometheus_url.rstrip("/") + "/api/v1/query"
    with httpx.Client(timeout=timeout) as client:
        for query in iter_panel_queries() if queries is None else queries:
            problem = _problem_with(client, endpoint, query.expr)
            if problem is None:
                continue
            if problem == _EMPTY and (query.dashboard_uid, query.panel_title) in allow_empty:
                continue
            failures.append(QueryFailure(*query, problem=problem))
    return failures


_EMPTY = "returned no series"


def _problem_with(client: httpx.Client, endpoint: str, expr: str) -> str | None:
    try:
        response = client.post(endpoint, data={"query": expr})
    except httpx.HTTPError as error:
        return f"request failed: {error!r}"
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}, not JSON: {response.text[:200]!r}"
    if response.status_code != 200 or body.get("status") != "success":
        return f"HTTP {response.status_code} {body.get('errorType')}: {body.get('error')}"
    data = body["data"]
    if data["resultType"] in ("scalar", "string"):
        return None
    if not data["result"]:
        return _EMPTY
    return None


# -- the live test ------------------------------------------------------------------------------

import re  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from devstack.processes import (  # noqa: E402
    AlertsProcess,
    Console,
    EngineProcess,
    PrometheusServer,
)
from devstack.servers import create_scratch_database, wait_for  # noqa: E402
from tests.support.builders import engine_org_key  # noqa: E402

from .dashboards_lib import metric_names  # noqa: E402

# One worker runs the whole module, so its module-scoped stack is started once.
pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_dashboard_queries_live")]

METRICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ADMIN = "test-admin-key-0123456789"


def metrics_not_exported_yet() -> set[str]:
    """Metric names docs/metrics.md marks 'agreed': named for a later issue, not exported yet."""
    names: set[str] = set()
    for line in METRICS_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[-1] == "agreed":
            for name in re.findall(r"`([a-z_:]+)`", cells[0]):
                names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


@pytest.fixture(scope="module")
def live_stack(pg_server_url):
    url = create_scratch_database(pg_server_url)
    engine = EngineProcess(url, admin_key=ADMIN).start()
    alerts = AlertsProcess(env={"DATABASE_URL": url})
    # The console's own metrics port is scraped as job console (the resources dashboard).
    console = Console(engine_url=engine.url).start(wait_ready=False)
    prometheus = PrometheusServer(
        {"billing-engine": f"127.0.0.1:{engine.port}", "alerts": f"127.0.0.1:{alerts.port}",
         "console": f"127.0.0.1:{console.metrics_port}"}
    ).start()
    try:
        alerts.env["PROMETHEUS_URL"] = prometheus.url
        # Prometheus' data folder, as compose and make run watch it (VolumeAlmostFull).
        alerts.env["WATCH_VOLUMES"] = f"prometheus={prometheus.base}"
        alerts.start()
        wait_for(console.ready, timeout=60, what="the console")
        yield engine, prometheus
    finally:
        console.stop()
        alerts.stop()
        prometheus.stop()
        engine.stop()


def drive_traffic(engine_url: str) -> None:
    org = f"org_{uuid.uuid4().hex[:8]}"
    headers = {"X-Admin-Key": ADMIN}
    httpx.put(f"{engine_url}/admin/orgs/{org}", headers=headers,
              json={"name": "Live", "email": "live@x.example", "plan": "free"})
    now = datetime.now(UTC)
    ahead = (now + timedelta(minutes=10)).isoformat()  # a rejection: a clock running ahead
    httpx.post(f"{engine_url}/v1/heartbeats", headers=engine_org_key(engine_url, ADMIN, org),
               json={"heartbeats": [
                   {"instance_id": f"{org}-1", "org_id": org, "ts": now.isoformat(),
                    "state": "running"},
                   {"instance_id": f"{org}-2", "org_id": org, "ts": ahead, "state": "running"}]})
    httpx.get(f"{engine_url}/v1/billing", params={"org_id": org}, headers=headers)
    httpx.get(f"{engine_url}/v1/billing", params={"org_id": "org_ghost"}, headers=headers)
    httpx.get(f"{engine_url}/debug/meters/pending", headers={"X-Admin-Key": "wrong"})


def test_every_panel_query_parses_and_returns_series(live_stack):
    engine, prometheus = live_stack
    for _ in range(8):
        drive_traffic(engine.url)
        time.sleep(1)
    wait_for(lambda: prometheus.query("slo:http_availability_error_ratio:rate5m"), timeout=30,
             what="the SLO recording rules to produce a value")
    pending = metrics_not_exported_yet()
    queries = list(iter_panel_queries())
    allowed = {(q.dashboard_uid, q.panel_title) for q in queries
               if metric_names(q.expr) & pending}
    failures = check_queries_against(prometheus.url, queries=queries, allow_empty=allowed)
    assert not failures, "\n".join(str(f) for f in failures)
    # Parse errors are failures even for queries that may be empty.
    assert len(queries) > len(allowed)


def test_engine_target_is_up_and_the_watchdog_fires(live_stack):
    _engine, prometheus = live_stack
    wait_for(lambda: prometheus.query('up{job="billing-engine"} == 1'), timeout=30,
             what="the engine to be scraped")
    wait_for(lambda: prometheus.query('up{job="console"} == 1'), timeout=30,
             what="the console's metrics port to be scraped")
    wait_for(lambda: prometheus.query('ALERTS{alertname="Watchdog",alertstate="firing"}'),
             timeout=30, what="the Watchdog alert")
