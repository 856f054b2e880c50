"""The real stack the console tests run against: a local OIDC provider, an engine and a
Prometheus scraping it, built with devstack's Stack like `make run`.

Pages are opened as a signed-in person: `Stack.console_user` gets a real ID token for a demo
person from the stack's provider (its own authorization-code flow) and hands AppTest what
Streamlit's `st.login` would leave in `st.user`: the token's claims and the token itself.

Module-scoped, so each test module gets its own (test_pages_live stops its engine at the end).
This stack has no alerts process on purpose: ALERTS_URL points at a port nothing answers on, and
the pages must say so and fall back to Prometheus' own alerts. Modules that need the real alerts
process build a stack with it (test_alerts_page_live.py, test_pages_billing_live.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devstack.processes import EngineProcess, OidcProvider, PrometheusServer
from devstack.servers import create_scratch_database, wait_for
from devstack.stack import Stack
from tests.support.builders import engine_org_key

ADMIN = "test-admin-key-0123456789"
INSTANCES, MINUTES = 3, 40  # 120 billable minutes = 2.00 h
KNOWN_ORG_NAME = "Console Test Co"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
SCREENSHOTS = pytest.StashKey[list[Path]]()  # what the browser check saved in this session
# The demo people of the stack's provider (devstack.processes.DEMO_USERS), one per role.
VIEWER, SUPPORT, OPERATOR, ADMIN_PERSON = ("viewer@example.com", "support@example.com",
                                           "operator@example.com", "admin@example.com")


@dataclass
class KnownOrgStack:
    """The stack's engine and Prometheus, the org seeded in it, and an alerts URL nothing
    answers on."""

    stack: Stack
    org_id: str

    @property
    def engine(self) -> EngineProcess:
        assert self.stack.engine is not None
        return self.stack.engine

    @property
    def oidc(self) -> OidcProvider:
        assert self.stack.oidc is not None
        return self.stack.oidc

    @property
    def prometheus(self) -> PrometheusServer:
        assert self.stack.prometheus is not None
        return self.stack.prometheus

    @property
    def alerts_url(self) -> str:
        return self.stack.url("alerts")


def seed_known_org(engine_url: str) -> str:
    """An org on base_usage with 3 instances x 40 minutes = 2.00 h used this period."""
    org = f"org_dash_{uuid.uuid4().hex[:6]}"
    response = httpx.put(f"{engine_url}/admin/orgs/{org}", headers={"X-Admin-Key": ADMIN},
                         json={"name": KNOWN_ORG_NAME, "email": f"{org}@example.com",
                               "plan": "base_usage"})
    assert response.status_code == 201, response.text
    now = datetime.now(UTC).replace(second=5, microsecond=0)
    beats = [{"instance_id": f"{org}-vm{i}", "org_id": org,
              "ts": (now - timedelta(minutes=m + 1)).isoformat(), "state": "running"}
             for i in range(INSTANCES) for m in range(MINUTES)]
    answer = httpx.post(f"{engine_url}/v1/heartbeats", json={"heartbeats": beats},
                        headers=engine_org_key(engine_url, ADMIN, org)).json()
    assert answer["accepted"] == INSTANCES * MINUTES, answer
    return org


@pytest.fixture(scope="module")
def stack(pg_server_url: str) -> Iterator[KnownOrgStack]:
    with Stack(create_scratch_database(pg_server_url), admin_key=ADMIN,
               parts=("oidc", "engine", "prometheus")) as started:
        live = KnownOrgStack(started, "")
        engine, prometheus = live.engine, live.prometheus
        live.org_id = org = seed_known_org(engine.url)

        def traffic_until_rules_have_values() -> bool:
            # Requests between scrapes, so rates are above zero and the SLO rules have values.
            staff = {"X-Admin-Key": ADMIN}
            httpx.get(f"{engine.url}/v1/billing", params={"org_id": org}, headers=staff)
            httpx.get(f"{engine.url}/v1/billing", params={"org_id": "org_missing"}, headers=staff)
            time.sleep(0.3)
            return bool(prometheus.query("slo:http_availability_burn_rate:rate5m"))

        wait_for(traffic_until_rules_have_values, timeout=30,
                 what="the SLO recording rules to produce a value")
        yield live


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the browser check left its screenshots, so a reviewer can open them."""
    shots = terminalreporter.config.stash.get(SCREENSHOTS, [])
    if shots:
        terminalreporter.write_line(
            f"console screenshots ({len(shots)}) saved under {SCREENSHOT_DIR}")
