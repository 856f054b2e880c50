"""Logs and traces links in every notification and on the console's alert card: each shipped
rule's alert leads to its service's logs (Grafana Explore on Loki) and traces (Jaeger, or Tempo
through Grafana) over the alert's window, and no link is made up when nothing is configured."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from alerts.delivery import pagerduty, slack, webhook
from alerts.delivery.email import EmailRenderer
from alerts.delivery.links import (
    LinkSettings,
    alert_links,
    alert_window,
    logs_url,
    telemetry_service,
    traces_url,
)
from alerts.rules.messages import rule_message
from alerts.rules.model import Alert, AlertStatus
from alerts.rules.service import alert_view
from alerts.settings import Settings
from tests.alerts.messages import LINKS, shipped_rules

RULES = shipped_rules()
ACTIVE = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)
RESOLVED = ACTIVE + timedelta(minutes=40)
OBSERVED = LinkSettings(runbook_base_url=LINKS.runbook_base_url, grafana_url=LINKS.grafana_url,
                        console_url=LINKS.console_url,
                        logs_base_url="https://grafana.example.com",
                        traces_base_url="https://jaeger.example.com")
# The job each shipped rule's alert keeps from its series (resource alerts name the process).
JOBS = {"ProcessCpuHigh": "console", "ProcessMemoryHigh": "alerts",
        "ProcessMemoryCritical": "billing-engine", "ProcessCrashLooping": "alerts",
        "VolumeAlmostFull": "alerts", "DatabasePoolSaturated": "billing-engine",
        "EntitlementsCacheDown": "billing-engine", "ConsoleDown": "console",
        "AlertsProcessDown": "alerts", "BillingEngineDown": "billing-engine"}
EXPECTED_SERVICE = {"billing-engine": "billing-engine", "payments": "billing-engine",
                    "metering": "billing-engine", "security": "billing-engine",
                    "reconciliation": "billing-engine", "alerting": "alerts"}


def fired(name: str, *, resolved: bool = False) -> Alert:
    rule = RULES[name]
    labels = {"alertname": name, **rule["labels"]}
    if name in JOBS:
        labels |= {"job": JOBS[name], "instance": f"{JOBS[name]}:1"}
    return Alert(fingerprint=f"fp-{name.lower()}", alertname=name, labels=labels,
                 annotations=rule["annotations"],
                 status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
                 active_at=ACTIVE, last_evaluated_at=ACTIVE, value=1.0,
                 fired_at=ACTIVE + timedelta(minutes=2),
                 resolved_at=RESOLVED if resolved else None)


def explore_pane(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    assert parts.path.endswith("/explore"), url
    query = parse_qs(parts.query)
    assert query["schemaVersion"] == ["1"]
    pane: dict[str, Any] = json.loads(query["panes"][0])["a"]
    return pane


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_rules_alert_links_its_services_logs_over_the_alert_window(name: str) -> None:
    alert = fired(name)
    service = JOBS.get(name) or EXPECTED_SERVICE[RULES[name]["labels"]["service"]]

    found = alert_links(alert.labels, started=alert.active_at, resolved=None, links=OBSERVED)

    pane = explore_pane(found["logs_url"])
    assert found["logs_url"].startswith("https://grafana.example.com/explore?")
    assert pane["datasource"] == "loki"
    [query] = pane["queries"]
    assert query["datasource"] == {"type": "loki", "uid": "loki"}
    assert query["expr"] == f'{{service="{service}"}}'
    # From 15 minutes before the condition began; an hour after it while it fires.
    assert pane["range"] == {"from": ms(ACTIVE - timedelta(minutes=15)),
                             "to": ms(ACTIVE + timedelta(hours=1))}


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_rules_alert_links_its_services_traces_in_jaeger(name: str) -> None:
    alert = fired(name, resolved=True)
    service = JOBS.get(name) or EXPECTED_SERVICE[RULES[name]["labels"]["service"]]

    url = alert_links(alert.labels, started=alert.active_at, resolved=alert.resolved_at,
                      links=OBSERVED)["traces_url"]

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://jaeger.example.com/search"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["service"] == service
    # Until 5 minutes after it resolved, in Jaeger's microseconds.
    assert int(query["start"]) == int((ACTIVE - timedelta(minutes=15)).timestamp() * 10**6)
    assert int(query["end"]) == int((RESOLVED + timedelta(minutes=5)).timestamp() * 10**6)
    assert query["lookback"] == "custom"


def test_without_base_urls_no_logs_or_traces_link_is_made_up() -> None:
    alert = fired("BillingHighErrorRate")
    assert alert_links(alert.labels, started=ACTIVE, resolved=None, links=LINKS) == {}
    message = rule_message([alert], state="firing", recipients=("oncall@example.com",),
                           links=LINKS)
    assert (message.logs_url, message.traces_url) == ("", "")
    assert "logs_url" not in message.annotations
    rendered = EmailRenderer().render(message)
    assert "Logs:" not in rendered.text and ">Logs<" not in rendered.html
    buttons = [e["text"]["text"] for b in slack.build_payload(message)["blocks"]
               if b["type"] == "actions" for e in b["elements"]]
    assert "Logs" not in buttons and "Traces" not in buttons


def test_an_alert_about_none_of_our_processes_gets_neither_link() -> None:
    assert telemetry_service({"service": "support"}) is None
    assert telemetry_service({"job": "prometheus"}) is None
    assert alert_links({"job": "prometheus"}, started=ACTIVE, resolved=None,
                       links=OBSERVED) == {}


def test_every_channel_carries_the_logs_and_traces_links() -> None:
    alert = fired("ProcessMemoryCritical")
    message = rule_message([alert], state="firing", recipients=("oncall@example.com",),
                           links=OBSERVED)
    assert message.logs_url.startswith("https://grafana.example.com/explore?")
    assert message.traces_url.startswith("https://jaeger.example.com/search?")

    rendered = EmailRenderer().render(message)
    assert f"Logs:       {message.logs_url}" in rendered.text
    assert f"Traces:     {message.traces_url}" in rendered.text
    assert message.logs_url.replace("&", "&amp;") in rendered.html

    buttons = {e["text"]["text"]: e["url"] for b in slack.build_payload(message)["blocks"]
               if b["type"] == "actions" for e in b["elements"]}
    assert buttons["Logs"] == message.logs_url
    assert buttons["Traces"] == message.traces_url

    [sent] = webhook.build_payload(message, receiver="teams")["alerts"]
    assert sent["annotations"]["logs_url"] == message.logs_url
    assert sent["annotations"]["traces_url"] == message.traces_url

    [event] = pagerduty.build_events(message, routing_key="k" * 32)
    hrefs = {link["text"]: link["href"] for link in event["links"]}
    assert hrefs["Logs"] == message.logs_url and hrefs["Traces"] == message.traces_url


def test_the_console_alert_card_gets_the_links_from_the_alerts_api() -> None:
    view = alert_view(fired("DatabasePoolSaturated"), [], [], links=OBSERVED, now=ACTIVE)
    assert view.logs_url == alert_links(view.labels, started=ACTIVE, resolved=None,
                                        links=OBSERVED)["logs_url"]
    assert view.traces_url.startswith("https://jaeger.example.com/search?service=billing-engine")
    bare = alert_view(fired("DatabasePoolSaturated"), [], [], links=LINKS, now=ACTIVE)
    assert (bare.logs_url, bare.traces_url) == ("", "")


def test_tempo_through_grafana_and_templates_for_other_stores() -> None:
    start, end = alert_window(ACTIVE, None)
    tempo = explore_pane(traces_url("alerts", start, end,
                                    base_url="https://grafana.example.com/explore"))
    assert tempo["datasource"] == "tempo"
    assert tempo["queries"][0]["query"] == '{resource.service.name="alerts"}'
    assert logs_url("console", start, end,
                    base_url="https://kibana.example.com/app/logs?q=service:{service}"
                             "&from={start_ms}&to={end_ms}") == (
        f"https://kibana.example.com/app/logs?q=service:console&from={ms(start)}&to={ms(end)}")


def test_logs_and_traces_base_urls_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"LOGS_BASE_URL": "https://grafana.example.com/",
                                  "TRACES_BASE_URL": "http://localhost:16686"})
    assert settings.links.logs_base_url == "https://grafana.example.com"
    assert settings.links.traces_base_url == "http://localhost:16686"
    assert Settings.from_env({}).links.logs_base_url == ""
