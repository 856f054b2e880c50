"""Admin and debug actions: the admin key, org upserts, quota refresh, drift debugging."""

from __future__ import annotations

from datetime import timedelta

from billing_engine.usage.tables import daily_usage
from tests.support.builders import hb, new_org, post_heartbeats


def test_admin_routes_refuse_a_missing_or_wrong_key_and_count_it(admin, client, metrics):
    body = {"name": "X", "email": "x@x.io", "plan": "free"}
    missing = client.put("/admin/orgs/org_x", json=body)
    wrong = client.put("/admin/orgs/org_x", json=body, headers={"X-Admin-Key": "guess"})
    debug = client.get("/debug/meters/pending")
    assert (missing.status_code, wrong.status_code, debug.status_code) == (401, 401, 401)
    assert missing.json()["errors"] == [
        {"field": "Authorization", "reason": "a Bearer credential is required"}
    ]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong.json()["errors"] == [{"field": "X-Admin-Key", "reason": "is not a valid key"}]
    assert metrics.registry.get_sample_value("admin_auth_failures_total",
                                             {"reason": "invalid"}) == 1
    assert metrics.registry.get_sample_value("admin_auth_failures_total",
                                             {"reason": "missing"}) == 2
    assert client.get("/v1/billing", params={"org_id": "org_x"}, headers=admin).status_code == 404


def test_creating_then_updating_an_org(client, admin):
    created = client.put("/admin/orgs/org_new", headers=admin,
                         json={"name": "New Co", "email": "ap@new.co", "plan": "free"})
    updated = client.put("/admin/orgs/org_new", headers=admin,
                         json={"name": "New Co", "email": "ap@new.co", "plan": "team"})
    assert (created.status_code, updated.status_code) == (201, 200)
    assert client.get("/v1/billing", params={"org_id": "org_new"},
                      headers=admin).json()["plan"]["code"] == "team"


def test_org_validation_names_each_bad_field(client, admin):
    bad_plan = client.put("/admin/orgs/org_y", headers=admin,
                          json={"name": "Y", "email": "y@y.io", "plan": "platinum"})
    bad_email = client.put("/admin/orgs/org_y", headers=admin,
                           json={"name": "Y", "email": "not-an-email", "plan": "free"})
    bad_id = client.put("/admin/orgs/bad id!", headers=admin,
                        json={"name": "Y", "email": "y@y.io", "plan": "free"})
    assert bad_plan.status_code == 422 and bad_plan.json()["errors"][0]["field"] == "plan"
    assert "base_usage" in bad_plan.json()["errors"][0]["reason"]
    assert bad_email.status_code == 422 and bad_email.json()["errors"][0]["field"] == "email"
    assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["field"] == "org_id"


def test_quota_refresh_rebuilds_drifted_rollups_from_raw_slots(client, admin, clock, pg_database):
    org = new_org(client, admin)
    post_heartbeats(client, admin, [hb("i1", org, clock() - timedelta(minutes=m))
                                    for m in range(45)])
    with pg_database.engine.begin() as conn:
        conn.execute(daily_usage.update().where(daily_usage.c.org_id == org).values(minutes=5))
    drift = client.get(f"/debug/usage/{org}/daily", headers=admin).json()
    assert drift["in_sync"] is False
    assert drift["days"] == [{"day": "2026-11-18", "rollup_minutes": 5, "raw_minutes": 45,
                              "drift_minutes": -40}]
    refreshed = client.post(f"/admin/quota/{org}/refresh", headers=admin).json()
    assert (refreshed["before_minutes"], refreshed["after_minutes"]) == (5, 45)
    assert refreshed["billing"]["usage"]["used_minutes"] == 45
    assert client.get(f"/debug/usage/{org}/daily", headers=admin).json()["in_sync"] is True


def test_pending_meters_on_an_empty_outbox_says_nothing_waits(client, admin):
    body = client.get("/debug/meters/pending", headers=admin).json()
    assert (body["count"], body["oldest"], body["failed"]) == (0, [], [])
    assert body["provider"] == "simulated"  # no STRIPE_SECRET_KEY in the test settings
