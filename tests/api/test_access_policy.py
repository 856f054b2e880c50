"""Every route of the engine against the one policy table: each route, walked from the app's own
route table, is called with every kind of credential, and answers as its entry says. A route the
table does not name is refused at runtime and fails here by name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Route

from billing_core.access import OrgScope, Public, Requirement, Role, Scope, StaffRole
from billing_core.access.oidc import OidcConfig
from billing_engine.access.policy import ENGINE_POLICY
from billing_engine.api import create_app
from billing_engine.api.app import api_routes
from billing_engine.settings import Settings
from devstack.processes import issue_id_token
from devstack.stack import CONSOLE_CLIENT_ID
from tests.support.builders import ADMIN_KEY, bearer, create_key, hb, new_org

WRONG_KEY = "bk_live_" + "x" * 43
PATH_VALUES = {"org_id": None, "instance_id": "vm-1", "event_id": "evt_policy",
               "key_id": "key_0000000000000000", "run_id": "1",
               "credit_id": "1"}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path template) of everything the app serves, API routes and the docs alike."""
    found = {(m, r.path_format) for r in api_routes(app.router.routes) for m in r.methods}
    found |= {(m, r.path) for r in app.router.routes if isinstance(r, Route) and r.methods
              for m in r.methods if m != "HEAD"}
    return found


@dataclass(frozen=True)
class Caller:
    """Who calls: `org` and `scopes` for an org key, `role` for staff; neither for a bad key."""

    headers: dict[str, str]
    org: str | None = None
    scopes: frozenset[Scope] = frozenset()
    role: Role | None = None


def expected_refusal(requirement: Requirement, caller: Caller, org_a: str) -> int | None:
    """What the policy table says this caller gets: 401, 403, or None (let through). Every
    request names org A (path or query), so org B's keys never reach org A's data."""
    if isinstance(requirement, Public):
        return None
    if caller.org is None and caller.role is None:
        return 401
    if isinstance(requirement, StaffRole):
        return None if caller.role is not None and caller.role >= requirement.role else 403
    assert isinstance(requirement, OrgScope)
    if caller.role is not None:
        allowed = requirement.staff is not None and caller.role >= requirement.staff
        return None if allowed else 403
    return None if requirement.scope in caller.scopes and caller.org == org_a else 403


@pytest.fixture
def settings(oidc_issuer: str) -> Settings:
    """Walking every route with a wrong key is ~50 failures from one address: past the
    failed-authentication limits, which tests/api/test_auth_limits.py covers on their own.
    Sign-in tokens come from a real OIDC provider (tests/conftest.py, `oidc_issuer`)."""
    return Settings(admin_api_key=ADMIN_KEY, environment="test",
                    auth_failure_limit_per_address=0, auth_failure_limit_per_key_prefix=0,
                    oidc=OidcConfig(issuer=oidc_issuer, audience=CONSOLE_CLIENT_ID))


@pytest.fixture
def world(client: TestClient, admin: dict[str, str], clock, oidc_issuer: str) -> dict[str, Any]:
    org_a, org_b = new_org(client, admin), new_org(client, admin)
    callers: dict[str, Caller] = {
        "no credential": Caller({}),
        "a wrong key": Caller(bearer(WRONG_KEY)),
        "a wrong key as X-Admin-Key": Caller({"X-Admin-Key": WRONG_KEY}),
        "a malformed Authorization": Caller({"Authorization": "Basic YWxpY2U6c2VjcmV0"}),
    }
    revoked = create_key(client, admin, org_a, ("usage:write", "billing:read"))
    gone = client.delete(f"/admin/orgs/{org_a}/keys/{revoked['id']}", headers=admin)
    assert gone.status_code == 200
    callers["a revoked key"] = Caller(bearer(revoked["key"]))
    expiring = create_key(client, admin, org_a, ("usage:write", "billing:read"),
                          expires_at=(clock() + timedelta(minutes=1)).isoformat())
    for org, label in ((org_a, "A"), (org_b, "B")):
        for scope in (Scope.usage_write, Scope.billing_read):
            key = create_key(client, admin, org, (scope.value,))["key"]
            callers[f"org {label}'s {scope.value} key"] = Caller(
                bearer(key), org=org, scopes=frozenset({scope}))
    for role in Role:
        made = client.post("/admin/staff-keys", headers=admin,
                           json={"name": f"policy-{role.name}", "role": role.name})
        assert made.status_code == 201, made.text
        callers[f"a {role.name} staff key"] = Caller(bearer(made.json()["key"]), role=role)
    callers["the configured admin key"] = Caller(admin, role=Role.admin)
    for role in Role:  # the demo people of the provider, one per role
        signed_in = issue_id_token(oidc_issuer, f"{role.name}@example.com",
                                   client_id=CONSOLE_CLIENT_ID)
        callers[f"a {role.name} sign-in token"] = Caller(bearer(signed_in), role=role)
    callers["a sign-in token for another client"] = Caller(bearer(issue_id_token(
        oidc_issuer, "admin@example.com", client_id="another-app")))
    clock.advance(minutes=2)
    callers["an expired key"] = Caller(bearer(expiring["key"]))
    return {"org_a": org_a, "callers": callers}


def call(client: TestClient, method: str, path: str, caller: Caller, org_a: str, clock) -> Any:
    url = path.format(**{name: value or org_a for name, value in PATH_VALUES.items()})
    params = {"org_id": org_a, "period": "2026-10"}
    body: Any = None
    if method in {"POST", "PUT", "PATCH"}:
        body = {"heartbeats": [hb("vm-1", org_a, clock())]} if path == "/v1/heartbeats" else {}
    return client.request(method, url, params=params, json=body, headers=caller.headers)


def test_every_route_served_has_an_entry_in_the_policy_table(client):
    missing = sorted(served_routes(client.app) - set(ENGINE_POLICY))
    assert missing == [], f"routes with no access policy: {missing}"
    stale = sorted(set(ENGINE_POLICY) - served_routes(client.app))
    assert stale == [], f"policy entries for routes that do not exist: {stale}"


CALLERS = [
    "no credential", "a wrong key", "a wrong key as X-Admin-Key", "a malformed Authorization",
    "a revoked key", "an expired key",
    "org A's usage:write key", "org A's billing:read key",
    "org B's usage:write key", "org B's billing:read key",
    "a viewer staff key", "a support staff key", "a operator staff key", "a admin staff key",
    "the configured admin key",
    "a viewer sign-in token", "a support sign-in token", "a operator sign-in token",
    "a admin sign-in token", "a sign-in token for another client",
]


@pytest.mark.parametrize("who", CALLERS)
def test_every_route_answers_each_caller_as_the_policy_table_says(client, world, clock, who):
    caller: Caller = world["callers"][who]
    org_a = world["org_a"]
    wrong = []
    for method, path in sorted(served_routes(client.app)):
        requirement = ENGINE_POLICY[(method, path)]
        want = expected_refusal(requirement, caller, org_a)
        response = call(client, method, path, caller, org_a, clock)
        got = response.status_code
        if want is None and (got in (401, 403) or got >= 500 and got != 503):
            wrong.append(f"{method} {path}: {got} but the policy lets {who} through "
                         f"({response.text[:120]})")
        elif want is not None and got != want:
            wrong.append(f"{method} {path}: {got}, the policy says {want}")
        elif want == 401 and not response.headers.get("WWW-Authenticate", "").startswith(
                "Bearer"):
            wrong.append(f"{method} {path}: 401 without WWW-Authenticate: Bearer")
        elif want is not None and not response.json()["errors"][0]["field"]:
            wrong.append(f"{method} {path}: {got} names no field")
    assert wrong == []


@pytest.fixture
def app_with_a_stray_route(pg_database, settings, metrics, clock) -> Iterator[TestClient]:
    app = create_app(settings, database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False)

    @app.get("/v1/forgotten")
    def forgotten() -> dict[str, str]:  # added without a policy entry
        return {"secret": "data"}

    with TestClient(app) as test_client:
        yield test_client


def test_a_route_with_no_policy_entry_is_refused_to_everyone(app_with_a_stray_route, admin):
    client = app_with_a_stray_route
    for headers in ({}, admin):
        response = client.get("/v1/forgotten", headers=headers)
        assert response.status_code == 403
        assert response.json()["errors"] == [
            {"field": "route", "reason": "has no access policy: refused by default"}]
    assert ("GET", "/v1/forgotten") in served_routes(client.app) - set(ENGINE_POLICY)


def reachable(caller: Caller) -> set[tuple[str, str]]:
    return {route for route, requirement in ENGINE_POLICY.items()
            if not isinstance(requirement, Public)
            and expected_refusal(requirement, caller, "org_a") is None}


def test_a_viewer_reaches_no_customer_data_and_org_keys_only_their_own_org():
    viewer = Caller({}, role=Role.viewer)
    assert reachable(viewer) == {("GET", "/v1/plans")}
    reader = Caller({}, org="org_a", scopes=frozenset({Scope.billing_read}))
    assert {path for _, path in reachable(reader)} == {
        "/v1/billing", "/v1/usage/{org_id}/daily", "/v1/invoices", "/v1/credits",
        "/v1/payments", "/v1/entitlements/{org_id}", "/v1/orgs/{org_id}/instances", "/v1/plans"}
    writer = Caller({}, org="org_a", scopes=frozenset({Scope.usage_write}))
    assert reachable(writer) == {("POST", "/v1/heartbeats")}
    support = Caller({}, role=Role.support)
    assert not {path for _, path in reachable(support)
                if path.startswith(("/admin/", "/debug/"))}
    operator = reachable(Caller({}, role=Role.operator))
    assert {("POST", "/admin/webhooks/{event_id}/replay"), ("POST", "/admin/meters/flush"),
            ("POST", "/admin/meters/requeue-failed")} <= operator
    assert not {route for route in operator
                if "keys" in route[1] or route[1].startswith("/admin/credits") or route[1] in (
                    "/admin/orgs/{org_id}", "/admin/invoices/close", "/admin/audit")}
