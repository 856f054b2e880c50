"""Links in alert messages: the rule files' placeholder URLs made real for this installation.

The rule files in prometheus/rules/ link every alert the same way in every environment:

    runbook_url:   http://localhost:8501/runbooks?runbook=<file stem>&section=<anchor>
    dashboard_url: http://localhost:3000/d/<uid>

At send time those local placeholders are rewritten to `RUNBOOK_BASE_URL` and `GRAFANA_URL`.
A link that points anywhere else was written on purpose by a rule author and is kept as it is.

`RUNBOOK_BASE_URL` is either the console's runbook page (the default; the link becomes
`<base>?runbook=<stem>&section=<anchor>`) or a template holding `{runbook}` and `{section}`,
for runbooks read elsewhere: `https://git.example.com/ops/blob/main/runbooks/{runbook}.md#{section}`.

Logs and traces links (`alert_links`) lead to the service the alert is about, over the alert's
time window: from 15 minutes before its condition began to 5 minutes after it resolved (an hour
after it began while it fires, so every repeat of one episode carries the same link).

- `LOGS_BASE_URL`: Grafana's address; the link opens Explore on the Loki data source (uid
  `loki`) with `{service="<service>"}`. Or a template holding `{service}` and the window's
  `{start_ms}`, `{end_ms}` (epoch milliseconds) or `{start}`, `{end}` (RFC 3339), for another
  log store.
- `TRACES_BASE_URL`: Jaeger UI's address; the link opens its search for the service and window.
  A Grafana Explore address (ending in `/explore`) opens a TraceQL search on the Tempo data
  source (uid `tempo`) instead; a template takes `{service}`, `{start_us}`, `{end_us}` (epoch
  microseconds, Jaeger's unit) besides the placeholders above.

Either unset: that link is left out. The service is the process the alert names (its `job`
label: `billing-engine`, `alerts`, `console`), else the process behind its `service` label;
alerts about no process of ours get neither link.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from billing_core.settings import env_url

DEFAULT_RUNBOOK_BASE_URL = "http://127.0.0.1:8501/runbooks"
DEFAULT_GRAFANA_URL = "http://127.0.0.1:3000"
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8501"

# The hosts the rule files use as placeholders (localhost in the files; 127.0.0.1 is the same).
_PLACEHOLDER_HOSTS = {"localhost", "127.0.0.1"}
_RUNBOOK_PLACEHOLDER_PORT = 8501
_GRAFANA_PLACEHOLDER_PORT = 3000


@dataclass(frozen=True)
class LinkSettings:
    """Where the links in messages point (RUNBOOK_BASE_URL, GRAFANA_URL, CONSOLE_URL)."""

    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    grafana_url: str = DEFAULT_GRAFANA_URL
    console_url: str = DEFAULT_CONSOLE_URL
    logs_base_url: str = ""  # LOGS_BASE_URL; empty: no logs link
    traces_base_url: str = ""  # TRACES_BASE_URL; empty: no traces link

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LinkSettings:
        """The variables of an environment (the alerts Settings read them here)."""
        return cls(
            runbook_base_url=env_url(environ, "RUNBOOK_BASE_URL", DEFAULT_RUNBOOK_BASE_URL),
            grafana_url=env_url(environ, "GRAFANA_URL", DEFAULT_GRAFANA_URL),
            console_url=env_url(environ, "CONSOLE_URL", DEFAULT_CONSOLE_URL),
            logs_base_url=env_url(environ, "LOGS_BASE_URL", ""),
            traces_base_url=env_url(environ, "TRACES_BASE_URL", ""),
        )


def _is_placeholder(url: str, port: int) -> bool:
    parts = urlsplit(url)
    try:
        url_port = parts.port
    except ValueError:  # a port that is not a number: not ours
        return False
    return parts.scheme == "http" and parts.hostname in _PLACEHOLDER_HOSTS and url_port == port


def runbook_target(url: str) -> tuple[str, str] | None:
    """(runbook file stem, section anchor) of a console runbook link, or None for other links."""
    parts = urlsplit(url)
    if not parts.path.rstrip("/").endswith("/runbooks"):
        return None
    query = parse_qs(parts.query)
    runbook = query.get("runbook", [""])[0]
    section = query.get("section", [""])[0]
    if not runbook:
        return None
    return runbook, section


def runbook_url(runbook: str, section: str, *, base_url: str = DEFAULT_RUNBOOK_BASE_URL) -> str:
    """The link to one runbook section under `base_url` (see the module docstring)."""
    if "{runbook}" in base_url or "{section}" in base_url:
        return base_url.replace("{runbook}", quote(runbook, safe="")).replace(
            "{section}", quote(section, safe="")
        )
    query = {"runbook": runbook, **({"section": section} if section else {})}
    return f"{base_url.rstrip('/')}?{urlencode(query)}"


def rewrite_runbook_url(url: str, *, base_url: str = DEFAULT_RUNBOOK_BASE_URL) -> str:
    """The rule's runbook link under `base_url`; links not on the local placeholder are kept."""
    target = runbook_target(url)
    if target is None or not _is_placeholder(url, _RUNBOOK_PLACEHOLDER_PORT):
        return url
    return runbook_url(*target, base_url=base_url)


def rewrite_dashboard_url(url: str, *, grafana_url: str = DEFAULT_GRAFANA_URL) -> str:
    """The rule's Grafana link under `grafana_url`, keeping its path, query and fragment."""
    if not url or not _is_placeholder(url, _GRAFANA_PLACEHOLDER_PORT):
        return url
    parts = urlsplit(url)
    rest = parts.path
    if parts.query:
        rest += f"?{parts.query}"
    if parts.fragment:
        rest += f"#{parts.fragment}"
    return grafana_url.rstrip("/") + rest


def console_alert_url(fingerprint: str, *, console_url: str = DEFAULT_CONSOLE_URL) -> str:
    """The console's page for one alert."""
    return f"{console_url.rstrip('/')}/alerts?{urlencode({'fingerprint': fingerprint})}"


def rewrite_annotations(
    annotations: Mapping[str, str], *, links: LinkSettings = LinkSettings()
) -> dict[str, str]:
    """A copy of the annotations with `runbook_url` and `dashboard_url` rewritten."""
    result = dict(annotations)
    if "runbook_url" in result:
        result["runbook_url"] = rewrite_runbook_url(
            result["runbook_url"], base_url=links.runbook_base_url
        )
    if "dashboard_url" in result:
        result["dashboard_url"] = rewrite_dashboard_url(
            result["dashboard_url"], grafana_url=links.grafana_url
        )
    return result


# -- logs and traces ----------------------------------------------------------------------------

WINDOW_BEFORE = timedelta(minutes=15)
WINDOW_AFTER = timedelta(minutes=5)
WINDOW_WHILE_FIRING = timedelta(hours=1)
# The processes that log and trace under these service names (OTEL_SERVICE_NAME's defaults and
# the `service` label the log shipper gives their lines).
PROCESSES = ("billing-engine", "alerts", "console")
# Alerts without a `job` label (sums over every engine) are about the process behind their
# `service` label.
PROCESS_OF_SERVICE = {"billing-engine": "billing-engine", "payments": "billing-engine",
                      "metering": "billing-engine", "security": "billing-engine",
                      "reconciliation": "billing-engine", "alerting": "alerts"}
LOKI_DATASOURCE = {"type": "loki", "uid": "loki"}
TEMPO_DATASOURCE = {"type": "tempo", "uid": "tempo"}


def telemetry_service(labels: Mapping[str, str]) -> str | None:
    """The process whose logs and traces explain an alert, or None."""
    job = labels.get("job", "")
    if job in PROCESSES:
        return job
    return PROCESS_OF_SERVICE.get(labels.get("service", ""))


def alert_window(started: datetime, resolved: datetime | None) -> tuple[datetime, datetime]:
    end = resolved + WINDOW_AFTER if resolved is not None else started + WINDOW_WHILE_FIRING
    return started - WINDOW_BEFORE, end


def _placeholders(service: str, start: datetime, end: datetime) -> dict[str, str]:
    return {"service": quote(service, safe=""),
            "start_ms": str(int(start.timestamp() * 1000)),
            "end_ms": str(int(end.timestamp() * 1000)),
            "start_us": str(int(start.timestamp() * 1_000_000)),
            "end_us": str(int(end.timestamp() * 1_000_000)),
            "start": quote(start.isoformat(), safe=""), "end": quote(end.isoformat(), safe="")}


def _fill(template: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _is_template(base_url: str) -> bool:
    return "{service}" in base_url


def grafana_explore_url(explore_url: str, *, query: Mapping[str, object], start: datetime,
                        end: datetime) -> str:
    """Grafana's Explore page (schema 1 panes, Grafana 10 and 11) with one query and range."""
    datasource = query["datasource"]
    uid = datasource["uid"] if isinstance(datasource, Mapping) else str(datasource)
    panes = {"a": {"datasource": uid, "queries": [dict(query)],
                   "range": {"from": str(int(start.timestamp() * 1000)),
                             "to": str(int(end.timestamp() * 1000))}}}
    params = {"schemaVersion": "1", "panes": json.dumps(panes, separators=(",", ":")),
              "orgId": "1"}
    return f"{explore_url}?{urlencode(params)}"


def logs_url(service: str, start: datetime, end: datetime, *, base_url: str) -> str:
    """The service's logs over [start, end] (see the module docstring)."""
    if _is_template(base_url):
        return _fill(base_url, _placeholders(service, start, end))
    explore = base_url.rstrip("/")
    if not explore.endswith("/explore"):
        explore += "/explore"
    query = {"refId": "A", "datasource": LOKI_DATASOURCE, "queryType": "range",
             "expr": f'{{service="{service}"}}'}
    return grafana_explore_url(explore, query=query, start=start, end=end)


def traces_url(service: str, start: datetime, end: datetime, *, base_url: str) -> str:
    """The service's traces over [start, end] (see the module docstring)."""
    if _is_template(base_url):
        return _fill(base_url, _placeholders(service, start, end))
    base = base_url.rstrip("/")
    if base.endswith("/explore"):
        query = {"refId": "A", "datasource": TEMPO_DATASOURCE, "queryType": "traceql",
                 "query": f'{{resource.service.name="{service}"}}', "limit": 20}
        return grafana_explore_url(base, query=query, start=start, end=end)
    values = _placeholders(service, start, end)
    params = {"service": service, "start": values["start_us"], "end": values["end_us"],
              "lookback": "custom", "limit": "20"}
    return f"{base}/search?{urlencode(params)}"


def alert_links(labels: Mapping[str, str], *, started: datetime, resolved: datetime | None,
                links: LinkSettings) -> dict[str, str]:
    """`logs_url` and `traces_url` of one alert, each only when its base URL is set and the
    alert is about one of our processes."""
    service = telemetry_service(labels)
    if service is None:
        return {}
    start, end = alert_window(started, resolved)
    found = {}
    if links.logs_base_url:
        found["logs_url"] = logs_url(service, start, end, base_url=links.logs_base_url)
    if links.traces_base_url:
        found["traces_url"] = traces_url(service, start, end, base_url=links.traces_base_url)
    return found
