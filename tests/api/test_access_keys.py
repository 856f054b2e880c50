"""API keys as an admin, a fleet and a customer's CLI meet them: shown once, kept as a hash,
rotated without a gap, revoked and expired on every replica, and never written to a log."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from billing_engine.access.tables import api_keys
from billing_engine.api import create_app
from billing_engine.audit.tables import audit_log
from tests.support.builders import bearer, create_key, hb, new_org


def billing(client, org, headers):
    return client.get("/v1/billing", params={"org_id": org}, headers=headers)


def test_a_key_is_shown_once_and_stored_only_as_its_hash(client, admin, pg_database):
    org = new_org(client, admin)
    created = create_key(client, admin, org, ("billing:read",))
    token = created["key"]
    assert token.startswith("bk_live_") and len(token) >= 40
    assert created["prefix"] == token[:14] and created["created_by"] == "admin"
    listed = client.get(f"/admin/orgs/{org}/keys", headers=admin).json()["keys"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and token not in str(listed)
    with pg_database.engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == created["id"])).one()
    assert row.sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in " ".join(str(value) for value in row)
    assert billing(client, org, bearer(token)).status_code == 200


def test_two_active_keys_rotate_without_a_gap(client, admin):
    org = new_org(client, admin)
    old = create_key(client, admin, org, ("billing:read",))
    new = create_key(client, admin, org, ("billing:read",))
    assert billing(client, org, bearer(old["key"])).status_code == 200
    assert billing(client, org, bearer(new["key"])).status_code == 200
    revoked = client.delete(f"/admin/orgs/{org}/keys/{old['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = billing(client, org, bearer(old["key"]))
    assert refused.status_code == 401
    assert refused.json()["errors"] == [{"field": "Authorization",
                                         "reason": "the key was revoked"}]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert billing(client, org, bearer(new["key"])).status_code == 200


@pytest.fixture
def replica(pg_database, settings, metrics, clock) -> Iterator[TestClient]:
    """A second engine on the same database and clock, as another replica would be."""
    from billing_engine.operability.metrics import EngineMetrics

    app = create_app(settings, database=pg_database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    with TestClient(app) as other:
        yield other


def test_a_revocation_reaches_another_replica_within_its_cache_time(client, replica, admin,
                                                                    clock):
    org = new_org(client, admin)
    key = create_key(client, admin, org, ("billing:read",))
    assert billing(replica, org, bearer(key["key"])).status_code == 200  # now in its cache
    client.delete(f"/admin/orgs/{org}/keys/{key['id']}", headers=admin)
    assert billing(client, org, bearer(key["key"])).status_code == 401  # at once, here
    clock.advance(seconds=2)  # the cache's lifetime (well inside the promised 5 s)
    assert billing(replica, org, bearer(key["key"])).status_code == 401


def test_an_expired_key_is_refused(client, admin, clock, metrics):
    org = new_org(client, admin)
    key = create_key(client, admin, org, ("billing:read",),
                     expires_at=(clock() + timedelta(minutes=1)).isoformat())
    assert billing(client, org, bearer(key["key"])).status_code == 200
    clock.advance(seconds=61)
    refused = billing(client, org, bearer(key["key"]))
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["reason"] == "the key has expired"
    assert metrics.registry.get_sample_value("auth_failures_total", {"reason": "expired"}) == 1


def test_creating_a_key_names_what_is_wrong(client, admin, clock):
    org = new_org(client, admin)
    cases = {
        "/admin/orgs/org_nobody/keys": ({"name": "x", "scopes": ["billing:read"]}, 404, "org_id"),
        f"/admin/orgs/{org}/keys": ({"name": "x", "scopes": ["admin"]}, 422, "scopes[0]"),
    }
    for path, (body, status, field) in cases.items():
        response = client.post(path, json=body, headers=admin)
        assert response.status_code == status, response.text
        assert response.json()["errors"][0]["field"] == field
    past = client.post(f"/admin/orgs/{org}/keys", headers=admin, json={
        "name": "x", "scopes": ["billing:read"],
        "expires_at": (clock() - timedelta(seconds=1)).isoformat()})
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "expires_at"
    nul = client.post(f"/admin/orgs/{org}/keys", headers=admin,
                      json={"name": "a\x00b", "scopes": ["billing:read"]})
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "name"


def test_another_orgs_data_is_refused_to_an_org_key_and_counted(client, admin, metrics):
    mine, theirs = new_org(client, admin), new_org(client, admin)
    key = bearer(create_key(client, admin, mine, ("billing:read",))["key"])
    refused = billing(client, theirs, key)
    assert refused.status_code == 403
    assert refused.json()["errors"] == [{"field": "org_id",
                                         "reason": "names another org than the key's"}]
    sneaky = client.get(f"/v1/invoices?org_id={mine}&org_id={theirs}", headers=key)
    assert sneaky.status_code == 403
    assert metrics.registry.get_sample_value("access_denied_total", {"reason": "other_org"}) == 2


def test_a_batch_naming_another_org_is_refused_whole_and_nothing_is_stored(client, admin, clock):
    mine, theirs = new_org(client, admin), new_org(client, admin)
    key = bearer(create_key(client, admin, mine, ("usage:write",))["key"])
    batch = [hb(f"vm-{n}", mine, clock()) for n in range(3)] + [hb("vm-9", theirs, clock())]
    refused = client.post("/v1/heartbeats", json={"heartbeats": batch}, headers=key)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "heartbeats[3].org_id"
    for org in (mine, theirs):
        usage = billing(client, org, admin).json()["usage"]
        assert usage["used_minutes"] == 0
    # Nor may a fleet claim another org's instance id, nor staff send at all.
    staff = client.post("/v1/heartbeats", json={"heartbeats": batch[:1]}, headers=admin)
    assert staff.status_code == 403


def test_heartbeats_in_text_plain_are_refused_with_415(client, admin, clock):
    org = new_org(client, admin)
    key = bearer(create_key(client, admin, org, ("usage:write",))["key"])
    body = json.dumps({"heartbeats": [hb("vm-1", org, clock())]})
    refused = client.post("/v1/heartbeats", content=body,
                          headers={"Content-Type": "text/plain", **key})
    assert refused.status_code == 415
    assert refused.json()["errors"] == [{"field": "Content-Type",
                                         "reason": "must be application/json"}]
    assert billing(client, org, admin).json()["usage"]["used_minutes"] == 0
    accepted = client.post("/v1/heartbeats", content=body,
                           headers={"Content-Type": "application/json", **key})
    assert accepted.status_code == 200 and accepted.json()["accepted"] == 1


def test_last_use_is_written_at_most_once_a_minute(client, admin, clock, pg_database):
    org = new_org(client, admin)
    key = create_key(client, admin, org, ("billing:read",))

    def last_used():
        with pg_database.engine.connect() as conn:
            return conn.execute(select(api_keys.c.last_used_at)
                                .where(api_keys.c.id == key["id"])).scalar_one()

    billing(client, org, bearer(key["key"]))
    first = last_used()
    assert first == clock()
    clock.advance(seconds=30)
    billing(client, org, bearer(key["key"]))
    assert last_used() == first
    clock.advance(seconds=31)
    billing(client, org, bearer(key["key"]))
    assert last_used() == clock()


def test_staff_keys_carry_a_role_and_the_audit_log_names_them(client, admin):
    made = client.post("/admin/staff-keys", headers=admin, json={"name": "sam", "role": "support"})
    assert made.status_code == 201 and made.json()["key"].startswith("bks_live_")
    support = bearer(made.json()["key"])
    assert client.get("/v1/customers", headers=support).status_code == 200
    refused = client.put("/admin/orgs/org_x", headers=support,
                         json={"name": "X", "email": "x@x.io", "plan": "free"})
    assert refused.status_code == 403
    assert "admin" in refused.json()["errors"][0]["reason"]
    twin = client.post("/admin/staff-keys", headers=admin, json={"name": "sam", "role": "admin"})
    assert twin.status_code == 409 and twin.json()["errors"][0]["field"] == "name"
    boss = client.post("/admin/staff-keys", headers=admin, json={"name": "ada", "role": "admin"})
    org = new_org(client, bearer(boss.json()["key"]))
    [entry] = client.get("/admin/audit", headers=admin, params={"org_id": org}).json()
    assert (entry["actor"], entry["outcome"]) == ("ada", "succeeded")
    # The legacy header carries staff keys only, a stored one included.
    assert client.get("/v1/customers", headers={"X-Admin-Key": made.json()["key"]}
                      ).status_code == 200
    org_key = create_key(client, admin, org, ("billing:read",))["key"]
    assert client.get("/v1/billing", params={"org_id": org},
                      headers={"X-Admin-Key": org_key}).status_code == 401
    gone = client.delete(f"/admin/staff-keys/{made.json()['id']}", headers=admin)
    assert gone.status_code == 200
    assert client.get("/v1/customers", headers=support).status_code == 401


def test_secrets_never_reach_the_logs_or_the_audit_log(client, admin, caplog, pg_database):
    caplog.set_level(logging.DEBUG)
    org = new_org(client, admin)
    created = create_key(client, admin, org, ("billing:read", "usage:write"))
    staff = client.post("/admin/staff-keys", headers=admin,
                        json={"name": "ops", "role": "operator"}).json()
    secrets = [created["key"], staff["key"], admin["X-Admin-Key"]]
    billing(client, org, bearer(created["key"]))
    client.post("/admin/meters/flush", headers=bearer(staff["key"]))
    wrong = created["key"][:-1] + ("A" if created["key"][-1] != "A" else "B")
    client.post(f"/admin/quota/{org}/refresh", headers=bearer(wrong))
    client.delete(f"/admin/orgs/{org}/keys/{created['id']}", headers=admin)
    with pg_database.engine.connect() as conn:
        audit = " ".join(str(row) for row in conn.execute(select(audit_log)))
    logged = caplog.text + " ".join(str(vars(record)) for record in caplog.records)
    for secret in [*secrets, wrong]:
        assert secret not in logged
        assert secret not in audit
    assert "ops" in audit  # the operator's flush is recorded under its key's name
