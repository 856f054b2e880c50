"""Annotations render as Prometheus renders them: checked against a real Prometheus."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from alerts.rules.files import load_rules
from alerts.rules.model import AlertRule, Sample
from alerts.rules.state import alert_annotations
from alerts.rules.templating import (
    TemplateData,
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    render,
)
from devstack.processes import PrometheusServer
from devstack.servers import wait_for
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import SHIPPED_RULES, write_rule_file

# Every function and form the shipped rules use, and the others we implement.
TEMPLATES = {
    "raw": "{{ $value }}",
    "humanize": "{{ $value | humanize }}",
    "humanize_call": "{{ humanize $value }}",
    "humanize1024": "{{ $value | humanize1024 }}",
    "percentage": "{{ $value | humanizePercentage }}",
    "duration": "{{ $value | humanizeDuration }}",
    "timestamp": "{{ $value | humanizeTimestamp }}",
    "printf": '{{ printf "%.2f" $value }} and {{ printf "%d" 42 }} {{ printf "%s!" "hi" }}',
    "labels": "[{{ $labels.instance }}] [{{ $labels.missing }}] [{{ .Labels.job }}]",
    "dot_value": "{{ .Value }}",
    "functions": "{{ $labels.job | toUpper }} {{ \"hello world\" | title }} "
                 "{{ $labels.instance | stripPort }} {{ toLower \"ABC\" }}",
    "regex": '{{ reReplaceAll "e([0-9])" "node-$1" $labels.instance }}',
    "trim": "a  {{- $labels.job -}}  b",
    "text": "no template at all",
}
VALUES = [0.0, 1.0, 0.5, -2.5, 3.14159265, 123456.0, 1234567.0, 1e21, 0.0123, 1.5e-7, 90061.0,
          1048576.0, 0.98765, 59.9, 1700000000.5, -1.5, math.nan]


def _expr(value: float) -> str:
    literal = "NaN" if math.isnan(value) else repr(value)
    return (f'label_replace(label_replace(vector({literal}), "instance", "e1:8006", "", ""), '
            '"job", "billing-engine", "", "")')


@pytest.fixture(scope="module")
def prometheus_rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[float, dict[str, str]]:
    """What Prometheus itself renders for each value (rules with no `for` fire at once)."""
    rules = [{"alert": f"Render{i}", "expr": _expr(v), "labels": {"severity": "P3"},
              "annotations": TEMPLATES} for i, v in enumerate(VALUES)]
    path = write_rule_file(tmp_path_factory.mktemp("rules") / "render.yml", rules)
    prometheus = PrometheusServer(targets={}, rule_files=[path]).start()
    try:
        def all_firing() -> list[dict[str, object]] | None:
            alerts = prometheus.get("/api/v1/alerts")["alerts"]
            return alerts if len(alerts) == len(VALUES) else None

        alerts = wait_for(all_firing, timeout=30, what="every render rule to fire")
    finally:
        prometheus.destroy()
    by_name = {a["labels"]["alertname"]: a["annotations"] for a in alerts}
    return {v: by_name[f"Render{i}"] for i, v in enumerate(VALUES)}


@pytest.mark.processes
@pytest.mark.xdist_group("prometheus_rendered")  # one Prometheus renders them all
@pytest.mark.parametrize("index", range(len(VALUES)))
def test_every_template_renders_exactly_as_prometheus_renders_it(index, prometheus_rendered):
    value = VALUES[index]
    rule = AlertRule(name=f"Render{index}", expr=_expr(value), annotations=TEMPLATES)
    sample = Sample(labels={"instance": "e1:8006", "job": "billing-engine"}, value=value)
    ours = alert_annotations(rule, sample, external_labels={})
    theirs = prometheus_rendered[value]
    for name, text in theirs.items():
        if text.startswith("<error expanding template:"):
            # Go adds template positions to the message; the failure and its reason must agree.
            assert ours[name].startswith("<error expanding template:")
            assert ours[name].split("error calling ")[-1] in text
            ours[name] = text
    assert ours == theirs


def test_the_shipped_annotations_render_without_template_errors():
    rules = load_rules(SHIPPED_RULES)
    assert len(rules) >= 25
    sample = Sample(labels={"instance": "e1:8006", "job": "billing-engine", "channel": "slack"},
                    value=0.1234)
    for rule in rules:
        for name, text in alert_annotations(rule, sample, external_labels={}).items():
            assert "<error expanding template" not in text, (rule.name, name, text)
            assert "{{" not in text, (rule.name, name, text)


def test_humanizers_match_prometheus_documented_examples():
    assert humanize(1234567) == "1.235M"
    assert humanize(0.000123) == "123u"
    assert humanize1024(1048576) == "1Mi"
    assert humanize_percentage(0.1234) == "12.34%"
    assert humanize_duration(90061) == "1d 1h 1m 1s"
    assert humanize_duration(0.25) == "250ms"


def test_a_broken_template_renders_prometheus_error_text_instead_of_failing():
    data = TemplateData(labels={}, value=1.0, external_labels={})
    assert render("{{ $value | noSuchFunction }}", data).startswith(
        "<error expanding template:")
    assert "not supported" in render("{{ if $value }}x{{ end }}", data)
    assert render("unclosed {{ $value", data).startswith("<error expanding template:")


def test_rule_files_load_for_and_keep_firing_for(tmp_path: Path):
    path = write_rule_file(tmp_path / "r.yml", [
        {"record": "job:up:sum", "expr": "sum(up)"},
        {"alert": "A", "expr": "up == 0", "for": "1h30m", "keep_firing_for": "45s",
         "labels": {"severity": "P1"}, "annotations": {"summary": "s"}},
        {"alert": "B", "expr": "vector(1)"},
    ])
    a, b = load_rules(str(tmp_path / "*.yml"))
    assert (a.name, a.hold.total_seconds(), a.keep_firing_for.total_seconds()) == ("A", 5400, 45)
    assert (b.name, b.hold.total_seconds(), b.labels) == ("B", 0, {})
    assert a.source == str(path)


def test_the_shipped_rules_load_with_their_for_durations():
    rules = {r.name: r for r in load_rules(SHIPPED_RULES)}
    assert rules["BillingEngineDown"].hold.total_seconds() == 60
    assert rules["AlertsProcessDown"].hold.total_seconds() == 120
    assert rules["Watchdog"].hold.total_seconds() == 0
    assert rules["BillingAvailabilityFastBurn"].labels["slo"] == "availability"
