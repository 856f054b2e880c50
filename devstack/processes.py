"""Our processes, and Prometheus, as real subprocesses on a port of their own.

Each starts in its own session (so a stop reaches its workers too), writes its output to a log
file, and is ready when its readiness path answers 200 (the mail sink: when its port accepts).
If it exits before it is ready, the error carries the end of its log.

In the test suite, starting one is allowed only in a test marked `processes`: the fast lane
(`make test-fast`) leaves those out, and this check keeps a new test from slipping a subprocess
into it unmarked.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from devstack.servers import ROOT, free_port, tcp_open, wait_for

DEFAULT_ADMIN_KEY = "test-admin-key-0123456789"
SHIPPED_RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
# Set by the test suite's conftest around each test: "forbidden" unless it is marked `processes`.
GUARD_VARIABLE = "DEVSTACK_PROCESSES"

_PR_SET_PDEATHSIG = 1
_LIBC: Any = None


def _die_with_parent() -> None:
    """Runs in the child before exec: when the launcher dies, however it dies, so does the child.
    libc is loaded in the parent: nothing that takes a lock runs between fork and exec."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _temp_log(prefix: str) -> Path:
    handle, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=".log")
    os.close(handle)
    return Path(name)


@dataclass
class ServiceProcess:
    """One process of the stack. Subclasses give its command line and environment."""

    name: ClassVar[str] = "process"
    ready_path: ClassVar[str] = "/ready"  # "" = ready when the port accepts connections

    port: int = field(default_factory=free_port, kw_only=True)
    log_path: Path | None = field(default=None, kw_only=True)
    die_with_parent: bool = field(default=False, kw_only=True)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def environ(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def prepare(self) -> None:
        """Anything to write before the process starts (a config file)."""

    def start(self, *, wait_ready: bool = True, timeout: float = 60) -> Any:
        if os.environ.get(GUARD_VARIABLE) == "forbidden":
            raise RuntimeError(
                f"this test starts the {self.name}: mark it `processes` "
                "(pytestmark = pytest.mark.processes) so the fast lane leaves it out")
        self.prepare()
        if self.log_path is None:
            self.log_path = _temp_log(self.name.replace(" ", "-"))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] = {}
        if self.die_with_parent:
            global _LIBC
            _LIBC = _LIBC or ctypes.CDLL("libc.so.6", use_errno=True)
            extra["preexec_fn"] = _die_with_parent
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv(), cwd=ROOT, env=self.environ(), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, **extra)
        if wait_ready:
            wait_for(self.ready, timeout=timeout, what=f"the {self.name} on {self.url}")
        return self

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the {self.name} exited ({self.process.returncode}): "
                               f"{self.log()[-3000:]}")
        if not self.ready_path:
            return tcp_open(self.port)
        return httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code == 200

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.running():
            assert self.process is not None
            os.killpg(self.process.pid, sig)
            self.process.wait(30)

    def stop(self) -> None:
        if not self.running():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclass
class EngineProcess(ServiceProcess):
    """`python -m billing_engine serve` (or `demo`: demo orgs and simulated traffic)."""

    name: ClassVar[str] = "billing engine"

    database_url: str
    admin_key: str = DEFAULT_ADMIN_KEY
    workers: int = 1
    demo: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        if self.demo:
            return [sys.executable, "-m", "billing_engine", "demo", "--port", str(self.port)]
        return [sys.executable, "-m", "billing_engine", "serve", "--port", str(self.port),
                "--workers", str(self.workers)]

    def environ(self) -> dict[str, str]:
        return {**super().environ(), "DATABASE_URL": self.database_url,
                "ADMIN_API_KEY": self.admin_key, "APP_ENV": "test", **self.extra_env}


@dataclass
class AlertsProcess(ServiceProcess):
    """`python -m alerts serve` with the environment a caller gives it."""

    name: ClassVar[str] = "alerts process"

    env: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "alerts", "serve"]

    def environ(self) -> dict[str, str]:
        return {**super().environ(), "APP_ENV": "test", "ADMIN_API_KEY": DEFAULT_ADMIN_KEY,
                "LOG_LEVEL": "INFO", **self.env, "PORT": str(self.port)}

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample of its /metrics, or None when it has none with these labels."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in (labels or {}).items()):
                    return float(sample.value)
        return None


@dataclass
class MailSink(ServiceProcess):
    """`python -m alerts.mailsink`: every mail it takes is written to a folder as an .eml file."""

    name: ClassVar[str] = "mail sink"
    ready_path: ClassVar[str] = ""

    directory: Path | None = None  # None: a temporary folder

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="mail-"))

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "alerts.mailsink", "--dir", str(self.directory),
                "--port", str(self.port)]


@dataclass
class Console(ServiceProcess):
    """`python -m dashboard`, pointed at the engine, Prometheus and alerts process. With
    `oidc_env` (the provider's issuer and the console's client) people sign in through it."""

    name: ClassVar[str] = "console"
    ready_path: ClassVar[str] = "/_stcore/health"

    engine_url: str = ""
    prometheus_url: str = ""
    alerts_url: str = ""
    oidc_env: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)  # its own /metrics (dashboard/server.py)

    sign_in_env: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sign_in_env = console_sign_in_env(self.oidc_env)  # one cookie secret per console

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "dashboard", "--host", "127.0.0.1", "--port", str(self.port)]

    def environ(self) -> dict[str, str]:
        return {**super().environ(), "ENGINE_URL": self.engine_url,
                "PROMETHEUS_URL": self.prometheus_url, "ALERTS_URL": self.alerts_url,
                "CONSOLE_URL": self.url, "CONSOLE_METRICS_PORT": str(self.metrics_port),
                **self.sign_in_env, **self.extra_env}


def console_sign_in_env(oidc_env: Mapping[str, str]) -> dict[str, str]:
    """The console's sign-in settings for a local provider (none without one): any client
    secret will do there, and the cookie secret is made afresh."""
    if not oidc_env:
        return {}
    return {**oidc_env, "OIDC_CLIENT_SECRET": "local-console-secret",
            "CONSOLE_COOKIE_SECRET": secrets.token_urlsafe(32)}


# One demo person per staff role, signed in through the local provider by `make run` and the tests:
# (subject, name, the group the role claim carries).
DEMO_USERS = (
    ("viewer@example.com", "Vera Viewer", "billing-viewer"),
    ("support@example.com", "Sam Support", "billing-support"),
    ("operator@example.com", "Olga Operator", "billing-operator"),
    ("admin@example.com", "Ada Admin", "billing-admin"),
)


@dataclass
class OidcProvider(ServiceProcess):
    """A local OpenID Connect provider (PyPI's oidc-provider-mock, a development dependency):
    real discovery, JWKS, authorization-code flow and signed ID tokens, with a login page that
    lists the demo users. Any client id and secret are accepted."""

    name: ClassVar[str] = "OIDC provider"
    ready_path: ClassVar[str] = "/.well-known/openid-configuration"

    users: tuple[tuple[str, str, str], ...] = DEMO_USERS
    token_max_age_seconds: int = 3600

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "oidc_provider_mock", "--port", str(self.port),
                "--token-max-age", str(self.token_max_age_seconds)]
        for claims in demo_user_claims(self.users):
            argv += ["--user-claims", json.dumps(claims)]
        return argv

    @property
    def issuer(self) -> str:
        return self.url

    def id_token(self, sub: str, *, client_id: str) -> str:
        return issue_id_token(self.issuer, sub, client_id=client_id)


def demo_user_claims(users: tuple[tuple[str, str, str], ...] = DEMO_USERS
                     ) -> list[dict[str, object]]:
    return [{"sub": sub, "email": sub, "name": full_name, "groups": [group]}
            for sub, full_name, group in users]


def issue_id_token(issuer: str, sub: str, *, client_id: str,
                   redirect_uri: str = "http://127.0.0.1/callback") -> str:
    """An ID token for `sub` from a running provider, through its own authorization-code flow:
    the authorize form posted as that user, then the code exchanged at the token endpoint."""
    with httpx.Client(timeout=10) as client:
        config = client.get(f"{issuer}/.well-known/openid-configuration").json()
        answer = client.post(config["authorization_endpoint"], params={
            "client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code",
            "scope": "openid email profile", "state": "s", "nonce": "n"}, data={"sub": sub})
        code = httpx.URL(answer.headers["location"]).params["code"]
        token = client.post(config["token_endpoint"], data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id, "client_secret": "secret"})
        token.raise_for_status()
        return str(token.json()["id_token"])


def console_user(issuer: str, sub: str, *, client_id: str) -> dict[str, object]:
    """What `st.user` holds once `sub` has signed in to the console through the provider at
    `issuer`: the ID token's claims, and the token itself under `tokens` (the console exposes
    only the ID token). For AppTest runs of the console, in the tests and the bench."""
    import jwt

    token = issue_id_token(issuer, sub, client_id=client_id)
    claims = jwt.decode(token, options={"verify_signature": False})
    return {**claims, "is_logged_in": True, "tokens": {"id": token}}


@dataclass
class PrometheusServer(ServiceProcess):
    """A real Prometheus. By default it scrapes the given targets every second with the shipped
    rules, keeping its data in a temporary folder removed on stop; `config_file` and `storage`
    run it on a config and folder of the caller's instead (what `make run` does)."""

    name: ClassVar[str] = "prometheus"
    ready_path: ClassVar[str] = "/-/ready"

    targets: dict[str, str] = field(default_factory=dict)  # job name -> host:port
    rule_files: Sequence[Path] | None = None  # None: the shipped prometheus/rules/*.yml
    scrape_interval: str = "1s"
    evaluation_interval: str | None = None  # None: the scrape interval
    alertmanager: str | None = None  # host:port of an Alertmanager to send alerts to
    config_file: Path | None = None
    storage: Path | None = None
    retention: str = "15d"
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="promtest-")))

    def prepare(self) -> None:
        if shutil.which("prometheus") is None:
            raise RuntimeError("prometheus is needed: apt-get install prometheus")
        if self.config_file is not None:
            return
        import yaml

        rules = SHIPPED_RULES if self.rule_files is None else self.rule_files
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval,
                       "evaluation_interval": self.evaluation_interval or self.scrape_interval,
                       "scrape_timeout": "1s"},
            "rule_files": [str(p) for p in rules],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in self.targets.items()
            ],
        }
        if self.alertmanager is not None:
            config["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": [self.alertmanager]}]}]}
        (self.base / "prometheus.yml").write_text(yaml.safe_dump(config))

    def argv(self) -> list[str]:
        config = self.config_file or self.base / "prometheus.yml"
        return [str(shutil.which("prometheus")), f"--config.file={config}",
                f"--storage.tsdb.path={self.storage or self.base / 'data'}",
                f"--storage.tsdb.retention.time={self.retention}",
                # The engine's latency samples carry trace ids as exemplars (OpenMetrics, which
                # Prometheus asks for); this keeps them, as docker-compose's Prometheus does.
                "--enable-feature=exemplar-storage",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]

    def get(self, path: str, **params: str) -> Any:
        body = httpx.get(f"{self.url}{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, object]]:
        return self.get("/api/v1/query", query=expr)["result"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.base, ignore_errors=True)

    destroy = stop


@dataclass
class Alertmanager(ServiceProcess):
    """Debian's prometheus-alertmanager (a bench comparison, never part of the stack), sending
    every alert to one webhook with its defaults otherwise (group_wait 30 s)."""

    name: ClassVar[str] = "alertmanager"
    ready_path: ClassVar[str] = "/-/ready"

    webhook_url: str = ""
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="alertmanager-")))

    def prepare(self) -> None:
        import yaml

        config = {"route": {"receiver": "webhook", "group_by": ["alertname"]},
                  "receivers": [{"name": "webhook",
                                 "webhook_configs": [{"url": self.webhook_url}]}]}
        (self.base / "alertmanager.yml").write_text(yaml.safe_dump(config))

    def argv(self) -> list[str]:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise RuntimeError("alertmanager is needed: apt-get install prometheus-alertmanager")
        return [binary, f"--config.file={self.base / 'alertmanager.yml'}",
                f"--storage.path={self.base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                "--log.level=warn"]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.base, ignore_errors=True)
