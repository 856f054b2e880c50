"""Staff sign-in tokens from the organisation's identity provider, accepted by both APIs.

A bearer token that is a JWT (three dot-separated parts, not one of our `bk_`/`bks_` keys) is
checked against the issuer named by `OIDC_ISSUER_URL`: its signature with the keys the issuer
publishes (discovery document, then `jwks_uri`, keys cached for five minutes), its issuer, its
audience (`OIDC_CLIENT_ID`, the console's client id: the console forwards the person's ID
token), its expiry (30 s of leeway for clocks). The role comes from one claim (`OIDC_ROLE_CLAIM`,
default `groups`): each value is looked up in `OIDC_ROLE_MAP` (`group:role,...`, default
`billing-viewer:viewer,billing-support:support,billing-operator:operator,billing-admin:admin`)
and the highest role found wins. A valid token with no mapped role is refused like a bad one.
The person is named by the `email` claim (else `sub`) in the audit logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from billing_core.access.rules import Principal, Role
from billing_core.settings import SettingsError

log = logging.getLogger("billing_core.access.oidc")

DEFAULT_ROLE_MAP: Mapping[str, Role] = {
    "billing-viewer": Role.viewer,
    "billing-support": Role.support,
    "billing-operator": Role.operator,
    "billing-admin": Role.admin,
}
LEEWAY_SECONDS = 30
JWKS_LIFESPAN_SECONDS = 300
# Why a token is refused (the auth_failures_total{reason} labels it adds).
TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_NO_ROLE = "token_expired", "token_invalid", "token_no_role"
TOKEN_REASON_TEXT = {
    TOKEN_EXPIRED: "the sign-in token has expired: sign in again",
    TOKEN_INVALID: "is not a token of the configured identity provider",
    TOKEN_NO_ROLE: "the sign-in token carries no role this service knows",
}


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith(("bk_", "bks_"))


def parse_role_map(raw: str) -> dict[str, Role]:
    """'billing-admin:admin, ops:operator' -> {'billing-admin': Role.admin, 'ops': ...}."""
    mapping: dict[str, Role] = {}
    for index, item in enumerate(p.strip() for p in raw.split(",")):
        if not item:
            continue
        group, sep, role = item.rpartition(":")
        if not sep or not group.strip():
            raise SettingsError(f"OIDC_ROLE_MAP entry {index + 1} must look like group:role")
        try:
            mapping[group.strip()] = Role.parse(role.strip())
        except ValueError as exc:
            raise SettingsError(f"OIDC_ROLE_MAP entry {index + 1}: role {exc}") from None
    return mapping


def role_from_claims(claims: Mapping[str, Any], *, claim: str = "groups",
                     mapping: Mapping[str, Role] = DEFAULT_ROLE_MAP) -> Role | None:
    """The highest role the claim's values map to (a claim may be one string or a list)."""
    value = claims.get(claim)
    values: Iterable[Any] = [value] if isinstance(value, str) else (value or [])
    roles = [mapping[v] for v in values if isinstance(v, str) and v in mapping]
    return max(roles) if roles else None


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    role_claim: str = "groups"
    role_map: Mapping[str, Role] = field(default_factory=lambda: dict(DEFAULT_ROLE_MAP))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcConfig | None:
        issuer = (env.get("OIDC_ISSUER_URL") or "").strip().rstrip("/")
        if not issuer:
            return None
        if not issuer.startswith(("https://", "http://")):
            raise SettingsError("OIDC_ISSUER_URL must be the issuer's URL (https://...)")
        audience = (env.get("OIDC_CLIENT_ID") or "").strip()
        if not audience:
            raise SettingsError("OIDC_CLIENT_ID is required with OIDC_ISSUER_URL: the client id "
                                "whose tokens are accepted (the console's)")
        raw_map = env.get("OIDC_ROLE_MAP")
        return cls(issuer=issuer, audience=audience,
                   role_claim=(env.get("OIDC_ROLE_CLAIM") or "groups").strip(),
                   role_map=parse_role_map(raw_map) if raw_map else dict(DEFAULT_ROLE_MAP))


@dataclass(frozen=True)
class TokenCheck:
    principal: Principal | None
    refusal: str | None = None


class OidcVerifier:
    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._keys: jwt.PyJWKClient | None = None

    def _key_client(self) -> jwt.PyJWKClient:
        if self._keys is None:
            discovery = httpx.get(f"{self.config.issuer}/.well-known/openid-configuration",
                                  timeout=5)
            discovery.raise_for_status()
            self._keys = jwt.PyJWKClient(str(discovery.json()["jwks_uri"]), cache_keys=True,
                                         lifespan=JWKS_LIFESPAN_SECONDS, timeout=5)
        return self._keys

    def _decode(self, token: str) -> dict[str, Any]:
        client = self._key_client()
        kid = jwt.get_unverified_header(token).get("kid")
        # A token naming its key is checked with that key; one naming none (some providers
        # publish a single key) with each signing key the issuer publishes.
        keys = [client.get_signing_key(kid)] if kid else client.get_signing_keys()
        failure: jwt.PyJWTError = jwt.InvalidSignatureError("no signing key")
        for key in keys:
            try:
                return dict(jwt.decode(token, key.key, algorithms=["RS256", "ES256", "PS256"],
                                       audience=self.config.audience,
                                       issuer=self.config.issuer, leeway=LEEWAY_SECONDS,
                                       options={"require": ["exp", "iss", "aud", "sub"]}))
            except jwt.InvalidSignatureError as exc:
                failure = exc
        raise failure

    def verify(self, token: str) -> TokenCheck:
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            return TokenCheck(None, TOKEN_EXPIRED)
        except (jwt.PyJWTError, httpx.HTTPError, KeyError, ValueError) as exc:
            # The reason stays in the log, never the token.
            log.info("sign-in token refused", extra={"reason": type(exc).__name__})
            return TokenCheck(None, TOKEN_INVALID)
        role = role_from_claims(claims, claim=self.config.role_claim,
                                mapping=self.config.role_map)
        if role is None:
            return TokenCheck(None, TOKEN_NO_ROLE)
        person = str(claims.get("email") or claims["sub"])[:64]
        return TokenCheck(Principal(kind="staff", name=person, role=role))
