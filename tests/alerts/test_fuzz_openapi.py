"""Schemathesis over the alerts API's OpenAPI document (tests/support/fuzz.py): the app in
process on real PostgreSQL, with a real SMTP server and Slack stand-in behind its delivery
tests, every operation sent generated input, valid and invalid, as an admin staff key. No answer
is a 5xx, and every answer is one the operation declares, in the declared shape. Org keys reach
nothing on this API (tests/alerts/test_access_policy.py), so there is no org-key run here.

`make fuzz` runs this module with many more examples and a random seed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from alerts.api.app import create_app
from alerts.incidents.schemas import IncidentIn, ResolveIn
from alerts.process import AlertsProcess as Process  # tests.alerts.core has devstack's
from alerts.process import build_process, utc_now
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.settings import Settings
from alerts.silences.schemas import SilenceIn
from billing_core.access import Principal, Role
from billing_engine.access.service import AccessKeys
from billing_engine.access.store import KeyStore
from billing_engine.customers.service import Customers
from billing_engine.customers.store import CustomerStore
from billing_engine.db.database import create_database
from devstack.receivers import closed_port
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY, add_org, add_usage
from tests.support.fuzz import FuzzSettings, fuzz, openapi_schema
from tests.support.openapi import api_routes

ORG = "org_fuzz"
LABELS = {"alertname": "BillingEngineDown", "severity": "P0", "instance": "127.0.0.1:8006"}


@pytest.fixture
def process(alerts_pg_url, smtp_server, slack_receiver) -> Iterator[Process]:
    """Delivery tests reach real receivers; Prometheus is a closed port (no route asks it)."""
    settings = Settings(database_url=alerts_pg_url, admin_api_key=ADMIN_KEY, environment="test",
                        smtp_host=smtp_server.host, smtp_port=smtp_server.port,
                        oncall_email="oncall@example.com", slack_webhook_url=slack_receiver.url,
                        prometheus_url=f"http://127.0.0.1:{closed_port()}")
    built = build_process(settings, environ={}, scheduled=False)
    yield built
    built.close()


@pytest.fixture
def admin_token(alerts_pg_url: str, process: Process) -> str:
    """A staff key made by the engine's own access service in the engine's key table."""
    database = create_database(alerts_pg_url, pool_size=1)
    try:
        access = AccessKeys(KeyStore(database), customers=Customers(store=CustomerStore(database)),
                            configured_keys=(), clock=utc_now)
        return access.create_staff_key(name="fuzz-admin", role=Role.admin, expires_at=None,
                                       created_by="fuzz").token
    finally:
        database.dispose()


def seed(process: Process) -> dict[str, list[str | int]]:
    """A firing alert, a silence, an org with usage, an open incident and a resolved one with
    its checklist: values for the path parameters."""
    now = utc_now()
    admin = Principal(kind="staff", name="fuzz-admin", role=Role.admin)
    alert = Alert(fingerprint=fingerprint(LABELS), alertname="BillingEngineDown", labels=LABELS,
                  annotations={"summary": "down"}, status=AlertStatus.FIRING, active_at=now,
                  last_evaluated_at=now, value=0.0, fired_at=now)
    process.store.apply_round(alerts=[alert], dropped=[], messages=[], now=now)
    silence = process.silences.add(
        SilenceIn(matchers=["alertname=Fuzz"], duration="1h", comment="seeded"), by=admin)
    add_org(process.engine, ORG)
    add_usage(process.engine, ORG, date.today(), 600)
    declared = [process.incidents.declare(
        IncidentIn(severity="P2", title=f"Fuzz {n}", impact="none", commander="oncall@example.com",
                   fingerprints=[alert.fingerprint]), by=admin) for n in (1, 2)]
    resolved = process.incidents.resolve(declared[1].id, ResolveIn(summary="seeded"), by=admin)
    return {"fingerprint": [alert.fingerprint], "silence_id": [silence.id], "org_id": [ORG],
            "incident_id": [incident.id for incident in declared],
            "key": [task.key for task in resolved.tasks][:3]}


def test_no_input_gets_a_5xx_or_an_undeclared_answer_from_an_admin(process, admin_token):
    app = create_app(process, run_scheduler=False)
    schema = openapi_schema(app, token=admin_token, likely=seed(process))
    report = fuzz(schema, FuzzSettings.from_env())
    assert report.selected == len(api_routes(app))  # every route in the document
    report.assert_clean()
