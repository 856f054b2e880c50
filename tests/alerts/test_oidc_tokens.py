"""The alerts API takes staff sign-in tokens through the engine's own code
(billing_engine.access.published), checked against a real OIDC provider."""

from __future__ import annotations

from alerts.access.service import AlertsAccess
from billing_core.access import Role
from billing_core.access.oidc import OidcConfig, OidcVerifier
from devstack.processes import issue_id_token
from tests.alerts.core import *  # noqa: F403

CONSOLE = "billing-console"


def token(issuer: str, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_id_token(issuer, who, client_id=CONSOLE)}"}


def test_the_alerts_api_takes_the_same_tokens_through_the_same_code(oidc_issuer, alerts_engine,
                                                                     alerts_clock):
    access = AlertsAccess(alerts_engine, configured_keys=(), clock=alerts_clock,
                          oidc=OidcVerifier(OidcConfig(issuer=oidc_issuer, audience=CONSOLE)))
    olga = token(oidc_issuer, "operator@example.com")["Authorization"]
    caller = access.caller(authorization=olga, admin_key=None)
    assert caller.principal is not None
    assert (caller.principal.name, caller.principal.role) == ("operator@example.com",
                                                              Role.operator)
    refused = access.caller(authorization=token(oidc_issuer, "nobody@example.com")[
        "Authorization"], admin_key=None)
    assert refused.principal is None and refused.reason == "token_no_role"
