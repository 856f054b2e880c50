"""POST /v1/heartbeats, as an instance fleet and its retries see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing_engine.usage.facts import refused_orgs
from tests.support.builders import hb, new_org, org_headers, post_heartbeats


def test_a_batch_reports_accepted_duplicate_and_rejected_counts(client, admin, clock):
    org = new_org(client, admin)
    now = clock()
    batch = [
        hb("i1", org, now),
        hb("i1", org, now.replace(second=5)),  # same minute: a duplicate
        hb("i3", org, now + timedelta(minutes=10)),
        hb("i4", org, datetime(2026, 10, 15, tzinfo=UTC)),
    ]
    response = post_heartbeats(client, admin, batch)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 1, 2)
    assert [(r["index"], r["reason"]) for r in body["rejections"]] == [
        (2, "future_timestamp"), (3, "closed_period")]
    assert all(r["message"] for r in body["rejections"])


def test_a_retried_batch_is_acknowledged_and_never_billed_twice(client, admin, clock):
    org = new_org(client, admin)
    batch = [hb(f"i{n}", org, clock() - timedelta(minutes=m)) for n in range(3) for m in range(20)]
    first = post_heartbeats(client, admin, batch).json()
    retry = post_heartbeats(client, admin, batch).json()
    assert (first["accepted"], retry["accepted"], retry["duplicate"]) == (60, 0, 60)
    usage = client.get("/v1/billing", params={"org_id": org}, headers=admin).json()["usage"]
    assert usage["used_minutes"] == 60
    assert usage["used_hours"] == 1.0


def test_late_heartbeats_within_the_open_period_still_count(client, admin, clock):
    org = new_org(client, admin)
    post_heartbeats(client, admin, [hb("i1", org, clock())])
    early_this_month = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    late = post_heartbeats(client, admin, [hb("i1", org, early_this_month)])
    assert late.json()["accepted"] == 1
    daily = client.get(f"/v1/usage/{org}/daily", params={"days": 30}, headers=admin).json()["days"]
    by_day = {d["day"]: d["minutes"] for d in daily}
    assert by_day["2026-11-02"] == 1 and by_day["2026-11-18"] == 1


def test_an_invalid_item_rejects_the_batch_naming_its_field(client, admin, clock):
    org = new_org(client, admin)
    batch = [hb("i1", org, clock()), {"instance_id": "i2", "org_id": org,
                                      "ts": "2026-11-18T12:00:00", "state": "sleeping"}]
    response = post_heartbeats(client, admin, batch)
    assert response.status_code == 422
    fields = {e["field"]: e["reason"] for e in response.json()["errors"]}
    assert set(fields) == {"heartbeats[1].ts", "heartbeats[1].state"}
    assert "timezone" in fields["heartbeats[1].ts"]
    # Nothing from a refused batch is stored.
    assert client.get("/v1/billing", params={"org_id": org},
                      headers=admin).json()["usage"]["used_minutes"] == 0


def test_batches_over_5000_items_are_refused_and_empty_ones_too(client, admin, clock):
    org = new_org(client, admin)
    item = hb("i1", org, clock())
    too_big = post_heartbeats(client, admin, [item] * 5001)
    empty = post_heartbeats(client, admin, [], org_id=org)
    assert too_big.status_code == 422 and empty.status_code == 422
    assert too_big.json()["errors"][0]["field"] == "heartbeats"
    assert "5000" in too_big.json()["errors"][0]["reason"]
    assert post_heartbeats(client, admin, [item] * 5000).status_code == 200


def test_malformed_json_names_the_body(client, admin):
    key = org_headers(client, admin, new_org(client, admin))
    response = client.post("/v1/heartbeats", content=b"{not json",
                           headers={"content-type": "application/json", **key})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


def test_an_instance_moving_to_another_org_is_refused(client, admin, clock):
    first, second = new_org(client, admin), new_org(client, admin)
    post_heartbeats(client, admin, [hb("shared-1", first, clock())])
    moved = post_heartbeats(client, admin,
                            [hb("shared-1", second, clock() + timedelta(minutes=1))]).json()
    assert moved["rejections"][0]["reason"] == "instance_org_mismatch"


def test_rejections_and_ingest_are_counted_in_metrics(client, admin, clock, metrics):
    org = new_org(client, admin)
    post_heartbeats(client, admin, [
        hb("i1", org, clock()), hb("i1", org, clock()), hb("x", org, clock() + timedelta(hours=1))])
    sample = metrics.registry.get_sample_value
    assert sample("heartbeats_ingested_total") == 1
    assert sample("heartbeats_duplicate_total") == 1
    assert sample("heartbeats_rejected_total", {"reason": "future_timestamp"}) == 1
    assert sample("heartbeats_rejected_total", {"reason": "closed_period"}) == 0
    assert sample("heartbeat_batch_size_count") == 1


def test_refused_heartbeats_are_tallied_by_org_for_the_postmortem(client, admin, clock,
                                                                    pg_database):
    first, second = new_org(client, admin), new_org(client, admin)
    post_heartbeats(client, admin, [hb("taken-1", first, clock())])
    now = clock()
    post_heartbeats(client, admin, [hb("taken-1", second, now), hb("taken-1", second, now),
                                    hb("own-1", second, now + timedelta(hours=2))])
    post_heartbeats(client, admin, [hb("own-2", first, now)])  # nothing refused
    with pg_database.engine.connect() as conn:
        rows = conn.execute(refused_orgs(now - timedelta(minutes=5), now)).all()
        later = conn.execute(refused_orgs(now + timedelta(hours=2), now + timedelta(hours=3)))
        assert later.all() == []
    assert [(r.org_id, r.reason, r.heartbeats) for r in rows] == [
        (second, "instance_org_mismatch", 2), (second, "future_timestamp", 1)]
    assert rows[0].org_name is not None
