"""Webhooks when things break: Redis stopped mid-test, the database locked or down.

Stripe retries whatever we do not acknowledge with a 2xx, so a transient failure must answer 5xx,
and the retry must apply the event exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from billing_engine.api import create_app
from billing_engine.db import create_database, migrate
from billing_engine.operability.metrics import EngineMetrics
from devstack.servers import (
    RedisServer,
    create_scratch_database,
    drop_database,
    start_throwaway_postgres,
)
from tests.support.builders import counted, new_org
from tests.support.stripe_events import (
    WEBHOOK_SECRET,
    charge,
    checkout_completed,
    deliver,
    event,
    invoice,
    new_id,
    subscription,
)


def linked(client: TestClient, admin: dict[str, str], plan: str = "free") -> tuple[str, str]:
    org = new_org(client, admin, plan=plan)
    customer = new_id("cus")
    assert deliver(client, event("checkout.session.completed",
                                 checkout_completed(org, customer))).status_code == 200
    return org, customer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own: it is stopped and restarted mid-test."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hooks_with_redis(pg_database, settings, clock, redis_server) -> Iterator[TestClient]:
    configured = replace(settings, redis_url=redis_server.url, cache_retry_seconds=0,
                         stripe_webhook_secret=WEBHOOK_SECRET)
    app = create_app(configured, database=pg_database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def test_redis_holds_the_dedup_key_only_after_handling_and_its_loss_changes_nothing(
        hooks_with_redis, admin, redis_server):
    hooks = hooks_with_redis
    org, customer = linked(hooks, admin)
    keys = redis.Redis.from_url(redis_server.url)
    paid = event("charge.succeeded", charge(customer, 2000))
    assert deliver(hooks, paid).json()["outcome"] == "handled"
    assert keys.exists(f"webhook:{paid['id']}") == 1
    assert 3 * 86400 < keys.ttl(f"webhook:{paid['id']}") <= 4 * 86400
    fast = deliver(hooks, paid).json()
    assert (fast["outcome"], fast["effect"]) == ("duplicate", "already handled (fast path)")
    waiting = event("invoice.paid", invoice("cus_unknown", 500, paid=True))
    assert deliver(hooks, waiting).status_code == 202
    assert keys.exists(f"webhook:{waiting['id']}") == 0  # not handled: no key
    keys.close()

    redis_server.stop()
    second = event("charge.succeeded", charge(customer, 3000))
    assert deliver(hooks, second).json()["outcome"] == "handled"
    for evt in (paid, second):
        again = deliver(hooks, evt)
        assert again.status_code == 200
        assert (again.json()["outcome"], again.json()["effect"]) == ("duplicate", "already handled")
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "card"}) == 2
    assert len(hooks.get("/v1/payments", params={"org_id": org},
                         headers=admin).json()["payments"]) == 2

    restarted = RedisServer(port=redis_server.port).start()
    try:
        third = event("invoice.paid", invoice(customer, 100, paid=True))
        assert deliver(hooks, third).json()["outcome"] == "handled"
        assert redis.Redis.from_url(restarted.url).exists(f"webhook:{third['id']}") == 1
    finally:
        restarted.stop()


def test_a_subscription_change_invalidates_cached_entitlements(hooks_with_redis, admin):
    hooks = hooks_with_redis
    org, customer = linked(hooks, admin)
    hooks.get(f"/v1/entitlements/{org}", headers=admin)
    assert hooks.get(f"/v1/entitlements/{org}", headers=admin).json()["source"] == "cache"
    deliver(hooks, event("customer.subscription.created",
                         subscription("sub_c", customer, "active", price="price_team_monthly")))
    changed = hooks.get(f"/v1/entitlements/{org}", headers=admin).json()
    assert (changed["plan"], changed["source"]) == ("team", "database")


@pytest.fixture
def hooks(pg_database, settings, clock) -> Iterator[TestClient]:
    app = create_app(replace(settings, stripe_webhook_secret=WEBHOOK_SECRET),
                     database=pg_database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def test_a_lock_held_while_handling_answers_503_and_the_retry_applies_once(
        hooks, admin, pg_database):
    org, customer = linked(hooks, admin)
    webhooks = hooks.app.state.services.webhooks  # type: ignore[attr-defined]
    webhooks.store.lock_timeout_ms = 200
    paid = event("charge.succeeded", charge(customer, 2000))
    with pg_database.engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE payment_attempts IN EXCLUSIVE MODE"))
        response = deliver(hooks, paid)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert "Stripe retries" in response.json()["message"]
        blocker.rollback()
    record = hooks.get(f"/admin/webhooks/{paid['id']}", headers=admin).json()
    assert (record["status"], record["attempts"]) == ("failed", 1)
    assert record["last_error"].startswith("database unavailable")
    assert counted(hooks, "stripe_webhook_events_failing") == 1
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "card"}) == 0

    retry = deliver(hooks, paid)
    assert retry.status_code == 200 and retry.json()["outcome"] == "handled"
    assert deliver(hooks, paid).json()["outcome"] == "duplicate"
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "card"}) == 1
    assert counted(hooks, "stripe_webhook_events_failing") == 0
    assert len(hooks.get("/v1/payments", params={"org_id": org},
                         headers=admin).json()["payments"]) == 1


def test_the_database_down_answers_503_stores_nothing_and_stripes_retry_applies_once(
        settings, clock, admin):
    server = start_throwaway_postgres()
    try:
        url = create_scratch_database(server.url)
        migrate(url)
        database = create_database(url)
        app = create_app(replace(settings, stripe_webhook_secret=WEBHOOK_SECRET),
                         database=database, metrics=EngineMetrics(), clock=clock,
                         housekeeping=False)
        with TestClient(app) as hooks:
            org, customer = linked(hooks, admin)
            created = event("customer.subscription.created",
                            subscription("sub_d", customer, "active"))
            server.stop()
            down = deliver(hooks, created)
            assert down.status_code == 503
            assert down.json()["message"] == "the database is unreachable; nothing was stored"
            assert counted(hooks, "stripe_webhook_events_total", {"outcome": "failed"}) == 1

            server.start()
            assert hooks.get(f"/admin/webhooks/{created['id']}", headers=admin).status_code == 404
            retry = deliver(hooks, created)
            assert retry.status_code == 200 and retry.json()["outcome"] == "handled"
            assert deliver(hooks, created).json()["outcome"] == "duplicate"
            assert hooks.get(f"/v1/entitlements/{org}", headers=admin).json()["plan"] == "team"
        database.dispose()
        drop_database(url)
    finally:
        server.destroy()
