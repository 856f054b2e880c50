"""What support sees across rows: an org's instances with throttle state, the heaviest orgs."""

from __future__ import annotations

from datetime import timedelta

from tests.support.builders import ADMIN_HEADERS, hb, new_org, post_heartbeats


def beats(instance_id, org, clock, minutes, state="running"):
    end = clock().replace(second=0)
    return [hb(instance_id, org, end - timedelta(minutes=m), state)
            for m in reversed(range(minutes))]


def send(client, items):
    response = post_heartbeats(client, ADMIN_HEADERS, items)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_orgs_instances_show_usage_and_which_one_was_paused_and_why(client, admin, clock):
    org = new_org(client, admin, plan="free")
    other = new_org(client, admin, plan="free")
    send(client, beats("long-runner", org, clock, 480))  # 8 h straight: paused
    send(client, beats("short", org, clock, 30))
    send(client, beats("elsewhere", other, clock, 5))
    clock.advance(minutes=2)

    body = client.get(f"/v1/orgs/{org}/instances", headers=admin).json()

    assert body["total"] == 2 and body["paused"] == 1
    by_id = {i["instance_id"]: i for i in body["instances"]}
    assert set(by_id) == {"long-runner", "short"}
    paused = by_id["long-runner"]
    assert paused["throttle"]["decision"] == "pause"
    assert paused["throttle"]["reason"] == "continuous_run_limit"
    assert paused["minutes_this_period"] == 480 and paused["hours_this_period"] == 8.0
    assert by_id["short"]["throttle"] == {**by_id["short"]["throttle"], "decision": "run",
                                          "reason": None}
    assert by_id["short"]["minutes_this_period"] == 30
    assert by_id["short"]["seconds_since_seen"] == 150  # last beat at 12:00:00, now 12:02:30


def test_instances_are_limited_most_recent_first(client, admin, clock):
    org = new_org(client, admin)
    send(client, [hb("old", org, clock() - timedelta(minutes=10)), hb("new", org, clock())])
    body = client.get(f"/v1/orgs/{org}/instances", params={"limit": 1}, headers=admin).json()
    assert body["total"] == 2
    assert [i["instance_id"] for i in body["instances"]] == ["new"]


def test_instances_of_an_unknown_org_or_with_a_bad_limit_name_the_field(admin, client):
    missing = client.get("/v1/orgs/org_nobody/instances", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["field"] == "org_id"
    bad = client.get("/v1/orgs/org_x/instances", params={"limit": 0}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "limit"


def test_top_orgs_rank_by_hours_this_period_with_their_quota(client, admin, clock):
    light = new_org(client, admin, plan="base_usage", name="Light Co")
    heavy = new_org(client, admin, plan="free", name="Heavy Co")
    new_org(client, admin, name="Idle Co")
    send(client, beats("l1", light, clock, 60))
    send(client, beats("h1", heavy, clock, 300) + beats("h2", heavy, clock, 420))

    body = client.get("/v1/usage/top", params={"limit": 5}, headers=admin).json()

    assert [o["name"] for o in body["orgs"]] == ["Heavy Co", "Light Co"]
    top = body["orgs"][0]
    assert (top["used_hours"], top["included_hours"], top["overage_hours"]) == (12.0, 10.0, 2.0)
    assert top["percent_used"] == 120.0
    assert body["orgs"][1]["estimated_total_cents"] == 2000  # base fee, inside its 100 h
    assert client.get("/v1/usage/top", params={"limit": 101}, headers=admin).status_code == 422
