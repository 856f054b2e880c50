"""The admin audit log: who (by key name), what, when, and how it ended, for every admin change."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from billing_core.access import Role, StaffRole
from billing_core.settings import SettingsError
from billing_engine.access.policy import ENGINE_POLICY
from billing_engine.api import create_app
from billing_engine.audit import keys as audit_module
from billing_engine.audit.keys import identify_admin
from billing_engine.audit.tables import audit_log
from billing_engine.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.support.builders import new_org

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"


def named_settings() -> Settings:
    return Settings(admin_api_key=ADMIN_KEY, environment="test",
                    admin_api_keys=(("alice", ALICE), ("bob", BOB)))


@pytest.fixture
def named(pg_database, metrics, clock) -> Iterator[TestClient]:
    app = create_app(named_settings(), database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False)

    app.state.access_policy = {**ENGINE_POLICY,
                               ("POST", "/admin/_test/explode"): StaffRole(Role.admin)}

    @app.post("/admin/_test/explode")
    def explode() -> None:  # an admin route added outside our routers, failing hard
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def audit(client, **params):
    response = client.get("/admin/audit", headers={"X-Admin-Key": ADMIN_KEY}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_admin_change_is_recorded_under_the_name_of_the_key_used(named, clock):
    alice, bob = {"X-Admin-Key": ALICE}, {"X-Admin-Key": BOB}
    org = new_org(named, alice, plan="free")
    granted = named.post("/admin/credits", headers=bob,
                         json={"org_id": org, "amount_cents": 750, "reason": "ticket 9"})
    assert granted.json()["granted_by"] == "bob"
    recompute = named.post(f"/admin/entitlements/{org}/recompute",
                           headers={"X-Admin-Key": ADMIN_KEY})
    assert recompute.status_code == 200
    credit, put = audit(named, org_id=org)[1:3]
    newest = audit(named, org_id=org)[0]
    assert (newest["actor"], newest["method"], newest["path"]) == (
        "admin", "POST", f"/admin/entitlements/{org}/recompute")
    assert (credit["actor"], credit["status"], credit["outcome"]) == ("bob", 201, "succeeded")
    assert credit["summary"]["body"] == {"org_id": org, "amount_cents": 750, "reason": "ticket 9"}
    assert credit["target"] == f"org_id={org}"
    assert (put["actor"], put["method"], put["path"], put["target"]) == (
        "alice", "PUT", f"/admin/orgs/{org}", f"org_id={org}")
    assert put["at"] == clock().isoformat() and put["request_id"]
    assert [e["actor"] for e in audit(named, actor="alice")] == ["alice"]


def test_a_wrong_or_missing_key_is_counted_not_recorded(named, metrics):
    org = "org_target"
    before = len(audit(named))
    for _ in range(5):  # what a scanner does: each carries a body it chose (the limit is 10)
        wrong = named.put(f"/admin/orgs/{org}", headers={"X-Admin-Key": ALICE[:-1]},
                          json={"name": "X" * 200, "email": "x@x.io", "plan": "free"})
        assert wrong.status_code == 401
    assert named.post(f"/admin/quota/{org}/refresh").status_code == 401
    assert len(audit(named)) == before  # nothing it sent is stored
    failures = metrics.registry.get_sample_value
    assert failures("auth_failures_total", {"reason": "unknown"}) == 5
    assert failures("auth_failures_total", {"reason": "missing"}) == 1


def test_a_nul_in_the_query_string_is_recorded_as_asked_with_the_action(named):
    alice = {"X-Admin-Key": ALICE}
    org = new_org(named, alice)
    answer = named.post(f"/admin/quota/{org}/refresh?note=a%00b", headers=alice)
    assert answer.status_code == 200, answer.text
    [entry] = [e for e in audit(named, org_id=org) if e["path"].endswith("/refresh")]
    assert entry["outcome"] == "succeeded"
    assert entry["summary"]["query"] == {"note": "a\x00b"}  # kept as JSON's \u0000 escape


def test_a_refusal_of_a_known_caller_is_recorded_with_its_reason_and_without_its_body(
        named, pg_database):
    support = named.post("/admin/staff-keys", headers={"X-Admin-Key": ALICE},
                         json={"name": "sam", "role": "support"}).json()["key"]
    org = "org_target"
    refused = named.put(f"/admin/orgs/{org}", headers={"Authorization": f"Bearer {support}"},
                        params={"q": "attacker-query"},
                        json={"name": "attacker-body", "email": "x@x.io", "plan": "free"})
    assert refused.status_code == 403
    [entry] = audit(named, org_id=org)
    assert (entry["actor"], entry["status"], entry["outcome"]) == ("sam", 403, "refused")
    assert entry["summary"] == {"refused": "role"}
    with pg_database.engine.connect() as conn:
        stored = json.dumps([list(r) for r in conn.execute(select(audit_log))], default=str)
    assert "attacker-body" not in stored and "attacker-query" not in stored


def test_a_failed_action_is_recorded_with_its_status(named):
    alice = {"X-Admin-Key": ALICE}
    bad = named.post("/admin/credits", headers=alice,
                     json={"org_id": "org_x", "amount_cents": 0, "reason": "oops"})
    unknown = named.post("/admin/credits", headers=alice,
                         json={"org_id": "org_x", "amount_cents": 5, "reason": "oops"})
    crashed = named.post("/admin/_test/explode", headers=alice)
    assert (bad.status_code, unknown.status_code, crashed.status_code) == (422, 404, 500)
    entries = audit(named, actor="alice")
    assert [(e["path"], e["status"], e["outcome"]) for e in entries] == [
        ("/admin/_test/explode", 500, "failed"),
        ("/admin/credits", 404, "failed"),
        ("/admin/credits", 422, "failed"),
    ]


def test_reads_and_unknown_routes_are_not_recorded(named):
    alice = {"X-Admin-Key": ALICE}
    org = new_org(named, alice)
    before = len(audit(named))
    assert named.get(f"/debug/usage/{org}/daily", headers=alice).status_code == 200
    assert named.post("/admin/no-such-thing", headers=alice).status_code == 404
    assert named.get("/admin/audit", headers=alice).status_code == 200
    assert len(audit(named)) == before


def test_secrets_never_reach_the_audit_log(named, pg_database):
    alice = {"X-Admin-Key": ALICE}
    org = new_org(named, alice)
    leaky = named.post("/admin/credits", headers=alice, json={
        "org_id": org, "amount_cents": 5, "reason": f"pasted {BOB} by mistake",
        "api_key": "sk_live_should_not_be_kept"})
    assert leaky.status_code == 422  # the extra field is refused, and still recorded
    [entry] = [e for e in audit(named, org_id=org) if e["status"] == 422]
    assert entry["summary"]["body"]["api_key"] == "[redacted]"
    assert entry["summary"]["body"]["reason"] == "pasted [redacted] by mistake"
    with pg_database.engine.connect() as conn:
        stored = json.dumps([list(r) for r in conn.execute(select(audit_log))], default=str)
    for secret in (ALICE, BOB, ADMIN_KEY, "sk_live_should_not_be_kept"):
        assert secret not in stored


def test_the_audit_log_is_for_admins_only_and_validates_its_filters(named):
    assert named.get("/admin/audit").status_code == 401
    bad = named.get("/admin/audit", headers={"X-Admin-Key": BOB}, params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "limit"
    for _ in range(3):
        named.post("/admin/quota/org_none/refresh", headers={"X-Admin-Key": BOB})
    assert len(audit(named, limit=2)) == 2


def test_an_action_whose_audit_row_cannot_be_written_is_refused_and_not_done(
    sqlite_database, metrics, clock, admin
):
    app = create_app(Settings(admin_api_key=ADMIN_KEY, environment="test"),
                     database=sqlite_database, metrics=metrics, clock=clock, housekeeping=False)
    with sqlite_database.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_log"))
    with TestClient(app) as client:
        refused = client.put("/admin/orgs/org_a", headers=admin,
                             json={"name": "A", "email": "a@a.io", "plan": "free"})
        assert refused.status_code == 503
        assert refused.json()["error"] == "audit_unavailable"
        assert refused.headers["Retry-After"]
        # Nothing was done: the org does not exist.
        assert client.get("/v1/billing", params={"org_id": "org_a"},
                          headers=admin).status_code == 404
    assert metrics.registry.get_sample_value("admin_audit_write_failures_total") == 1


def test_every_key_is_compared_whichever_matches(monkeypatch):
    keys = (("admin", "k-admin-0000"), ("alice", "k-alice-1111"), ("bob", "k-bob-2222"))
    calls: list[bytes] = []
    real = audit_module.hmac.compare_digest

    def counting(a, b):  # type: ignore[no-untyped-def]
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(audit_module.hmac, "compare_digest", counting)
    assert identify_admin(keys, "k-admin-0000") == "admin"
    assert identify_admin(keys, "k-bob-2222") == "bob"
    assert identify_admin(keys, "k-bob-222") is None
    assert len(calls) == 9  # three keys, three times: no early exit


def test_named_keys_are_read_from_the_environment_and_checked():
    settings = Settings.from_env({"ADMIN_API_KEYS": f"alice:{ALICE}, bob:{BOB}"})
    assert settings.admin_keys()[1:] == (("alice", ALICE), ("bob", BOB))
    assert settings.admin_keys()[0][0] == "admin"
    assert ALICE in settings.secret_values() and ALICE not in repr(settings)
    for raw, hint in [("Alice:k1", "name"), ("alice", "name:key"), ("alice:", "name:key"),
                      ("admin:k1", "admin"), ("a:k1,a:k2", "twice"), ("a:k1,b:k1", "key")]:
        with pytest.raises(SettingsError, match="ADMIN_API_KEYS") as caught:
            Settings.from_env({"ADMIN_API_KEYS": raw})
        assert hint in str(caught.value)
    with pytest.raises(SettingsError, match="at least 16"):
        Settings.from_env({"APP_ENV": "production", "ADMIN_API_KEY": "x" * 32,
                           "ADMIN_API_KEYS": "alice:short"})
