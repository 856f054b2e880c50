"""The whole local stack, built in one place for `make run`, the tests and the benchmarks.

Parts start in this order and stop in reverse: a local OIDC provider (demo users, one per staff
role), the engine, the mail sink, Prometheus (scraping
the engine and the alerts process), the alerts process (mailing through the sink) and the
console. A caller picks the parts it needs; each part's environment can be extended.
If a part does not become ready, the ones already started are stopped and the error names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from devstack.processes import (
    DEFAULT_ADMIN_KEY,
    AlertsProcess,
    Console,
    EngineProcess,
    MailSink,
    OidcProvider,
    PrometheusServer,
    ServiceProcess,
    console_sign_in_env,
    console_user,
)
from devstack.servers import free_port, wait_for

PARTS = ("oidc", "engine", "mailsink", "prometheus", "alerts", "console")
CONSOLE_METRICS = "console-metrics"  # the console's own metrics port, scraped as job console
CONSOLE_CLIENT_ID = "billing-console"  # the console's client at the provider: the tokens' audience


@dataclass
class Stack:
    database_url: str
    admin_key: str = DEFAULT_ADMIN_KEY
    parts: tuple[str, ...] = PARTS
    demo: bool = False  # the engine in demo mode: demo orgs and simulated traffic
    ports: dict[str, int] = field(default_factory=dict)  # part -> port; free ports otherwise
    engine_env: dict[str, str] = field(default_factory=dict)
    alerts_env: dict[str, str] = field(default_factory=dict)
    console_env: dict[str, str] = field(default_factory=dict)
    prometheus_config: Path | None = None  # None: generated, scraping this stack every second
    prometheus_storage: Path | None = None
    prometheus_retention: str = "15d"
    mail_dir: Path | None = None
    log_dir: Path | None = None  # None: temporary log files
    die_with_parent: bool = False  # `make run`: a killed launcher takes its children along

    oidc: OidcProvider | None = field(default=None, init=False)
    engine: EngineProcess | None = field(default=None, init=False)
    mailsink: MailSink | None = field(default=None, init=False)
    prometheus: PrometheusServer | None = field(default=None, init=False)
    alerts: AlertsProcess | None = field(default=None, init=False)
    console: Console | None = field(default=None, init=False)
    started: list[ServiceProcess] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown stack parts {sorted(unknown)}; known: {PARTS}")
        for part in (*PARTS, CONSOLE_METRICS):
            self.ports.setdefault(part, free_port())

    def url(self, part: str) -> str:
        """Where a part listens (or would: a part left out gets a port nothing answers on)."""
        scheme = "smtp" if part == "mailsink" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[part]}"

    def oidc_env(self) -> dict[str, str]:
        """The provider's issuer and the console's client, as every process is told them."""
        if "oidc" not in self.parts:
            return {}
        return {"OIDC_ISSUER_URL": self.url("oidc"), "OIDC_CLIENT_ID": CONSOLE_CLIENT_ID}

    def console_environ(self) -> dict[str, str]:
        """The console's environment in this stack: what `python -m dashboard` is started
        with, and what an AppTest run of the app in a test or the bench needs."""
        return {"ENGINE_URL": self.url("engine"), "PROMETHEUS_URL": self.url("prometheus"),
                "ALERTS_URL": self.url("alerts"), "CONSOLE_URL": self.url("console"),
                **console_sign_in_env(self.oidc_env()), **self.console_env}

    def console_user(self, sub: str) -> dict[str, object]:
        """`st.user` once `sub`, a person the stack's provider knows, has signed in."""
        return console_user(self.url("oidc"), sub, client_id=CONSOLE_CLIENT_ID)

    def _common(self, part: str) -> dict[str, Any]:
        log = self.log_dir / f"{part}.log" if self.log_dir is not None else None
        return {"port": self.ports[part], "log_path": log, "die_with_parent": self.die_with_parent}

    def build(self) -> list[ServiceProcess]:
        """The processes of the chosen parts, in start order, not yet started."""
        oidc_env = self.oidc_env()
        if "oidc" in self.parts:
            self.oidc = OidcProvider(**self._common("oidc"))
        if "engine" in self.parts:
            self.engine = EngineProcess(self.database_url, admin_key=self.admin_key,
                                        demo=self.demo, extra_env=oidc_env | self.engine_env,
                                        **self._common("engine"))
        if "mailsink" in self.parts:
            self.mailsink = MailSink(directory=self.mail_dir, **self._common("mailsink"))
        if "prometheus" in self.parts:
            targets = {"billing-engine": f"127.0.0.1:{self.ports['engine']}"}
            if "alerts" in self.parts:
                targets["alerts"] = f"127.0.0.1:{self.ports['alerts']}"
            if "console" in self.parts:
                targets["console"] = f"127.0.0.1:{self.ports[CONSOLE_METRICS]}"
            self.prometheus = PrometheusServer(
                targets, config_file=self.prometheus_config, storage=self.prometheus_storage,
                retention=self.prometheus_retention, **self._common("prometheus"))
        if "alerts" in self.parts:
            env = {"DATABASE_URL": self.database_url, "ADMIN_API_KEY": self.admin_key,
                   "PROMETHEUS_URL": self.url("prometheus"),
                   "CONSOLE_URL": self.url("console"),
                   "RUNBOOK_BASE_URL": f"{self.url('console')}/runbooks"}
            if "mailsink" in self.parts:
                env |= {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.ports["mailsink"])}
            self.alerts = AlertsProcess(env=env | oidc_env | self.alerts_env,
                                        **self._common("alerts"))
        if "console" in self.parts:
            # People sign in through the stack's provider; the console has no key of its own.
            self.console = Console(engine_url=self.url("engine"),
                                   prometheus_url=self.url("prometheus"),
                                   alerts_url=self.url("alerts"), oidc_env=oidc_env,
                                   extra_env=self.console_env,
                                   metrics_port=self.ports[CONSOLE_METRICS],
                                   **self._common("console"))
        return [p for p in (self.oidc, self.engine, self.mailsink, self.prometheus, self.alerts,
                            self.console) if p is not None]

    def start(self, *, timeout: float = 90) -> Stack:
        processes = self.build()
        try:
            for process in processes:  # all at once; then wait for each in order
                process.start(wait_ready=False)
                self.started.append(process)
            for process in processes:
                wait_for(process.ready, timeout=timeout,
                         what=f"the {process.name} on {process.url}")
        except BaseException:
            self.stop()
            raise
        return self

    def exited(self) -> ServiceProcess | None:
        """A started part that is no longer running, if any."""
        return next((p for p in self.started if not p.running()), None)

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()
        self.started.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
