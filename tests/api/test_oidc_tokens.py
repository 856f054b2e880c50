"""Staff sign-in tokens from a real OIDC provider (oidc-provider-mock on a thread): an ID token
issued through the provider's own code flow reaches what its role allows, the person is who the
audit log names, and every token that is not the issuer's, for us, current and with a role is
refused with 401 naming why."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from billing_core.access import Role
from billing_core.access.oidc import OidcConfig, parse_role_map, role_from_claims
from billing_core.settings import SettingsError
from billing_engine.api import create_app
from billing_engine.settings import Settings
from devstack.processes import issue_id_token
from tests.support.builders import ADMIN_KEY, bearer, new_org

CONSOLE = "billing-console"


@pytest.fixture
def settings(oidc_issuer: str) -> Settings:
    return Settings(admin_api_key=ADMIN_KEY, environment="test",
                    oidc=OidcConfig(issuer=oidc_issuer, audience=CONSOLE))


def token(issuer: str, who: str, client_id: str = CONSOLE) -> dict[str, str]:
    return bearer(issue_id_token(issuer, who, client_id=client_id))


def test_each_role_reaches_what_its_role_allows(client, admin, oidc_issuer):
    org = new_org(client, admin)
    customers = {who: client.get("/v1/customers", params={"q": org},
                                 headers=token(oidc_issuer, f"{who}@example.com")).status_code
                 for who in ("viewer", "support", "operator", "admin")}
    assert customers == {"viewer": 403, "support": 200, "operator": 200, "admin": 200}
    plans = client.get("/v1/plans", headers=token(oidc_issuer, "viewer@example.com"))
    assert plans.status_code == 200


def test_the_audit_log_names_the_person(client, admin, oidc_issuer):
    org = new_org(client, admin)
    ada = token(oidc_issuer, "admin@example.com")
    granted = client.post("/admin/credits", headers=ada,
                          json={"org_id": org, "amount_cents": 100, "reason": "goodwill"})
    assert granted.status_code == 201, granted.text
    assert granted.json()["granted_by"] == "admin@example.com"
    [entry] = [e for e in client.get("/admin/audit", headers=admin,
                                     params={"org_id": org}).json()
               if e["path"] == "/admin/credits"]
    assert entry["actor"] == "admin@example.com"


def tampered(header: dict[str, str]) -> dict[str, str]:
    head, body, signature = header["Authorization"].removeprefix("Bearer ").split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["groups"] = ["billing-admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return bearer(f"{head}.{forged}.{signature}")


def test_tokens_that_are_not_good_are_refused_naming_why(client, oidc_issuer, metrics):
    cases = {
        "another client's token": token(oidc_issuer, "admin@example.com", client_id="other"),
        "a token whose claims were changed": tampered(token(oidc_issuer,
                                                            "viewer@example.com")),
        "a person with no role": token(oidc_issuer, "nobody@example.com"),
        "not a JWT at all": bearer("a.b.c"),
    }
    for label, headers in cases.items():
        answer = client.get("/v1/customers", params={"q": "x"}, headers=headers)
        assert answer.status_code == 401, (label, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer"), label
        assert answer.json()["errors"][0]["field"] == "Authorization", label
    sample = metrics.registry.get_sample_value
    assert sample("auth_failures_total", {"reason": "token_invalid"}) == 3
    assert sample("auth_failures_total", {"reason": "token_no_role"}) == 1


@pytest.fixture
def short_lived_issuer() -> Iterator[str]:
    from oidc_provider_mock import User, run_server_in_thread

    # Tokens that expired a minute before they were issued: past the 30 s leeway.
    with run_server_in_thread(access_token_max_age=timedelta(seconds=-60), user_claims=[
            User(sub="admin@example.com", claims={"groups": ["billing-admin"]})]) as server:
        yield f"http://localhost:{server.server_port}"


def test_an_expired_token_is_refused_as_expired(short_lived_issuer, pg_database, metrics,
                                                clock):
    settings = Settings(admin_api_key=ADMIN_KEY, environment="test",
                        oidc=OidcConfig(issuer=short_lived_issuer, audience=CONSOLE))
    app = create_app(settings, database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False)
    with TestClient(app) as expiring:
        answer = expiring.get("/v1/plans", headers=token(short_lived_issuer,
                                                         "admin@example.com"))
    assert answer.status_code == 401
    assert "expired" in answer.json()["errors"][0]["reason"]


def test_a_token_of_another_issuer_is_refused(client, short_lived_issuer):
    answer = client.get("/v1/plans", headers=token(short_lived_issuer, "admin@example.com"))
    assert answer.status_code == 401


def test_roles_come_from_the_configured_claim_and_map():
    mapping = parse_role_map("ops:operator, billing-admin:admin")
    assert role_from_claims({"groups": ["ops", "billing-admin"]}, mapping=mapping) == Role.admin
    assert role_from_claims({"roles": "ops"}, claim="roles", mapping=mapping) == Role.operator
    assert role_from_claims({"groups": ["other"]}, mapping=mapping) is None
    for raw, hint in (("ops", "group:role"), ("ops:root", "role")):
        with pytest.raises(SettingsError, match=hint):
            parse_role_map(raw)
    with pytest.raises(SettingsError, match="OIDC_CLIENT_ID"):
        OidcConfig.from_env({"OIDC_ISSUER_URL": "https://idp.example"})
    assert OidcConfig.from_env({}) is None
