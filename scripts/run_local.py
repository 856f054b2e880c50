"""`make run`: the whole local stack on embedded defaults, printing its URLs; Ctrl-C stops it all.

Processes: the engine in demo mode (SQLite under ./var, demo orgs, simulated instances and API
clients), a local SMTP sink writing every mail it gets to var/mail/ as .eml files, a local
Prometheus scraping the engine and the alerts process with the shipped rules, the alerts process
(rule and budget alerts, mailed to the sink; Slack only when SLACK_WEBHOOK_URL is set), and the
Streamlit console (the first URL printed).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


@dataclass
class Service:
    name: str
    port: int
    argv: list[str]
    url: str
    ready_path: str  # an HTTP path answering 200 when ready; "" = the TCP port accepts
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None


def _die_with_parent() -> None:
    """Runs in each child before exec: if the launcher dies, however it dies, so does the child."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise Stop


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(service: Service, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process is not None and service.process.poll() is not None:
            return False
        if not service.ready_path:
            if port_busy(service.port):
                return True
            time.sleep(0.5)
            continue
        try:
            with urlopen(service.url + service.ready_path, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def services() -> list[Service]:
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{VAR / 'billing.db'}"),
        "ADMIN_API_KEY": os.environ.get("ADMIN_API_KEY", "dev-admin-key"),
        "APP_ENV": os.environ.get("APP_ENV", "development"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }
    stack = [
        Service(
            name="billing engine (demo)",
            port=8006,
            argv=[sys.executable, "-m", "billing_engine", "demo", "--port", "8006"],
            url="http://127.0.0.1:8006",
            ready_path="/ready",
            env=env,
        ),
        Service(
            name="mailsink",
            port=1025,
            argv=[sys.executable, "-m", "alerts.mailsink", "--dir", str(VAR / "mail"),
                  "--port", "1025"],
            url="smtp://127.0.0.1:1025",
            ready_path="",
            env=dict(os.environ),
        ),
    ]
    prometheus = shutil.which("prometheus")
    if prometheus:
        stack.append(
            Service(
                name="prometheus",
                port=9090,
                argv=[
                    prometheus,
                    f"--config.file={ROOT / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={VAR / 'prometheus'}",
                    "--storage.tsdb.retention.time=35d",  # the SLO window is 30 days
                    "--web.listen-address=127.0.0.1:9090",
                    "--log.level=warn",
                ],
                url="http://127.0.0.1:9090",
                ready_path="/-/ready",
                env=dict(os.environ),
            )
        )
    else:
        print("prometheus is not installed (apt-get install prometheus); starting without it")
    stack.append(
        Service(
            name="alerts process",
            port=8007,
            argv=[sys.executable, "-m", "alerts", "serve", "--port", "8007"],
            url="http://127.0.0.1:8007",
            ready_path="/healthz",
            env={
                **env,
                "PROMETHEUS_URL": os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090"),
                "SMTP_HOST": os.environ.get("SMTP_HOST", "127.0.0.1"),
                "SMTP_PORT": os.environ.get("SMTP_PORT", "1025"),
                "CONSOLE_URL": os.environ.get("CONSOLE_URL", "http://127.0.0.1:8501"),
                "RUNBOOK_BASE_URL": os.environ.get(
                    "RUNBOOK_BASE_URL", "http://127.0.0.1:8501/runbooks"),
            },
        )
    )
    stack.append(
        Service(
            name="console",
            port=8501,
            argv=[sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                  "--server.port", "8501", "--server.address", "127.0.0.1",
                  "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            url="http://127.0.0.1:8501",
            ready_path="/_stcore/health",
            env={
                **os.environ,
                "ENGINE_URL": os.environ.get("ENGINE_URL", "http://127.0.0.1:8006"),
                "PROMETHEUS_URL": os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090"),
                "ALERTS_URL": os.environ.get("ALERTS_URL", "http://127.0.0.1:8007"),
            },
        )
    )
    return stack


def stop_all(stack: list[Service]) -> None:
    for service in reversed(stack):
        if service.process and service.process.poll() is None:
            os.killpg(service.process.pid, signal.SIGTERM)
    for service in stack:
        if service.process:
            try:
                service.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(service.process.pid, signal.SIGKILL)


def main() -> int:
    VAR.mkdir(exist_ok=True)
    (VAR / "logs").mkdir(exist_ok=True)
    stack = services()
    busy = [f"{s.name} needs port {s.port}" for s in stack if port_busy(s.port)]
    if busy:
        print("cannot start, ports in use: " + "; ".join(busy), file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    try:
        for service in stack:
            log = open(VAR / "logs" / f"{service.name.split()[0]}.log", "ab")  # noqa: SIM115
            service.process = subprocess.Popen(
                service.argv, cwd=ROOT, env=service.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        for service in stack:
            if not wait_ready(service):
                print(f"{service.name} did not become ready; see var/logs/", file=sys.stderr)
                stop_all(stack)
                return 1
        print(
            "\nThe local stack is up (logs in var/logs/, Ctrl-C stops everything):\n"
            "  Ops console           http://127.0.0.1:8501/\n"
            "  Customer lookup       http://127.0.0.1:8501/customers\n"
            "  Runbooks              http://127.0.0.1:8501/runbooks\n"
            "  Billing engine API    http://127.0.0.1:8006/docs\n"
            "  Engine metrics        http://127.0.0.1:8006/metrics\n"
            "  Alerts API            http://127.0.0.1:8007/v1/alerts\n"
            f"  Mail sent (.eml)      {VAR / 'mail'}/\n"
            "  Example billing view  http://127.0.0.1:8006/v1/billing?org_id=org_acme-analytics\n"
            + ("  Prometheus            http://127.0.0.1:9090/alerts\n"
               if any(s.name == "prometheus" for s in stack) else "")
            + "  Admin key (dev only)  dev-admin-key\n",
            flush=True,
        )
        while True:
            for service in stack:
                if service.process and service.process.poll() is not None:
                    print(f"{service.name} exited; stopping the stack", file=sys.stderr)
                    stop_all(stack)
                    return 1
            time.sleep(1)
    except (KeyboardInterrupt, Stop):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        print("\nstopping...", flush=True)
        stop_all(stack)
        return 0


if __name__ == "__main__":
    sys.exit(main())
