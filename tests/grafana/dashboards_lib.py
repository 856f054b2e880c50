"""Read the shipped Grafana dashboards and the PromQL they run.

Shared by the structural tests (test_dashboards.py) and the live check against a real Prometheus
(test_dashboard_queries_live.py). Pure file reading: no network, no Grafana.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO_ROOT / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_DIR = GRAFANA_DIR / "provisioning" / "datasources"
DASHBOARD_PROVIDERS_DIR = GRAFANA_DIR / "provisioning" / "dashboards"

# What Grafana's own variables stand for when a query runs outside Grafana. $__rate_interval is
# at least four scrape intervals in Grafana; 5m is comfortably above that and matches the
# windows the alert rules use.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
}

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)\}|(?P<bare>\w+))")


class PanelQuery(NamedTuple):
    dashboard_uid: str
    panel_title: str
    expr: str


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[Path, dict[str, Any]]:
    """Every dashboard JSON file in `directory`, parsed, keyed by path (sorted by name)."""
    return {
        path: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """All panels, including rows and the panels tucked inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute_grafana_variables(expr: str) -> str:
    """Replace Grafana's built-in variables ($__rate_interval, ${__interval}, ...) by fixed
    durations so the expression can be sent to Prometheus as is. Unknown variables raise
    ValueError: a dashboard variable nobody can resolve outside Grafana is a bug here."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name not in GRAFANA_VARIABLES:
            raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(replace, expr)


def iter_panel_queries(directory: Path = DASHBOARDS_DIR) -> Iterator[PanelQuery]:
    """(dashboard uid, panel title, expr) for every query target of every panel, with Grafana
    variables replaced ($__rate_interval -> 5m, $__interval -> 1m), ready for /api/v1/query."""
    for dashboard in load_dashboards(directory).values():
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                yield PanelQuery(
                    dashboard_uid=dashboard["uid"],
                    panel_title=panel["title"],
                    expr=substitute_grafana_variables(target["expr"]),
                )


# --- metric names in an expression -----------------------------------------------------------

_PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (good enough for our dashboards, not a PromQL parser):
    strings, label matchers, ranges and grouping clauses are removed, then every identifier not
    called as a function and not a keyword is a metric name."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, called = match.group(1), match.group(2)
        if called or name.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names
