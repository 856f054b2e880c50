"""Who a request's credential names, for the alerts API: `Authorization: Bearer <token>` (or
the legacy `X-Admin-Key`) read by `billing_core.access.credential_from`, then the engine's own
authentication through its published lookup (`billing_engine.access.published`): the engine's
staff keys with their roles, `ADMIN_API_KEY` and the named `ADMIN_API_KEYS` as admin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from billing_core.access import ADMIN_KEY_HEADER, AUTHORIZATION, Principal, credential_from
from billing_core.access.oidc import OidcVerifier
from billing_engine.access.published import REASON_TEXT, credentials

MISSING, MALFORMED = "missing", "malformed"
REFUSAL_TEXT = {
    MISSING: "a Bearer credential is required",
    MALFORMED: "must be `Bearer <token>`",
    **REASON_TEXT,
}


@dataclass(frozen=True)
class Caller:
    """A valid principal, or why not (a 401 reason) and which header was at fault."""

    principal: Principal | None
    reason: str | None = None
    field: str = AUTHORIZATION


class AlertsAccess:
    def __init__(self, engine: Engine, *, configured_keys: Sequence[tuple[str, str]],
                 clock: Callable[[], datetime], oidc: OidcVerifier | None = None) -> None:
        self._credentials = credentials(engine, configured_keys=configured_keys, clock=clock,
                                        oidc=oidc)

    def caller(self, *, authorization: str | None, admin_key: str | None) -> Caller:
        credential = credential_from(authorization, admin_key)
        if credential is None:
            if authorization is None and admin_key is None:
                return Caller(None, MISSING)
            return Caller(None, MALFORMED)
        found = self._credentials.authenticate(
            credential.token, staff_only=credential.source == ADMIN_KEY_HEADER)
        if found.principal is None:
            return Caller(None, found.refusal or "unknown", credential.source)
        return Caller(found.principal)
