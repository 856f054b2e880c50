"""The shipped Grafana dashboards and provisioning are well formed and agree with each other,
with the metric catalogue, and with the runbook link convention."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .dashboards_lib import (
    DASHBOARD_PROVIDERS_DIR,
    DASHBOARDS_DIR,
    DATASOURCES_DIR,
    REPO_ROOT,
    iter_panel_queries,
    iter_panels,
    load_dashboards,
    metric_names,
    substitute_grafana_variables,
)

DASHBOARDS = load_dashboards()
PANEL_TYPES = {"timeseries", "stat", "gauge", "table"}

EXPECTED_DASHBOARDS = {
    "billing-overview": "Billing engine - service overview",
    "billing-usage": "Billing and usage",
    "billing-payments": "Payments",
    "billing-alerting": "Alerting pipeline",
    "billing-resources": "Our processes - resources and dependencies",
}

# The alert catalogue of the issue 4 contract: alert name -> runbook file stem.
ALERT_RUNBOOKS = {
    "BillingAvailabilityFastBurn": "slo",
    "BillingAvailabilitySlowBurn": "slo",
    "BillingAvailabilityBudgetBurnTicket": "slo",
    "BillingLatencyFastBurn": "slo",
    "BillingLatencySlowBurn": "slo",
    "BillingLatencyBudgetBurnTicket": "slo",
    "BillingEngineDown": "billing-engine",
    "BillingEngineNotReady": "billing-engine",
    "BillingHighErrorRate": "billing-engine",
    "BillingHighLatencyP95": "billing-engine",
    "AdminAuthFailuresSpike": "billing-engine",
    "HighFailedAuthRate": "security",
    "SuspiciousAPIAccess": "security",
    "PaymentSuccessRateLow": "payments",
    "RefundRateHigh": "payments",
    "PaymentCircuitBreakerOpen": "payments",
    "StripeWebhookSignatureFailures": "payments",
    "StripeWebhookEventsFailing": "payments",
    "UsageMeterQueueBacklog": "metering",
    "UsageMeterSubmissionErrors": "metering",
    "UsageIngestStalled": "metering",
    "ThrottlingNotEnforced": "metering",
    "AlertDeliveryErrors": "alerting",
    "AlertsProcessDown": "alerting",
    "Watchdog": "alerting",
    "ProcessCpuHigh": "resources",
    "ProcessMemoryHigh": "resources",
    "ProcessMemoryCritical": "resources",
    "ProcessCrashLooping": "resources",
    "VolumeAlmostFull": "resources",
    "DatabasePoolSaturated": "resources",
    "EntitlementsCacheDown": "resources",
    "ConsoleDown": "resources",
    "BillingReconciliationMismatch": "reconciliation",
    "BillingReconciliationStale": "reconciliation",
}

RUNBOOK_URL = re.compile(
    r"^http://localhost:8501/runbooks\?runbook=(?P<stem>[a-z0-9-]+)&section=(?P<anchor>[a-z0-9-]+)$"
)

# Names Prometheus itself provides or the SLO recording rules define, rather than an exporter.
NON_EXPORTED_METRICS = re.compile(r"^(up|ALERTS|slo:[a-z_]+:[a-z0-9]+)$")


def _ids(params: dict[Path, Any]) -> list[str]:
    return [path.stem for path in params]


def _content_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in iter_panels(dashboard) if panel.get("type") != "row"]


def _all_content_panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (dashboard["uid"], panel)
        for dashboard in DASHBOARDS.values()
        for panel in _content_panels(dashboard)
    ]


def _provisioned_datasources() -> list[dict[str, Any]]:
    datasources = []
    for path in sorted(DATASOURCES_DIR.glob("*.y*ml")):
        datasources.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"])
    return datasources


def _documented_metrics() -> set[str]:
    """Every backticked name in the first column of docs/metrics.md's tables."""
    names: set[str] = set()
    for line in (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Za-z_:][\w:]*)`", first_cell))
    return names


# --- the dashboard files ---------------------------------------------------------------------


def test_the_agreed_dashboards_are_shipped_under_their_uids() -> None:
    shipped = {dashboard["uid"]: dashboard["title"] for dashboard in DASHBOARDS.values()}
    assert shipped == EXPECTED_DASHBOARDS
    for path, dashboard in DASHBOARDS.items():
        assert path.stem == dashboard["uid"], "file name and uid differ"


def test_uids_and_titles_are_unique() -> None:
    uids = [dashboard["uid"] for dashboard in DASHBOARDS.values()]
    titles = [dashboard["title"] for dashboard in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("dashboard", DASHBOARDS.values(), ids=_ids(DASHBOARDS))
def test_dashboard_is_provisionable(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    # A fixed numeric id would clash with whatever the target Grafana already holds.
    assert dashboard.get("id") is None
    assert "billing" in dashboard["tags"], "the cross-dashboard link menu selects on this tag"
    assert dashboard["templating"]["list"] == [], "queries must run without dashboard variables"


# --- panels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dashboard", DASHBOARDS.values(), ids=_ids(DASHBOARDS))
def test_every_panel_has_id_position_type_title_and_the_prometheus_datasource(
    dashboard: dict[str, Any],
) -> None:
    for panel in iter_panels(dashboard):
        title = panel.get("title")
        assert isinstance(panel.get("id"), int), title
        assert set(panel.get("gridPos", {})) >= {"h", "w", "x", "y"}, title
        assert isinstance(title, str) and title.strip(), panel.get("id")
        if panel["type"] == "row":
            assert not panel.get("targets"), f"row {title} carries queries"
            continue
        assert panel["type"] in PANEL_TYPES, title
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, title
        assert panel.get("description", "").strip(), f"{title} has no description"


@pytest.mark.parametrize("dashboard", DASHBOARDS.values(), ids=_ids(DASHBOARDS))
def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in iter_panels(dashboard)]
    duplicates = sorted({pid for pid in ids if ids.count(pid) > 1})
    assert not duplicates, f"duplicate panel ids {duplicates}"


@pytest.mark.parametrize("dashboard", DASHBOARDS.values(), ids=_ids(DASHBOARDS))
def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in iter_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} is wider than the grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = taken.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other}"


@pytest.mark.parametrize("dashboard", DASHBOARDS.values(), ids=_ids(DASHBOARDS))
def test_every_target_has_an_expression_and_a_unique_ref_id(dashboard: dict[str, Any]) -> None:
    for panel in _content_panels(dashboard):
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']} has no query"
        ref_ids = [target.get("refId") for target in targets]
        assert all(ref_ids) and len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in targets:
            assert target.get("expr", "").strip(), f"{panel['title']} {target.get('refId')}"
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}


@pytest.mark.parametrize("dashboard", DASHBOARDS.values(), ids=_ids(DASHBOARDS))
def test_every_panel_states_its_unit(dashboard: dict[str, Any]) -> None:
    for panel in _content_panels(dashboard):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert isinstance(unit, str) and unit, f"{panel['title']} has no unit"


def test_threshold_steps_ascend() -> None:
    for uid, panel in _all_content_panels():
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["value"] is None, f"{uid} / {panel['title']}: first step needs no value"
        values = [step["value"] for step in steps[1:]]
        assert values == sorted(values), f"{uid} / {panel['title']}: thresholds out of order"


def test_latency_panels_draw_the_150_ms_objective() -> None:
    overview = next(d for d in DASHBOARDS.values() if d["uid"] == "billing-overview")
    panel = next(p for p in iter_panels(overview) if p["title"] == "Latency p50 / p95 / p99")
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s"
    assert defaults["custom"]["thresholdsStyle"]["mode"] != "off"
    assert 0.15 in [step["value"] for step in defaults["thresholds"]["steps"]]
    legends = [target["legendFormat"] for target in panel["targets"]]
    assert legends == ["p50", "p95", "p99"]


# --- runbook links ---------------------------------------------------------------------------


def _runbook_links() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (uid, panel, link)
        for uid, panel in _all_content_panels()
        for link in panel.get("links", [])
        if link.get("title", "").startswith("Runbook") or "/runbooks" in link.get("url", "")
    ]


def test_runbook_links_follow_the_url_convention() -> None:
    links = _runbook_links()
    assert links
    for uid, panel, link in links:
        where = f"{uid} / {panel['title']}"
        alert = link["title"].removeprefix("Runbook: ")
        assert link["title"] == f"Runbook: {alert}", where
        assert alert in ALERT_RUNBOOKS, f"{where}: {alert} is not in the alert catalogue"
        match = RUNBOOK_URL.match(link["url"])
        assert match, f"{where}: {link['url']} breaks the runbook URL convention"
        assert match["stem"] == ALERT_RUNBOOKS[alert], f"{where}: {alert} lives in another file"
        assert match["anchor"] == alert.lower(), f"{where}: anchor is not the alert's heading"
        assert alert in panel["description"], f"{where}: description does not name {alert}"


def test_no_panel_links_the_same_runbook_section_twice() -> None:
    for uid, panel in _all_content_panels():
        urls = [link["url"] for link in panel.get("links", [])]
        assert len(set(urls)) == len(urls), f"{uid} / {panel['title']}"


def test_every_alert_in_the_catalogue_has_a_panel_linking_its_runbook() -> None:
    linked = {link["title"].removeprefix("Runbook: ") for _, _, link in _runbook_links()}
    assert sorted(set(ALERT_RUNBOOKS) - linked) == []


def _alerting_rules() -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for path in sorted((REPO_ROOT / "prometheus" / "rules").glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


def test_panel_runbook_links_match_the_alert_rules() -> None:
    rules = _alerting_rules()
    if not rules:
        pytest.fail("prometheus/rules/*.yml defines no alerting rule")
    for uid, panel, link in _runbook_links():
        alert = link["title"].removeprefix("Runbook: ")
        where = f"{uid} / {panel['title']}"
        assert alert in rules, f"{where}: links {alert}, which no rule file defines"
        assert link["url"] == rules[alert]["annotations"]["runbook_url"], where


def _recorded_series() -> set[str]:
    recorded: set[str] = set()
    for path in sorted((REPO_ROOT / "prometheus" / "rules").glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            recorded.update(rule["record"] for rule in group.get("rules", []) if "record" in rule)
    return recorded


def test_slo_series_the_panels_read_are_recorded_by_the_rule_files() -> None:
    recorded = _recorded_series()
    if not recorded:
        pytest.fail("prometheus/rules/*.yml records nothing")
    used = {
        (uid, title, name)
        for uid, title, expr in iter_panel_queries()
        for name in metric_names(expr)
        if name.startswith("slo:")
    }
    assert used, "the overview no longer shows the SLO"
    missing = sorted(
        f"{uid} / {title}: {name}" for uid, title, name in used if name not in recorded
    )
    assert not missing


# --- queries ---------------------------------------------------------------------------------


def test_grafana_variables_become_fixed_durations() -> None:
    assert substitute_grafana_variables("rate(x[$__rate_interval])") == "rate(x[5m])"
    assert substitute_grafana_variables("rate(x[${__rate_interval}])") == "rate(x[5m])"
    assert substitute_grafana_variables("rate(x[$__interval])") == "rate(x[1m])"
    with pytest.raises(ValueError, match="job"):
        substitute_grafana_variables('up{job="$job"}')


def test_iter_panel_queries_yields_every_target_ready_for_prometheus() -> None:
    queries = list(iter_panel_queries())
    targets = sum(len(panel["targets"]) for _, panel in _all_content_panels())
    assert len(queries) == targets
    assert {query.dashboard_uid for query in queries} == set(EXPECTED_DASHBOARDS)
    for uid, title, expr in queries:
        assert "$" not in expr, f"{uid} / {title}: {expr}"


def test_metric_names_are_read_from_expressions() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, endpoint) (rate(http_request_duration_seconds_bucket"
        '{status=~"5.."}[5m]))) / (1 - 0.999) or sum(up{job="x"}) * 0 or vector(0)'
    )
    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "up"}


def test_every_metric_a_panel_uses_is_in_the_metrics_reference() -> None:
    documented = _documented_metrics()
    assert "http_requests_total" in documented
    for uid, title, expr in iter_panel_queries():
        for name in metric_names(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            known = name in documented or base in documented or NON_EXPORTED_METRICS.match(name)
            assert known, f"{uid} / {title}: {name} is not in docs/metrics.md"


def test_every_panel_query_parses_with_promtool(tmp_path: Path) -> None:
    """promtool cannot parse a bare expression, but `check rules` parses every rule's expr, so
    each query becomes a recording rule in a throwaway file."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed: apt-get install prometheus (make test installs it)")
    queries = list(iter_panel_queries())
    rules = [
        {"record": f"dashboard:query_{index}:check", "expr": query.expr}
        for index, query in enumerate(queries)
    ]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- provisioning ----------------------------------------------------------------------------


def test_provisioned_datasource_is_the_one_every_panel_uses() -> None:
    # Beside it: Jaeger and Loki, for traces and logs (tests/test_observability_stack.py).
    datasources = [d for d in _provisioned_datasources() if d["type"] == "prometheus"]
    assert len(datasources) == 1
    (datasource,) = datasources
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True
    used = {panel["datasource"]["uid"] for _, panel in _all_content_panels()}
    used |= {
        target["datasource"]["uid"]
        for _, panel in _all_content_panels()
        for target in panel["targets"]
    }
    assert used == {datasource["uid"]}


def test_dashboard_provider_loads_the_mounted_dashboards_folder() -> None:
    providers = []
    for path in sorted(DASHBOARD_PROVIDERS_DIR.glob("*.y*ml")):
        providers.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["providers"])
    assert len(providers) == 1
    (provider,) = providers
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARDS_DIR.is_dir()
