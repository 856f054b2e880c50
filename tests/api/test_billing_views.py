"""The support views: billing, daily usage, customer search, instances."""

from __future__ import annotations

from datetime import timedelta

from tests.support.builders import ADMIN_HEADERS, hb, new_org, post_heartbeats


def send_minutes(client, org, clock, minutes, instance="i1"):
    batch = [hb(instance, org, clock() - timedelta(minutes=m)) for m in range(minutes)]
    for start in range(0, len(batch), 5000):
        post_heartbeats(client, ADMIN_HEADERS, batch[start:start + 5000])


def test_billing_shows_usage_against_the_plan_with_charges_in_cents(client, admin, clock):
    org = new_org(client, admin, plan="base_usage")
    # 100 h included: use 101 h 30 min across two instances.
    send_minutes(client, org, clock, 3000, "i1")
    send_minutes(client, org, clock, 3090, "i2")
    body = client.get("/v1/billing", params={"org_id": org}, headers=admin).json()
    assert body["org"]["id"] == org and body["plan"]["code"] == "base_usage"
    assert body["period"]["key"] == "2026-11"
    usage = body["usage"]
    assert usage["included_hours"] == 100.0
    assert usage["used_minutes"] == 6090 and usage["used_hours"] == 101.5
    assert usage["remaining_hours"] == 0.0 and usage["overage_hours"] == 1.5
    assert usage["percent_used"] == 101.5
    assert body["charges"] == {"currency": "usd", "base_fee_cents": 2000,
                               "estimated_overage_cents": 38, "estimated_total_cents": 2038}
    assert body["thresholds_crossed"] == [50, 90, 100]


def test_unknown_org_is_a_404_naming_the_org(admin, client):
    response = client.get("/v1/billing", params={"org_id": "org_missing"}, headers=admin)
    assert response.status_code == 404
    assert response.json()["errors"] == [
        {"field": "org_id", "reason": "no org with id 'org_missing'"}]


def test_daily_usage_has_a_row_for_every_day_including_empty_ones(client, admin, clock):
    org = new_org(client, admin)
    send_minutes(client, org, clock, 90)
    days = client.get(f"/v1/usage/{org}/daily", params={"days": 7}, headers=admin).json()["days"]
    assert len(days) == 7
    assert days[-1] == {"day": "2026-11-18", "minutes": 90, "hours": 1.5}
    assert all(d["minutes"] == 0 for d in days[:-1])


def test_days_out_of_range_names_the_parameter(client, admin):
    org = new_org(client, admin)
    response = client.get(f"/v1/usage/{org}/daily", params={"days": 0}, headers=admin)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "days"


def test_customer_search_finds_by_email_prefix_and_paginates(client, admin):
    marker = "zq" + new_org(client, admin)[-6:]
    for n in range(3):
        new_org(client, admin, name=f"{marker} Shop {n}")
    first = client.get("/v1/customers", params={"q": marker.upper(), "page_size": 2},
                       headers=admin).json()
    second = client.get("/v1/customers", params={"q": marker, "page_size": 2, "page": 2},
                        headers=admin).json()
    assert first["total"] == 3 and len(first["results"]) == 2 and len(second["results"]) == 1
    org = first["results"][0]
    by_email = client.get("/v1/customers", params={"q": org["billing_email"][:12]},
                          headers=admin).json()
    assert org["id"] in [o["id"] for o in by_email["results"]]


def test_instance_view_shows_state_last_seen_and_minutes(client, admin, clock):
    org = new_org(client, admin)
    send_minutes(client, org, clock, 30, "vm-7")
    post_heartbeats(client, admin, [hb("vm-7", org, clock(), "idle")])
    clock.advance(seconds=45)
    body = client.get("/v1/instances/vm-7", headers=admin).json()
    assert body["org_id"] == org and body["state"] == "idle"
    assert body["minutes_this_period"] == 30
    assert body["seconds_since_seen"] == 45
    assert client.get("/v1/instances/vm-unknown", headers=admin).status_code == 404


def test_plans_are_listed_with_their_version(admin, client):
    body = client.get("/v1/plans", headers=admin).json()
    assert body["version"] >= 1
    assert {"free", "base_usage"} <= {p["code"] for p in body["plans"]}


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    document = client.get("/openapi.json").json()
    assert {"/v1/heartbeats", "/v1/billing", "/v1/customers"} <= set(document["paths"])
    body = document["paths"]["/v1/heartbeats"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"] == "#/components/schemas/HeartbeatBatch"
    batch = document["components"]["schemas"]["HeartbeatBatch"]
    assert batch["properties"]["heartbeats"]["maxItems"] == 5000
