"""Links in alert messages: the rule files' placeholder URLs made real for this installation.

The rule files in prometheus/rules/ link every alert the same way in every environment:

    runbook_url:   http://localhost:8501/runbooks?runbook=<file stem>&section=<anchor>
    dashboard_url: http://localhost:3000/d/<uid>

At send time those local placeholders are rewritten to `RUNBOOK_BASE_URL` and `GRAFANA_URL`.
A link that points anywhere else was written on purpose by a rule author and is kept as it is.

`RUNBOOK_BASE_URL` is either the console's runbook page (the default; the link becomes
`<base>?runbook=<stem>&section=<anchor>`) or a template holding `{runbook}` and `{section}`,
for runbooks read elsewhere: `https://git.example.com/ops/blob/main/runbooks/{runbook}.md#{section}`.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LinkSettings:
        """The three variables of an environment (the alerts Settings read them here)."""
        return cls(
            runbook_base_url=env_url(environ, "RUNBOOK_BASE_URL", DEFAULT_RUNBOOK_BASE_URL),
            grafana_url=env_url(environ, "GRAFANA_URL", DEFAULT_GRAFANA_URL),
            console_url=env_url(environ, "CONSOLE_URL", DEFAULT_CONSOLE_URL),
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
