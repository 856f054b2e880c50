"""Who may call each route of the alerts API, on real PostgreSQL: every route of the app's route
table against the policy table (a route without an entry fails here by name), called with no
credential, a wrong key, a revoked, an expired and an org key, each staff role by a key created
in the engine's own table through the engine's access service, ADMIN_API_KEY and a named
ADMIN_API_KEYS key; every answer is the one the table declares. Then the audit log: a change
writes its row in the same transaction, and is refused when the row cannot be written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from alerts.access.policy import ALERTS_POLICY
from alerts.api.app import api_routes, create_app
from alerts.process import AlertsProcess, build_process, utc_now
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.settings import Settings
from billing_core.access import Public, Role, Scope, StaffRole
from billing_engine.access.service import AccessKeys
from billing_engine.access.store import KeyStore
from billing_engine.customers.service import Customers
from billing_engine.customers.store import CustomerStore
from billing_engine.db.database import create_database
from devstack.receivers import closed_port
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY, add_org

NAMED_KEY = "named-admin-key-for-bob-0123"
LABELS = {"alertname": "BillingEngineDown", "severity": "P0", "instance": "127.0.0.1:8006"}


@pytest.fixture
def process(alerts_pg_url: str) -> Iterator[AlertsProcess]:
    settings = Settings(database_url=alerts_pg_url, admin_api_key=ADMIN_KEY,
                        admin_api_keys=(("bob", NAMED_KEY),), environment="test",
                        smtp_port=closed_port(), smtp_timeout_seconds=2,
                        oncall_email="oncall@example.com")
    built = build_process(settings, environ={}, scheduled=False)
    yield built
    built.close()


@pytest.fixture
def keys(alerts_pg_url: str, process: AlertsProcess) -> dict[str, str]:
    """Tokens made by the engine's own access service in the engine's key table."""
    database = create_database(alerts_pg_url, pool_size=1)
    add_org(process.engine, "org_acme")
    access = AccessKeys(KeyStore(database), customers=Customers(store=CustomerStore(database)),
                        configured_keys=(), clock=utc_now)
    made = {role.name: access.create_staff_key(name=f"{role.name}-key", role=role,
                                               expires_at=None, created_by="test").token
            for role in Role}
    revoked = access.create_staff_key(name="gone", role=Role.admin, expires_at=None,
                                      created_by="test")
    access.revoke(revoked.key.id, kind="staff")
    expiring = access.create_staff_key(name="soon", role=Role.admin,
                                       expires_at=utc_now() + timedelta(seconds=1),
                                       created_by="test")
    org = access.create_org_key(org_id="org_acme", name="fleet", scopes=[Scope.billing_read,
                                Scope.usage_write], expires_at=None, created_by="test")
    database.dispose()
    made.update(revoked=revoked.token, expired=expiring.token, org=org.token)
    return made


def seed(process: AlertsProcess) -> dict[str, str]:
    now = utc_now()
    alert = Alert(fingerprint=fingerprint(LABELS), alertname="BillingEngineDown", labels=LABELS,
                  annotations={"summary": "down"}, status=AlertStatus.FIRING, active_at=now,
                  last_evaluated_at=now, value=0.0, fired_at=now)
    process.store.apply_round(alerts=[alert], dropped=[], messages=[], now=now)
    return {"fingerprint": alert.fingerprint, "silence_id": "no-such-silence",
            "org_id": "org_acme"}


BODIES = {
    ("POST", "/v1/silences"): {"matchers": ["alertname=BillingEngineDown"], "duration": "1h",
                               "comment": "policy test"},
    ("POST", "/admin/test-email"): {"to": "me@example.com"},
    ("POST", "/admin/test-slack"): {},
}


def test_every_route_has_a_policy_entry_and_answers_what_it_declares(process, keys):
    app = create_app(process, run_scheduler=False)
    known = seed(process)
    routes = [(m, r.path_format) for r in api_routes(app.routes) for m in sorted(r.methods)]
    missing = [f"{m} {p}" for m, p in routes if (m, p) not in ALERTS_POLICY]
    assert missing == [], "routes without an entry in alerts/access/policy.py"
    assert set(ALERTS_POLICY) - set(routes) <= {("GET", "/openapi.json"), ("GET", "/docs"),
                                                 ("GET", "/docs/oauth2-redirect"),
                                                 ("GET", "/redoc")}
    time.sleep(1.1)  # the expiring key is past its expires_at
    callers = {
        "none": ({}, None),
        "wrong key": ({"Authorization": "Bearer bks_live_" + "w" * 43}, None),
        "not a token": ({"X-Admin-Key": "nope"}, None),
        "revoked": ({"Authorization": f"Bearer {keys['revoked']}"}, None),
        "expired": ({"Authorization": f"Bearer {keys['expired']}"}, None),
        "org key": ({"Authorization": f"Bearer {keys['org']}"}, "org"),
        **{role.name: ({"Authorization": f"Bearer {keys[role.name]}"}, role) for role in Role},
        "viewer by X-Admin-Key": ({"X-Admin-Key": keys["viewer"]}, Role.viewer),
        "ADMIN_API_KEY": ({"X-Admin-Key": ADMIN_KEY}, Role.admin),
        "ADMIN_API_KEY as Bearer": ({"Authorization": f"Bearer {ADMIN_KEY}"}, Role.admin),
        "ADMIN_API_KEYS bob": ({"Authorization": f"Bearer {NAMED_KEY}"}, Role.admin),
    }
    wrong = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path in [*routes, ("GET", "/openapi.json")]:
            requirement = ALERTS_POLICY[(method, path)]
            url = path
            for name, value in known.items():
                url = url.replace("{" + name + "}", value)
            for who, (headers, as_) in callers.items():
                response = client.request(method, url, headers=headers,
                                          json=BODIES.get((method, path)))
                if isinstance(requirement, Public):
                    expected = "not refused"
                elif as_ is None:
                    expected = "401"
                elif as_ == "org" or (isinstance(requirement, StaffRole)
                                      and as_ < requirement.role):
                    expected = "403"
                else:
                    expected = "not refused"
                got = response.status_code
                ok = (got not in (401, 403)) if expected == "not refused" else \
                    str(got) == expected
                if ok and got == 401:
                    ok = response.headers.get("WWW-Authenticate", "").startswith("Bearer")
                if not ok or got >= 500 and got != 502:
                    wrong.append(f"{method} {path} as {who}: {got}, expected {expected}: "
                                 f"{response.text[:160]}")
    assert wrong == []


def test_a_route_without_a_policy_entry_is_refused_to_everyone(process):
    app = create_app(process, run_scheduler=False)

    @app.get("/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {"x": "y"}

    with TestClient(app) as client:
        answer = client.get("/v1/forgotten", headers={"X-Admin-Key": ADMIN_KEY})
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["field"] == "route"


def test_who_acted_is_the_staff_keys_name_and_each_change_has_its_audit_row(process, keys):
    alert = seed(process)["fingerprint"]
    operator = {"Authorization": f"Bearer {keys['operator']}"}
    with TestClient(create_app(process, run_scheduler=False), headers=operator) as client:
        acked = client.post(f"/v1/alerts/{alert}/ack", json={"by": "somebody else"})
        added = client.post("/v1/silences", json={"matchers": ["alertname=X"],
                                                  "duration": "1h", "comment": "why"})
        expired = client.delete(f"/v1/silences/{added.json()['id']}")
        client.post("/admin/test-email", json={"to": "me@example.com"})
    assert acked.json()["acked_by"] == "operator-key"
    assert added.json()["created_by"] == "operator-key"
    assert expired.status_code == 200
    rows = process.store.audit_log()
    assert [(r["actor"], r["role"], r["action"]) for r in reversed(rows)] == [
        ("operator-key", "operator", "alert.ack"), ("operator-key", "operator", "silence.add"),
        ("operator-key", "operator", "silence.expire"),
        ("operator-key", "operator", "test.email")]
    assert rows[2]["target"] == rows[1]["target"] == added.json()["id"]
    text_of_rows = repr(rows)
    assert keys["operator"] not in text_of_rows and ADMIN_KEY not in text_of_rows


def test_a_change_whose_audit_row_cannot_be_written_is_refused(process, keys):
    alert = seed(process)["fingerprint"]
    with process.engine.begin() as conn:
        conn.execute(text("DROP TABLE alert_audit"))
    admin = {"X-Admin-Key": ADMIN_KEY}
    with TestClient(create_app(process, run_scheduler=False), headers=admin,
                    raise_server_exceptions=False) as client:
        acked = client.post(f"/v1/alerts/{alert}/ack")
        added = client.post("/v1/silences", json={"matchers": ["alertname=X"],
                                                  "duration": "1h", "comment": "why"})
        sent = client.post("/admin/test-email", json={"to": "me@example.com"})
        shown = client.get("/v1/alerts").json()["alerts"]
        silences = client.get("/v1/silences").json()["silences"]
    for answer in (acked, added, sent):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "audit_unavailable"
    assert [a["acked"] for a in shown] == [False]
    assert silences == []


def test_on_a_database_without_the_engine_tables_the_configured_keys_still_work(tmp_path):
    from alerts.store.migrate import migrate

    url = f"sqlite:///{tmp_path / 'alerts-only.db'}"
    migrate(url)
    settings = Settings(database_url=url, admin_api_key=ADMIN_KEY,
                        admin_api_keys=(("bob", NAMED_KEY),), environment="test")
    process = build_process(settings, environ={}, scheduled=False)
    try:
        with TestClient(create_app(process, run_scheduler=False)) as client:
            admin = client.get("/v1/silences", headers={"X-Admin-Key": ADMIN_KEY})
            bob = client.get("/v1/silences", headers={"Authorization": f"Bearer {NAMED_KEY}"})
            staff = client.get("/v1/silences",
                               headers={"Authorization": "Bearer bks_live_" + "s" * 43})
    finally:
        process.close()
    assert (admin.status_code, bob.status_code, staff.status_code) == (200, 200, 401)
    assert staff.json()["errors"] == [{"field": "Authorization", "reason": "is not a valid key"}]
