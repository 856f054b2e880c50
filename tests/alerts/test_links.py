"""Links in messages: every shipped rule's runbook link opens a real section, wherever it points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from alerts.delivery.links import (
    DEFAULT_RUNBOOK_BASE_URL,
    LinkSettings,
    console_alert_url,
    rewrite_annotations,
    rewrite_dashboard_url,
    rewrite_runbook_url,
    runbook_target,
    runbook_url,
)
from dashboard.runbooks import find_section, read_runbook
from tests.alerts.messages import shipped_rules
from tests.rules.test_rules import anchors

ROOT = Path(__file__).resolve().parents[2]
RULES = shipped_rules()
DASHBOARD_UIDS = {
    json.loads(path.read_text(encoding="utf-8"))["uid"]
    for path in (ROOT / "grafana" / "dashboards").glob("*.json")
}
GIT_TEMPLATE = "https://git.example.com/ops/blob/main/runbooks/{runbook}.md#{section}"


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_rules_runbook_link_opens_its_section_in_the_console(name: str) -> None:
    annotations: dict[str, Any] = RULES[name]["annotations"]
    links = LinkSettings(runbook_base_url="https://ops.example.com/console/runbooks")

    url = rewrite_annotations(annotations, links=links)["runbook_url"]

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://ops.example.com/console/runbooks"
    )
    query = parse_qs(parts.query)
    markdown = read_runbook(query["runbook"][0])  # what the console's runbook page does
    assert markdown is not None, f"{name}: no runbooks/{query['runbook'][0]}.md"
    section = find_section(markdown, query["section"][0])
    assert section is not None, f"{name}: no section #{query['section'][0]}"
    assert section.heading == name  # the `## <AlertName>` section


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_rules_runbook_link_resolves_on_a_git_host_too(name: str) -> None:
    url = rewrite_runbook_url(RULES[name]["annotations"]["runbook_url"], base_url=GIT_TEMPLATE)

    parts = urlsplit(url)
    assert parts.netloc == "git.example.com"
    file = ROOT / "runbooks" / Path(unquote(parts.path)).name
    assert file.is_file(), url
    assert parts.fragment in anchors(file.read_text(encoding="utf-8")), url


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_rules_dashboard_link_points_at_grafana_url(name: str) -> None:
    links = LinkSettings(grafana_url="https://grafana.example.com/")
    settings = LinkSettings.from_env({"GRAFANA_URL": links.grafana_url})

    url = rewrite_annotations(RULES[name]["annotations"], links=settings)["dashboard_url"]

    assert url.startswith("https://grafana.example.com/d/")
    assert url.removeprefix("https://grafana.example.com/d/") in DASHBOARD_UIDS


def test_default_links_point_at_the_local_console_and_grafana() -> None:
    annotations = RULES["BillingEngineDown"]["annotations"]

    rewritten = rewrite_annotations(annotations, links=LinkSettings.from_env({}))

    assert rewritten["runbook_url"] == (
        "http://127.0.0.1:8501/runbooks?runbook=billing-engine&section=billingenginedown"
    )
    assert rewritten["dashboard_url"] == "http://127.0.0.1:3000/d/billing-overview"
    assert rewritten["summary"] == annotations["summary"]  # the others are untouched
    assert annotations["runbook_url"].startswith("http://localhost:8501/")  # a copy was changed


def test_links_written_for_elsewhere_are_kept() -> None:
    ours = "https://wiki.example.com/runbooks?runbook=slo&section=x"
    assert rewrite_runbook_url(ours, base_url="https://c.example/runbooks") == ours
    assert rewrite_runbook_url("https://wiki.example.com/page") == "https://wiki.example.com/page"
    grafana = "https://grafana.example.com/d/abc?orgId=1"
    assert rewrite_dashboard_url(grafana, grafana_url="http://127.0.0.1:3000") == grafana
    assert rewrite_dashboard_url("") == ""


def test_a_dashboard_link_keeps_its_path_query_and_fragment() -> None:
    url = "http://localhost:3000/d/billing-overview/overview?orgId=1&from=now-1h#panel-4"
    assert rewrite_dashboard_url(url, grafana_url="https://g.example/grafana/") == (
        "https://g.example/grafana/d/billing-overview/overview?orgId=1&from=now-1h#panel-4"
    )


def test_runbook_links_built_from_parts() -> None:
    assert runbook_target(
        "http://localhost:8501/runbooks?runbook=payments&section=refundratehigh"
    ) == ("payments", "refundratehigh")
    assert runbook_target("http://localhost:8501/other?runbook=x") is None
    assert runbook_url("support", "budget-alerts") == (
        f"{DEFAULT_RUNBOOK_BASE_URL}?runbook=support&section=budget-alerts"
    )
    assert runbook_url("support", "", base_url="https://c.example/runbooks/") == (
        "https://c.example/runbooks?runbook=support"
    )


def test_the_console_alert_page_link() -> None:
    assert console_alert_url("3f2a9c", console_url="https://console.example.com/") == (
        "https://console.example.com/alerts?fingerprint=3f2a9c"
    )
    assert console_alert_url("a&b c") == "http://127.0.0.1:8501/alerts?fingerprint=a%26b+c"


def test_link_settings_from_env() -> None:
    settings = LinkSettings.from_env(
        {
            "RUNBOOK_BASE_URL": "https://ops.example.com/runbooks/",
            "GRAFANA_URL": "https://grafana.example.com/",
            "CONSOLE_URL": "https://ops.example.com/",
        }
    )
    assert settings == LinkSettings(
        runbook_base_url="https://ops.example.com/runbooks",
        grafana_url="https://grafana.example.com",
        console_url="https://ops.example.com",
    )
    assert LinkSettings.from_env({"RUNBOOK_BASE_URL": ""}) == LinkSettings()
