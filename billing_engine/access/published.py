"""Who a credential names, published for the alerts process (as `usage/facts.py` publishes
billing facts): the alerts API accepts the engine's staff keys and configured admin keys
through the engine's own `KeyAuthenticator`, without knowing the key table.

`credentials(engine, configured_keys=..., clock=...)` answers `authenticate(token,
staff_only=...)` with the principal or the refusal reason (`unknown`, `revoked`, `expired`),
with the engine's 2 s lookup cache. On a database without the engine's tables (an alerts-only
installation) only the configured keys are known; the table is looked for again at most every
`CACHE_TTL`, so keys work as soon as the engine has migrated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, inspect

from billing_core.access.oidc import OidcVerifier
from billing_engine.access.service import (
    CACHE_TTL,
    EXPIRED,
    REASON_TEXT,
    REASONS,
    REVOKED,
    UNKNOWN,
    Authentication,
    KeyAuthenticator,
)
from billing_engine.access.store import KeyStore, StoredKey
from billing_engine.access.tables import api_keys
from billing_engine.db.database import Database

__all__ = ["EXPIRED", "REASONS", "REASON_TEXT", "REVOKED", "UNKNOWN", "Authentication",
           "Credentials", "credentials"]


class _KeyTable(KeyStore):
    """The key table, or no key at all while the table does not exist."""

    def __init__(self, database: Database, *, clock: Callable[[], datetime]) -> None:
        super().__init__(database)
        self._clock = clock
        self._present_at: datetime | None = None

    def _present(self) -> bool:
        now = self._clock()
        if self._present_at is not None and timedelta(0) <= now - self._present_at < CACHE_TTL:
            return True
        present = self._run(lambda conn: inspect(conn).has_table(api_keys.name))
        self._present_at = now if present else None
        return present

    def by_hash(self, sha256: str) -> StoredKey | None:
        return super().by_hash(sha256) if self._present() else None

    def revoked_since(self, at: datetime) -> list[str]:
        return super().revoked_since(at) if self._present() else []

    def touch_many(self, used: dict[str, datetime]) -> None:
        if self._present():
            super().touch_many(used)


class Credentials:
    def __init__(self, authenticator: KeyAuthenticator) -> None:
        self._authenticator = authenticator

    def authenticate(self, token: str, *, staff_only: bool = False) -> Authentication:
        return self._authenticator.authenticate(token, staff_only=staff_only)


def credentials(engine: Engine, *, configured_keys: Sequence[tuple[str, str]],
                clock: Callable[[], datetime], oidc: OidcVerifier | None = None) -> Credentials:
    """The engine's authentication over another process' SQLAlchemy engine on its database;
    with `oidc`, staff sign-in tokens too, checked by the same code as the engine's."""
    store = _KeyTable(Database(engine=engine, url=str(engine.url)), clock=clock)
    return Credentials(KeyAuthenticator(store, configured_keys=configured_keys, clock=clock,
                                        oidc=oidc))
