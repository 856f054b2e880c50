"""Prometheus rules: promtool checks, generated files current, alert conventions, runbook links.

promtool (Debian package `prometheus`) must be installed: without it these tests fail, they
never skip, because an unchecked rule file is how alerts silently stop working.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
UNIT_TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
RUNBOOKS = ROOT / "runbooks"

SEVERITIES = {"P0", "P1", "P2", "P3"}
DASHBOARD_UIDS = {"billing-overview", "billing-usage", "billing-payments", "billing-alerting",
                  "billing-resources"}
RUNBOOK_URL = re.compile(
    r"^http://localhost:8501/runbooks\?runbook=(?P<stem>[a-z0-9-]+)&section=(?P<section>[a-z0-9-]+)$"
)
DASHBOARD_URL = re.compile(r"^http://localhost:3000/d/(?P<uid>[a-z0-9-]+)$")
# Anywhere in a dashboard (links, descriptions, markdown panels), whatever the host prefix.
RUNBOOK_LINK = re.compile(
    r"/runbooks\?runbook=(?P<stem>[A-Za-z0-9_-]+)&section=(?P<section>[^\s\"')&#\]]+)"
)
# Target-down alerts: their value is only "up is 0" (or absent); the instance says more.
STATE_ALERTS = {"BillingEngineDown", "AlertsProcessDown", "ConsoleDown"}

# The catalogue agreed for issue 4 (name: severity, service label, runbook file).
CONTRACT = {
    "BillingAvailabilityFastBurn": ("P1", "billing-engine", "slo"),
    "BillingAvailabilitySlowBurn": ("P1", "billing-engine", "slo"),
    "BillingAvailabilityBudgetBurnTicket": ("P2", "billing-engine", "slo"),
    "BillingLatencyFastBurn": ("P1", "billing-engine", "slo"),
    "BillingLatencySlowBurn": ("P1", "billing-engine", "slo"),
    "BillingLatencyBudgetBurnTicket": ("P2", "billing-engine", "slo"),
    "BillingEngineDown": ("P0", "billing-engine", "billing-engine"),
    "BillingEngineNotReady": ("P1", "billing-engine", "billing-engine"),
    "BillingHighErrorRate": ("P1", "billing-engine", "billing-engine"),
    "BillingHighLatencyP95": ("P2", "billing-engine", "billing-engine"),
    "AdminAuthFailuresSpike": ("P2", "billing-engine", "billing-engine"),
    "HighFailedAuthRate": ("P2", "billing-engine", "security"),
    "SuspiciousAPIAccess": ("P1", "billing-engine", "security"),
    "PaymentSuccessRateLow": ("P1", "payments", "payments"),
    "RefundRateHigh": ("P2", "payments", "payments"),
    "PaymentCircuitBreakerOpen": ("P1", "payments", "payments"),
    "StripeWebhookSignatureFailures": ("P2", "payments", "payments"),
    "StripeWebhookEventsFailing": ("P2", "payments", "payments"),
    "UsageMeterQueueBacklog": ("P2", "metering", "metering"),
    "UsageMeterSubmissionErrors": ("P2", "metering", "metering"),
    "UsageIngestStalled": ("P2", "metering", "metering"),
    "ThrottlingNotEnforced": ("P2", "metering", "metering"),
    # Usage reporting to Stripe (issue 12).
    "UsageMeterRecordsNearWindow": ("P1", "metering", "stripe-usage"),
    "UsageMeterRecordsExpired": ("P2", "metering", "stripe-usage"),
    "UsageMeterErrorReported": ("P2", "metering", "stripe-usage"),
    "UsageMeterRecordsFailed": ("P2", "metering", "stripe-usage"),
    "AlertDeliveryErrors": ("P2", "alerting", "alerting"),
    "AlertsProcessDown": ("P1", "alerting", "alerting"),
    "Watchdog": ("P3", "alerting", "alerting"),
    # Our own processes' resources and dependencies (issue 15).
    "ProcessCpuHigh": ("P2", "resources", "resources"),
    "ProcessMemoryHigh": ("P2", "resources", "resources"),
    "ProcessMemoryCritical": ("P1", "resources", "resources"),
    "ProcessCrashLooping": ("P1", "resources", "resources"),
    "VolumeAlmostFull": ("P2", "resources", "resources"),
    "DatabasePoolSaturated": ("P2", "resources", "resources"),
    "EntitlementsCacheDown": ("P3", "resources", "resources"),
    "ConsoleDown": ("P2", "resources", "resources"),
    # Reconciliation with Stripe, scheduled (issue 12).
    "BillingReconciliationMismatch": ("P2", "reconciliation", "reconciliation"),
    "BillingReconciliationStale": ("P3", "reconciliation", "reconciliation"),
}


# ---------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerting_rules(rule_files: list[Path]) -> Iterator[dict[str, Any]]:
    for rule_file in rule_files:
        for group in (load_yaml(rule_file) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    yield rule


ALERTS = list(alerting_rules(RULE_FILES))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # [text](link) -> text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def headings(markdown: str) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside fenced code blocks."""
    found = []
    fence: str | None = None
    for line in markdown.splitlines():
        stripped = line.strip()
        marker = re.match(r"^(`{3,}|~{3,})", stripped)
        if marker:
            if fence is None:
                fence = marker.group(1)[0]
            elif stripped.startswith(fence * 3):
                fence = None
            continue
        if fence is not None:
            continue
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a document, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    result = set()
    for _, text in headings(markdown):
        slug = github_slug(text)
        if slug in seen:
            seen[slug] += 1
            result.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            result.add(slug)
    return result


def runbook_target(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["runbook"][0], query["section"][0]


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def runbook_links() -> list[tuple[str, str, str]]:
    """(where, stem, section) of every runbook link in the rule files and Grafana dashboards."""
    links = []
    for rule in ALERTS:
        url = rule.get("annotations", {}).get("runbook_url", "")
        stem, section = runbook_target(url)
        links.append((f"alert {rule['alert']}", stem, section))
    for dashboard in sorted((ROOT / "grafana").rglob("*.json")):
        for text in strings_in(json.loads(dashboard.read_text(encoding="utf-8"))):
            for match in RUNBOOK_LINK.finditer(text):
                where = str(dashboard.relative_to(ROOT))
                links.append((where, match.group("stem"), match.group("section")))
    return links


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH; install it with `apt-get install prometheus` "
            "(make test does this) and run the tests again"
        )
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


# ---------------------------------------------------------------------------- promtool


def test_rule_files_pass_promtool_check(promtool: str) -> None:
    assert RULE_FILES, "no rule files in prometheus/rules/"
    result = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.docker.yml"])
def test_prometheus_config_passes_promtool_check(promtool: str, config: str) -> None:
    result = run(promtool, "check", "config", str(PROMETHEUS / config))
    assert result.returncode == 0, result.stdout + result.stderr


def unit_test_groups() -> list[Any]:
    """One pytest case per test group of every promtool unit-test file, so they run in parallel
    (one promtool run over every file took a fifth of the suite on one core)."""
    cases = []
    for test_file in UNIT_TEST_FILES:
        for index, group in enumerate(load_yaml(test_file)["tests"]):
            name = group.get("name") or f"group {index}"
            cases.append(pytest.param(test_file, index, id=f"{test_file.stem}: {name}"))
    return cases


def test_there_are_promtool_unit_tests() -> None:
    assert UNIT_TEST_FILES, "no promtool unit tests in prometheus/tests/"
    assert all(load_yaml(path).get("tests") for path in UNIT_TEST_FILES)


@pytest.mark.processes
@pytest.mark.parametrize(("test_file", "index"), unit_test_groups())
def test_alert_unit_test_group_passes(promtool: str, test_file: Path, index: int,
                                      tmp_path: Path) -> None:
    spec = load_yaml(test_file)
    single = {key: value for key, value in spec.items() if key != "tests"}
    single["rule_files"] = [str(path) for pattern in spec["rule_files"]
                            for path in sorted(test_file.parent.glob(pattern))]
    single["tests"] = [spec["tests"][index]]
    one = tmp_path / test_file.name
    one.write_text(yaml.safe_dump(single, sort_keys=False), encoding="utf-8")
    result = run(promtool, "test", "rules", str(one))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_configs_scrape_the_same_jobs() -> None:
    local = load_yaml(PROMETHEUS / "prometheus.yml")
    docker = load_yaml(PROMETHEUS / "prometheus.docker.yml")
    jobs = [job["job_name"] for job in local["scrape_configs"]]
    assert jobs == ["billing-engine", "alerts", "console", "prometheus"]
    assert [job["job_name"] for job in docker["scrape_configs"]] == jobs
    assert (
        local["global"]
        == docker["global"]
        == {
            "scrape_interval": "15s",
            "evaluation_interval": "15s",
        }
    )
    assert local["rule_files"] == docker["rule_files"] == ["rules/*.yml"]


# ---------------------------------------------------------------------------- generated files


def test_slo_rules_are_current_with_the_spec() -> None:
    result = run(sys.executable, "scripts/generate_slo_rules.py", "--check")
    assert result.returncode == 0, result.stderr


def test_alert_catalogue_is_current_with_the_rules() -> None:
    result = run(sys.executable, "scripts/generate_alert_docs.py", "--check")
    assert result.returncode == 0, result.stderr


def test_slo_rules_record_every_window_for_both_slos() -> None:
    records = {
        rule["record"]
        for group in load_yaml(PROMETHEUS / "rules" / "slo.yml")["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for sli in ("http_availability", "http_latency"):
        for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
            assert f"slo:{sli}_error_ratio:rate{window}" in records
            assert f"slo:{sli}_burn_rate:rate{window}" in records
        assert f"slo:{sli}_error_budget_remaining:ratio30d" in records


# ---------------------------------------------------------------------------- conventions


def test_rule_files_hold_exactly_the_agreed_alerts() -> None:
    names = [rule["alert"] for rule in ALERTS]
    assert len(names) == len(set(names)), "an alert name is used twice"
    assert sorted(names) == sorted(CONTRACT)
    for rule in ALERTS:
        severity, service, runbook = CONTRACT[rule["alert"]]
        assert rule["labels"]["severity"] == severity, rule["alert"]
        assert rule["labels"]["service"] == service, rule["alert"]
        assert runbook_target(rule["annotations"]["runbook_url"])[0] == runbook, rule["alert"]


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_every_alert_carries_severity_service_and_links(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    labels = rule.get("labels", {})
    annotations = rule.get("annotations", {})
    assert labels.get("severity") in SEVERITIES
    assert labels.get("service")
    for key in ("summary", "description", "runbook_url", "dashboard_url", "condition"):
        assert annotations.get(key), f"{name} has no {key} annotation"
    if name not in STATE_ALERTS:
        assert "$value" in annotations["description"], f"{name}: description must show $value"

    runbook = RUNBOOK_URL.match(annotations["runbook_url"])
    assert runbook, f"{name}: runbook_url {annotations['runbook_url']!r} is not as agreed"
    assert runbook.group("section") == name.lower(), "section must be the `## <AlertName>` anchor"
    dashboard = DASHBOARD_URL.match(annotations["dashboard_url"])
    assert dashboard and dashboard.group("uid") in DASHBOARD_UIDS, annotations["dashboard_url"]


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for test_file in UNIT_TEST_FILES:
        spec = load_yaml(test_file)
        loaded = [path for pattern in spec["rule_files"] for path in test_file.parent.glob(pattern)]
        defined = {rule["alert"] for rule in alerting_rules(loaded)}
        for group in spec["tests"]:
            for case in group.get("alert_rule_test", []):
                name = case["alertname"]
                # A case for an alert its rule files do not define would pass vacuously.
                assert name in defined, f"{test_file.name}: {name} is not in {spec['rule_files']}"
                (firing if case.get("exp_alerts") else quiet).add(name)
    names = {rule["alert"] for rule in ALERTS}
    assert not names - firing, f"alerts without a test that fires them: {sorted(names - firing)}"
    # Watchdog fires by design at every evaluation: there is no near miss to show.
    no_quiet = names - quiet - {"Watchdog"}
    assert not no_quiet, f"alerts without a near-miss test that stays quiet: {sorted(no_quiet)}"


# ---------------------------------------------------------------------------- runbooks


def test_github_slugs_match_the_contract_examples() -> None:
    assert github_slug("BillingHighErrorRate") == "billinghigherrorrate"
    assert github_slug("Backup and verified restore") == "backup-and-verified-restore"
    assert github_slug("P0: outage (15 min)") == "p0-outage-15-min"
    assert github_slug("`usage_meter_queue` over 1,000") == "usage_meter_queue-over-1000"
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}


def test_every_runbook_url_resolves_to_a_heading() -> None:
    missing = []
    for where, stem, section in runbook_links():
        path = RUNBOOKS / f"{stem}.md"
        if not path.is_file():
            missing.append(f"{where}: runbooks/{stem}.md does not exist")
        elif section not in anchors(path.read_text(encoding="utf-8")):
            missing.append(f"{where}: runbooks/{stem}.md has no heading with anchor #{section}")
    assert not missing, "\n".join(missing)


def test_no_orphan_alert() -> None:
    """Every alert has its own `## <AlertName>` section in the runbook its URL points to."""
    orphans = []
    for rule in ALERTS:
        stem, _ = runbook_target(rule["annotations"]["runbook_url"])
        path = RUNBOOKS / f"{stem}.md"
        sections = (
            {text for level, text in headings(path.read_text(encoding="utf-8")) if level == 2}
            if path.is_file()
            else set()
        )
        if rule["alert"] not in sections:
            orphans.append(f"{rule['alert']}: no `## {rule['alert']}` in runbooks/{stem}.md")
    assert not orphans, "\n".join(orphans)
