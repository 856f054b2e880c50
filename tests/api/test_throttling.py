"""Throttling through the API, as the support runbook describes the free plan's limits."""

from __future__ import annotations

from datetime import timedelta

from tests.support.builders import ADMIN_HEADERS, hb, new_org, post_heartbeats


def beats(instance_id, org, clock, minutes, state="running", end_offset=0):
    end = clock().replace(second=0) - timedelta(minutes=end_offset)
    return [hb(instance_id, org, end - timedelta(minutes=m), state)
            for m in reversed(range(minutes))]


def send(client, items):
    response = post_heartbeats(client, ADMIN_HEADERS, items)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_free_instance_running_8_hours_straight_is_told_to_pause(client, admin, clock, metrics):
    org = new_org(client, admin, plan="free")
    body = send(client, beats("i1", org, clock, 480))
    assert body["decisions"] == [
        {"instance_id": "i1", "action": "pause", "reason": "continuous_run_limit"}]
    debug = client.get("/debug/throttle/i1", headers=admin).json()
    assert (debug["action"], debug["reason"], debug["plan"]) == (
        "pause", "continuous_run_limit", "free")
    assert debug["since"] == "2026-11-18T04:01:00+00:00"
    assert debug["numbers"]["continuous_run_minutes"] == 480
    assert debug["numbers"]["continuous_run_limit_minutes"] == 480
    assert debug["paused_since"] == clock().isoformat()
    # It keeps sending heartbeats: still paused, but one pause episode is counted once.
    clock.advance(minutes=1)
    again = send(client, [hb("i1", org, clock())])
    assert again["decisions"][0]["action"] == "pause"
    sample = metrics.registry.get_sample_value
    assert sample("instances_paused_total", {"reason": "continuous_run_limit"}) == 1
    assert sample("throttle_instances_over_limit") == 1


def test_just_under_8_hours_runs_and_the_decision_says_so(client, admin, clock):
    org = new_org(client, admin, plan="free")
    body = send(client, beats("i1", org, clock, 479))
    assert body["decisions"] == [{"instance_id": "i1", "action": "run", "reason": None}]


def test_an_org_over_24_instance_hours_today_hits_the_daily_cap(client, admin, clock, metrics):
    org = new_org(client, admin, plan="free")
    items = [b for n in range(4) for b in beats(f"i{n}", org, clock, 360)]
    body = send(client, items)
    assert {(d["instance_id"], d["action"], d["reason"]) for d in body["decisions"]} == {
        (f"i{n}", "pause", "daily_cap") for n in range(4)}
    debug = client.get("/debug/throttle/i0", headers=admin).json()
    assert debug["numbers"]["org_minutes_today"] == 1440
    assert debug["numbers"]["daily_cap_minutes"] == 1440
    assert debug["since"] == "2026-11-18T00:00:00+00:00"
    assert metrics.registry.get_sample_value("instances_paused_total",
                                             {"reason": "daily_cap"}) == 4


def test_resetting_the_daily_counter_lets_instances_run_and_leaves_billing_alone(
        client, admin, clock):
    org = new_org(client, admin, plan="free")
    send(client, [b for n in range(4) for b in beats(f"i{n}", org, clock, 360)])
    billed_before = client.get("/v1/billing", params={"org_id": org}, headers=admin).json()
    reset = client.post(f"/admin/throttle/{org}/reset-daily", headers=admin)
    assert reset.status_code == 200
    assert reset.json()["billed_minutes_today"] == 1440
    assert reset.json()["throttle_minutes_today"] == 0
    billed_after = client.get("/v1/billing", params={"org_id": org}, headers=admin).json()
    assert billed_after["usage"] == billed_before["usage"]
    assert billed_after["charges"] == billed_before["charges"]
    clock.advance(minutes=1)
    body = send(client, [hb(f"i{n}", org, clock()) for n in range(4)])
    assert {d["action"] for d in body["decisions"]} == {"run"}
    usage = client.get("/v1/billing", params={"org_id": org}, headers=admin).json()["usage"]
    assert usage["used_minutes"] == 1444


def test_a_free_instance_idle_for_30_minutes_is_paused(client, admin, clock, metrics):
    org = new_org(client, admin, plan="free")
    send(client, beats("i1", org, clock, 10, end_offset=31))
    body = send(client, beats("i1", org, clock, 31, state="idle"))
    assert body["decisions"] == [{"instance_id": "i1", "action": "pause", "reason": "idle"}]
    debug = client.get("/debug/throttle/i1", headers=admin).json()
    assert debug["since"] == "2026-11-18T11:30:00+00:00"
    assert debug["numbers"]["idle_minutes"] == 30
    assert metrics.registry.get_sample_value("instances_paused_total", {"reason": "idle"}) == 1


def test_paid_plans_take_their_limits_from_config(client, admin, clock):
    org = new_org(client, admin, plan="base_usage")  # no run limit or cap; idle after 120 min
    long_run = send(client, beats("runner", org, clock, 600))
    assert long_run["decisions"][0]["action"] == "run"
    idle_hour = send(client, beats("sleeper", org, clock, 61, state="idle"))
    assert idle_hour["decisions"][0]["action"] == "run"
    clock.advance(minutes=60)
    checked = client.post("/admin/throttle/instances/sleeper/check", headers=admin).json()
    assert (checked["action"], checked["reason"]) == ("pause", "idle")
    assert checked["numbers"]["idle_pause_minutes"] == 120
    assert checked["plan"] == "base_usage"


def test_a_forced_check_records_the_decision_and_counts_a_new_pause(client, admin, clock,
                                                                    metrics):
    org = new_org(client, admin, plan="free")
    send(client, beats("i1", org, clock, 5, state="idle"))
    assert client.get("/debug/throttle/i1", headers=admin).json()["action"] == "run"
    clock.advance(minutes=30)
    view = client.get("/debug/throttle/i1", headers=admin).json()
    assert (view["action"], view["paused_since"]) == ("pause", None)  # a view records nothing
    checked = client.post("/admin/throttle/instances/i1/check", headers=admin).json()
    assert checked["reason"] == "idle" and checked["paused_since"] == clock().isoformat()
    client.post("/admin/throttle/instances/i1/check", headers=admin)
    assert metrics.registry.get_sample_value("instances_paused_total", {"reason": "idle"}) == 1


def test_rejected_heartbeats_get_no_decision(client, admin, clock):
    org = new_org(client, admin, plan="free")
    body = send(client, [hb("i1", org, clock()), hb("ghost", org, clock() + timedelta(hours=1))])
    assert [d["instance_id"] for d in body["decisions"]] == ["i1"]


def test_throttle_routes_name_the_field_they_could_not_find(client, admin):
    missing_instance = client.get("/debug/throttle/nope", headers=admin)
    missing_check = client.post("/admin/throttle/instances/nope/check", headers=admin)
    missing_org = client.post("/admin/throttle/org_nobody/reset-daily", headers=admin)
    unauthorised = client.post("/admin/throttle/org_nobody/reset-daily")
    assert missing_instance.status_code == 404 and missing_check.status_code == 404
    assert missing_instance.json()["errors"][0]["field"] == "instance_id"
    assert missing_org.status_code == 404
    assert missing_org.json()["errors"][0]["field"] == "org_id"
    assert unauthorised.status_code == 401


def test_heartbeats_are_acknowledged_even_when_the_throttle_check_fails(client, admin, clock):
    org = new_org(client, admin, plan="free")
    enforcement = client.app.state.services.throttling

    def broken(*_args, **_kwargs):
        raise RuntimeError("throttle store unreachable")

    enforcement.decide_batch = broken
    body = send(client, [hb("i1", org, clock())])
    assert (body["accepted"], body["decisions"]) == (1, [])
    assert client.get("/v1/billing", params={"org_id": org},
                      headers=admin).json()["usage"]["used_minutes"] == 1
