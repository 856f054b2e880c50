"""The demo's scripted incident: an error burst and a latency spike that the engine's own metrics
see, on a schedule and on demand, that never costs the demo fleet a billed minute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.demo.fault import EVERY, FIRST_AFTER, LASTS, DemoFault, scheduled_window
from tests.support.builders import new_org
from tests.support.clock import FrozenClock

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_the_scripted_incident_comes_a_few_minutes_after_start_then_every_half_hour():
    first = scheduled_window(START, START)
    assert (first.starts, first.ends) == (START + FIRST_AFTER, START + FIRST_AFTER + LASTS)
    during = scheduled_window(START, START + FIRST_AFTER + timedelta(minutes=2))
    assert during == first
    after = scheduled_window(START, START + FIRST_AFTER + LASTS)
    assert after.starts == START + FIRST_AFTER + EVERY


@pytest.fixture
def demo(pg_database, settings, metrics) -> Iterator[tuple[TestClient, DemoFault, FrozenClock]]:
    clock = FrozenClock(START)
    fault = DemoFault(clock, seed=7)
    app = create_app(settings, database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False, demo_fault=fault)
    with TestClient(app) as client:
        yield client, fault, clock


def test_during_the_fault_reads_fail_and_are_counted_as_5xx_but_heartbeats_are_kept(
        demo, admin, org_key, metrics):
    client, fault, clock = demo
    org = new_org(client, admin)
    key = org_key(org)
    assert client.get("/admin/demo/fault", headers=admin).json()["active"] is None
    clock.now = START + FIRST_AFTER + timedelta(seconds=1)
    statuses = [client.get("/v1/billing", params={"org_id": org}, headers=key).status_code
                for _ in range(30)]
    assert set(statuses) == {200, 503} and 5 <= statuses.count(503) <= 20
    failed = metrics.registry.get_sample_value(
        "http_requests_total", {"method": "GET", "endpoint": "/v1/billing", "status": "503"})
    assert failed == statuses.count(503)
    beats = [{"instance_id": "vm-1", "org_id": org,
              "ts": (clock.now - timedelta(minutes=m)).isoformat(), "state": "running"}
             for m in range(1, 11)]
    answers = {client.post("/v1/heartbeats", json={"heartbeats": beats}, headers=key).status_code
               for _ in range(5)}
    assert answers == {200}
    assert client.get("/healthz").status_code == 200


def test_an_admin_starts_one_at_once_and_outside_the_demo_there_is_none(demo, admin, client,
                                                                       staff_key):
    demo_client, _, _ = demo
    started = demo_client.post("/admin/demo/fault", json={"minutes": 2}, headers=admin)
    assert started.status_code == 200
    assert started.json()["active"]["why"] == "admin"
    refused = demo_client.post("/admin/demo/fault", headers=staff_key("operator"))
    assert refused.status_code == 403
    outside = client.get("/admin/demo/fault", headers=admin)
    assert outside.status_code == 404 and outside.json()["errors"][0]["field"] == "demo"
