"""`make run`: the whole local stack on embedded defaults, printing its URLs; Ctrl-C stops it all.

Processes: the engine in demo mode (SQLite under ./var, demo orgs, simulated instances and API
clients), a local SMTP sink writing every mail it gets to var/mail/ as .eml files, a local
Prometheus scraping the engine and the alerts process with the shipped rules, the alerts process
(rule and budget alerts, mailed to the sink; Slack only when SLACK_WEBHOOK_URL is set), and the
Streamlit console (the first URL printed), which people sign in to through a local OpenID Connect
provider with one demo person per staff role (printed with the URLs). A scripted incident runs a
few minutes after start and every half hour (billing_engine/demo/fault.py), answered by a
simulated on-call engineer (devstack/responder.py) under a demo on-call policy that escalates
within 2 minutes (devstack/oncall.demo.yml).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # devstack lives beside the packages, not inside them

from devstack.processes import DEMO_USERS  # noqa: E402
from devstack.responder import DemoResponder  # noqa: E402
from devstack.stack import PARTS, Stack  # noqa: E402

VAR = ROOT / "var"
PORTS = {"oidc": 9400, "engine": 8006, "mailsink": 1025, "prometheus": 9090, "alerts": 8007,
         "console": 8501, "console-metrics": 8502}


class Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise Stop


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def build_stack() -> Stack:
    parts = PARTS
    if shutil.which("prometheus") is None:
        print("prometheus is not installed (apt-get install prometheus); starting without it")
        parts = tuple(p for p in PARTS if p != "prometheus")
    common = {"APP_ENV": os.environ.get("APP_ENV", "development"),
              "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    return Stack(
        database_url=os.environ.get("DATABASE_URL", f"sqlite:///{VAR / 'billing.db'}"),
        admin_key=os.environ.get("ADMIN_API_KEY", "dev-admin-key"),
        parts=parts, demo=True, ports=dict(PORTS),
        engine_env=common, alerts_env={**common, "ONCALL_FILE": os.environ.get(
            "ONCALL_FILE", str(ROOT / "devstack" / "oncall.demo.yml")),
            # Prometheus' data folder, watched by VolumeAlmostFull.
            "WATCH_VOLUMES": os.environ.get("WATCH_VOLUMES", f"prometheus={VAR / 'prometheus'}"),
            **{
            name: os.environ[name] for name in ("PROMETHEUS_URL", "SMTP_HOST", "SMTP_PORT",
                                                "CONSOLE_URL", "RUNBOOK_BASE_URL")
            if name in os.environ}},
        console_env={name: os.environ[name] for name in ("ENGINE_URL", "PROMETHEUS_URL",
                                                         "ALERTS_URL") if name in os.environ},
        prometheus_config=ROOT / "prometheus" / "prometheus.yml",  # scrapes 8006, 8007, 8502
        prometheus_storage=VAR / "prometheus",
        prometheus_retention="35d",  # the SLO window is 30 days
        mail_dir=VAR / "mail", log_dir=VAR / "logs", die_with_parent=True)


def banner(stack: Stack) -> str:
    lines = [
        "",
        "The local stack is up (logs in var/logs/, Ctrl-C stops everything):",
        f"  Ops console           {stack.url('console')}/",
        f"  Customer lookup       {stack.url('console')}/customers",
        f"  Runbooks              {stack.url('console')}/runbooks",
        f"  Billing engine API    {stack.url('engine')}/docs",
        f"  Engine metrics        {stack.url('engine')}/metrics",
        f"  Alerts API            {stack.url('alerts')}/v1/alerts",
        f"  Mail sent (.eml)      {VAR / 'mail'}/",
        f"  Example billing view  {stack.url('engine')}/v1/billing?org_id=org_acme-analytics",
    ]
    if "prometheus" in stack.parts:
        lines.append(f"  Prometheus            {stack.url('prometheus')}/alerts")
    lines.append(f"  Sign-in (local OIDC)  {stack.url('oidc')}/")
    lines.append(f"  Admin key (dev only)  {stack.admin_key}")
    lines.append("A scripted incident (errors and slow reads) starts 4 minutes from now and every "
                 "30 minutes;\n  a simulated on-call engineer answers the page and runs the "
                 "incident (console: On call, Incidents).")
    lines.append("Sign in to the console as a demo person (pick one on the provider's page):")
    lines += [f"  {sub:<22}{group.removeprefix('billing-')}" for sub, _, group in DEMO_USERS]
    return "\n".join(lines) + "\n"


def main() -> int:
    VAR.mkdir(exist_ok=True)
    stack = build_stack()
    busy = [f"{part} needs port {stack.ports[part]}" for part in stack.parts
            if port_busy(stack.ports[part])]
    if busy:
        print("cannot start, ports in use: " + "; ".join(busy), file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    try:
        try:
            stack.start()
        except (RuntimeError, TimeoutError) as exc:
            print(f"the stack did not start: {exc}\nsee var/logs/", file=sys.stderr)
            return 1
        print(banner(stack), flush=True)
        if "alerts" in stack.parts:
            DemoResponder(stack.url("engine"), stack.url("alerts"), stack.admin_key).start()
        while True:
            gone = stack.exited()
            if gone is not None:
                print(f"the {gone.name} exited; stopping the stack (see var/logs/)",
                      file=sys.stderr)
                stack.stop()
                return 1
            time.sleep(1)
    except (KeyboardInterrupt, Stop):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        print("\nstopping...", flush=True)
        stack.stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
