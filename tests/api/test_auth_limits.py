"""Failed authentication is limited per client address and per key prefix (429 with Retry-After),
counted, and never written to the audit log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from billing_engine.access.limits import (
    ADDRESS,
    KEY_PREFIX,
    Block,
    FailedAuthLimiter,
    client_address,
)
from billing_engine.api import create_app
from billing_engine.audit.tables import audit_log
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.settings import Settings, SettingsError, parse_trusted_proxies
from tests.support.builders import bearer, new_org
from tests.support.clock import FrozenClock


def guess(n: int) -> dict[str, str]:
    """A wrong org key with a prefix of its own (`bk_live_` and six characters)."""
    return bearer(f"bk_live_{n:06d}" + "x" * 37)

PROXY = "10.0.0.7"


def failures(metrics: EngineMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("auth_failures_total", {"reason": reason}) or 0.0


def test_twenty_wrong_keys_from_one_address_refuse_even_a_correct_key_for_a_minute(
        client, admin, org_key, metrics, clock):
    org = new_org(client, admin)
    good = org_key(org, "billing:read")
    assert client.get("/v1/billing", params={"org_id": org}, headers=good).status_code == 200
    for n in range(20):
        wrong = guess(n)  # a new prefix each time
        assert client.get("/v1/billing", params={"org_id": org}, headers=wrong).status_code == 401
    limited = client.get("/v1/billing", params={"org_id": org}, headers=good)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "60"
    body = limited.json()
    assert body["error"] == "rate_limited"
    assert body["errors"][0]["field"] == "Authorization"
    assert "client address" in body["errors"][0]["reason"]
    assert "60 s" in body["errors"][0]["reason"]
    assert failures(metrics, "rate_limited") == 1
    assert failures(metrics, "unknown") == 20
    # Public routes are not limited; the block ends with its window.
    assert client.get("/healthz").status_code == 200
    clock.advance(seconds=45)
    assert client.get("/v1/billing", params={"org_id": org}, headers=good).headers[
        "Retry-After"] == "15"
    clock.advance(seconds=15)
    assert client.get("/v1/billing", params={"org_id": org}, headers=good).status_code == 200


def test_successful_requests_are_never_limited_nor_reset_the_count(client, admin, org_key,
                                                                   clock):
    org = new_org(client, admin)
    good = org_key(org, "billing:read")
    for n in range(19):
        assert client.get("/v1/plans", headers=guess(n)).status_code == 401
        assert client.get("/v1/plans", headers=good).status_code == 200
    for _ in range(30):
        assert client.get("/v1/plans", headers=good).status_code == 200
    assert client.get("/v1/plans").status_code == 401  # no credential is a failure too: the 20th
    assert client.get("/v1/plans", headers=good).status_code == 429


def test_failures_spread_over_more_than_a_window_are_not_limited(client, clock):
    for window in range(3):
        for n in range(15):
            assert client.get("/v1/plans", headers=guess(window * 100 + n)).status_code == 401
        clock.advance(seconds=61)


@pytest.fixture
def behind_proxy(pg_database, settings, clock) -> Iterator[TestClient]:
    """The engine behind a trusted proxy: each caller's address comes from X-Forwarded-For."""
    app = create_app(replace(settings, trusted_proxies=(f"{PROXY}/32",)), database=pg_database,
                     metrics=EngineMetrics(), clock=clock, housekeeping=False)
    with TestClient(app, client=(PROXY, 40000)) as test_client:
        yield test_client


def test_ten_failures_with_one_key_prefix_refuse_that_prefix_from_any_address(behind_proxy,
                                                                            admin, clock):
    client = behind_proxy
    org = new_org(client, admin)
    made = client.post(f"/admin/orgs/{org}/keys", headers=admin,
                       json={"name": "fleet", "scopes": ["billing:read"]}).json()
    token, prefix = made["key"], made["prefix"]
    for n in range(10):  # a leaked prefix tried with guessed tails, each from a new address
        forged = bearer(prefix + "z" * (len(token) - len(prefix) - 1) + str(n))
        response = client.get("/v1/plans", headers={**forged, "X-Forwarded-For": f"203.0.113.{n}"})
        assert response.status_code == 401
    refused = client.get("/v1/plans", headers={**bearer(token),
                                               "X-Forwarded-For": "198.51.100.1"})
    assert refused.status_code == 429 and "key prefix" in refused.json()["errors"][0]["reason"]
    other = client.post(f"/admin/orgs/{org}/keys", headers=admin,
                        json={"name": "other", "scopes": ["billing:read"]}).json()["key"]
    assert client.get("/v1/plans", headers={**bearer(other),
                                            "X-Forwarded-For": "198.51.100.1"}).status_code == 200
    clock.advance(seconds=60)
    assert client.get("/v1/plans", headers=bearer(token)).status_code == 200


def test_a_forwarded_for_header_is_ignored_unless_the_peer_is_a_trusted_proxy(client):
    for n in range(20):  # each claims another address; the socket peer is what counts
        response = client.get("/v1/plans", headers={**guess(n),
                                                    "X-Forwarded-For": f"203.0.113.{n}"})
        assert response.status_code == 401
    assert client.get("/v1/plans", headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 429


def test_two_thousand_wrong_keys_on_admin_routes_write_nothing_to_the_audit_log(
        client, admin, pg_database, metrics):
    org = new_org(client, admin)
    body = {"name": "A" * 4000, "email": "x@x.io", "plan": "free", "junk": ["B" * 1000] * 4}
    statuses = set()
    for n in range(2000):
        wrong = {"X-Admin-Key": f"guess-{n}"} if n % 2 else guess(n)
        statuses.add(client.put(f"/admin/orgs/{org}", headers=wrong, json=body).status_code)
    assert statuses == {401, 429}
    with pg_database.engine.connect() as conn:
        rows = [list(r) for r in conn.execute(select(audit_log.c.actor, audit_log.c.summary))]
    assert [actor for actor, _ in rows] == ["admin"]  # only the admin's own org creation
    assert "AAAA" not in json.dumps(rows, default=str)
    assert failures(metrics, "rate_limited") == 2000 - 20


def test_the_access_answers_of_every_credentialed_route_declare_429(client):
    document = client.get("/openapi.json").json()
    answers = document["paths"]["/v1/billing"]["get"]["responses"]
    assert "429" in answers and "401" in answers
    assert "429" not in document["paths"]["/healthz"]["get"]["responses"]
    assert "413" in document["paths"]["/v1/heartbeats"]["post"]["responses"]


def test_a_key_naming_another_org_is_logged_by_key_id_once_a_minute_and_counted(
        client, admin, org_key, metrics, clock, caplog):
    mine, theirs = new_org(client, admin), new_org(client, admin)
    key = org_key(mine, "billing:read")
    caplog.set_level(logging.WARNING, logger="billing_engine.access")
    for _ in range(5):
        refused = client.get("/v1/billing", params={"org_id": theirs}, headers=key)
        assert refused.status_code == 403
    clock.advance(seconds=61)
    assert client.get("/v1/invoices", params={"org_id": theirs}, headers=key).status_code == 403
    lines = [r for r in caplog.records if r.getMessage() == "org key named another org"]
    assert [(r.key_org, r.named_org, r.endpoint) for r in lines] == [  # type: ignore[attr-defined]
        (mine, theirs, "/v1/billing"), (mine, theirs, "/v1/invoices")]
    secret = key["Authorization"].split()[1]
    assert all(secret not in str(vars(r)) for r in caplog.records)
    assert metrics.registry.get_sample_value("access_denied_total", {"reason": "other_org"}) == 6


# -- the rules, without HTTP --------------------------------------------------------------------


T0 = datetime(2026, 11, 18, 12, tzinfo=UTC)


def limiter(clock: FrozenClock, *, per_address: int = 3, per_prefix: int = 2) -> FailedAuthLimiter:
    return FailedAuthLimiter(per_address=per_address, per_prefix=per_prefix,
                             window=timedelta(seconds=60), clock=clock, max_subjects=4)


def test_the_longer_of_an_address_block_and_a_prefix_block_is_reported():
    clock = FrozenClock(T0)
    limits = limiter(clock)
    limits.failed(address="a", prefix="p")
    limits.failed(address="a", prefix="p")  # the prefix reaches 2: blocked until T0+60
    clock.advance(seconds=10)
    limits.failed(address="a", prefix=None)  # the address reaches 3: blocked until T0+70
    assert limits.blocked(address="a", prefix="p") == Block(ADDRESS, 60)
    assert limits.blocked(address="b", prefix="p") == Block(KEY_PREFIX, 50)
    assert limits.blocked(address="b", prefix="q") is None


def test_a_zero_limit_turns_that_limit_off():
    clock = FrozenClock(T0)
    limits = limiter(clock, per_address=0, per_prefix=1)
    for _ in range(10):
        limits.failed(address="a", prefix=None)
    assert limits.blocked(address="a", prefix=None) is None


def test_tracking_is_bounded_and_existing_blocks_hold_when_full():
    clock = FrozenClock(T0)
    limits = limiter(clock, per_address=1, per_prefix=0)
    limits.failed(address="blocked", prefix=None)
    for n in range(50):
        limits.failed(address=f"addr-{n}", prefix=None)
    assert len(limits._windows) <= 4
    assert limits.blocked(address="blocked", prefix=None) is not None


def test_the_client_address_is_the_peer_unless_a_trusted_proxy_forwarded_it():
    trusted = parse_trusted_proxies("10.0.0.0/8, 192.0.2.1")
    assert client_address("203.0.113.5", "1.2.3.4", trusted_proxies=trusted) == "203.0.113.5"
    assert client_address("10.0.0.7", "198.51.100.9", trusted_proxies=()) == "10.0.0.7"
    assert client_address("10.0.0.7", "198.51.100.9", trusted_proxies=trusted) == "198.51.100.9"
    # The client's own claim left of the last untrusted hop is ignored.
    assert client_address("10.0.0.7", "6.6.6.6, 198.51.100.9, 10.1.1.1",
                          trusted_proxies=trusted) == "198.51.100.9"
    assert client_address("10.0.0.7", "not-an-ip", trusted_proxies=trusted) == "10.0.0.7"
    assert client_address("10.0.0.7", None, trusted_proxies=trusted) == "10.0.0.7"


def test_the_limit_settings_are_read_and_checked():
    settings = Settings.from_env({"AUTH_FAILURE_LIMIT_PER_ADDRESS": "5", "TRUSTED_PROXIES":
                                  "10.0.0.1, fd00::/8", "MAX_BODY_BYTES": "2048"})
    assert settings.auth_failure_limit_per_address == 5
    assert settings.trusted_proxies == ("10.0.0.1/32", "fd00::/8")
    assert settings.max_body_bytes == 2048
    for env in ({"TRUSTED_PROXIES": "proxy.local"}, {"AUTH_FAILURE_WINDOW_SECONDS": "0"},
                {"MAX_BODY_BYTES": "10"}, {"AUTH_FAILURE_LIMIT_PER_KEY_PREFIX": "-1"}):
        with pytest.raises(SettingsError):
            Settings.from_env(env)

