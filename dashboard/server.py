"""The console's process: its own metrics endpoint, then Streamlit's command line.

`python -m dashboard` replaces itself with `python -m dashboard.server run dashboard/app.py ...`
(see `dashboard/__main__.py`). Starting the metrics endpoint here, before Streamlit takes over,
puts it in the very process that serves people, from its first second, whether or not anyone
has opened a page yet: Streamlit runs `app.py` only for a browser session, so anything started
from there would be missing while nobody looks. Tracing (`billing_core.tracing`) starts here
too, for the same reason.

The endpoint is prometheus_client's own HTTP server on `CONSOLE_METRICS_PORT` (8502 by default,
0 for none), on the console's host: process CPU, memory and start time, the memory and CPU
limits of its cgroup and `console_build_info`. It serves the Prometheus text format, or
OpenMetrics when the scraper asks for it. Like the APIs' `/metrics` it needs no credential and
shows nothing about people or customers.
"""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry, Info, ProcessCollector, start_http_server

from billing_core.resources import ResourceCollector
from billing_core.tracing import configure_tracing
from dashboard.settings import ConsoleSettings

log = logging.getLogger("dashboard")
__version__ = "0.1.0"


def console_registry() -> CollectorRegistry:
    """Every metric the console exports (docs/metrics.md, job `console`)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    ResourceCollector(registry=registry)
    Info("console_build", "Console build.", registry=registry).info({"version": __version__})
    return registry


def start_metrics(settings: ConsoleSettings, *, host: str) -> int | None:
    """Serve the console's metrics on its own port; the port, or None when switched off."""
    if not settings.metrics_port:
        return None
    try:
        server, _thread = start_http_server(settings.metrics_port, addr=host,
                                            registry=console_registry())
    except OSError as error:
        # People come first: the console still serves, and ConsoleDown tells on-call that
        # Prometheus cannot see it.
        print(f"console: metrics port {settings.metrics_port} unavailable ({error.strerror}); "
              "serving without metrics", file=sys.stderr)
        return None
    return int(server.server_port)


def host_from(argv: list[str]) -> str:
    """The address Streamlit is told to listen on: the metrics endpoint listens there too."""
    if "--server.address" in argv:
        index = argv.index("--server.address") + 1
        if index < len(argv):
            return argv[index]
    return "127.0.0.1"


def main() -> None:
    settings = ConsoleSettings.from_env()
    start_metrics(settings, host=host_from(sys.argv))
    # The console's calls to the engine and the alerts API (httpx) and to Prometheus (requests,
    # under prometheus-api-client) carry the W3C traceparent; off unless an endpoint is set.
    configure_tracing("console", version=__version__, instrument=("httpx", "requests"))
    from streamlit.web.cli import main as streamlit_main

    sys.argv[0] = "streamlit"
    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
