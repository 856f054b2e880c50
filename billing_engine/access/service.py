"""API keys and who a credential names.

`authenticate` is on every request's path, so lookups are cached in the process for at most
`CACHE_TTL` (2 s) by the SHA-256 of the token, found or not. A revocation therefore reaches every
replica within that time with no message between them (Redis may be down; nothing here uses it),
and a replica's own revocations drop its cache entry at once. Expiry is checked on every request
against the clock, cached or not. `last_used_at` is written at most once a minute per key, so a
busy fleet costs the database one small update a minute, not one per batch.

The keys configured in the environment (`ADMIN_API_KEY`, `ADMIN_API_KEYS`) are admin staff keys
that live outside the table; they are compared in constant time with every configured key.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_core.access import Principal, Role, Scope, display_prefix, new_token, token_hash
from billing_core.access.oidc import (
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    TOKEN_NO_ROLE,
    TOKEN_REASON_TEXT,
    OidcVerifier,
    looks_like_jwt,
)
from billing_core.access.tokens import looks_like_key
from billing_core.errors import Conflict, InvalidRequest, NotFound
from billing_engine.access.store import KeyStore, StoredKey
from billing_engine.audit.keys import identify_admin
from billing_engine.customers.service import Customers

log = logging.getLogger("billing_engine.access")

CACHE_TTL = timedelta(seconds=2)
# A known key is looked up again after this; revocations reach the cache within CACHE_TTL.
KNOWN_KEY_TTL = timedelta(minutes=5)
# How far back "revoked lately" reaches: longer than any replica's clock is off.
REVOCATION_LOOKBACK = timedelta(minutes=10)
CACHE_MAX_ENTRIES = 10_000
TOUCH_INTERVAL = timedelta(minutes=1)
TOUCH_FLUSH_INTERVAL = timedelta(seconds=30)

# Why a credential is refused with 401: the label of auth_failures_total{reason}.
MISSING, MALFORMED, UNKNOWN = "missing", "malformed", "unknown"
REVOKED, EXPIRED = "revoked", "expired"
REASONS = (MISSING, MALFORMED, UNKNOWN, REVOKED, EXPIRED, TOKEN_EXPIRED, TOKEN_INVALID,
           TOKEN_NO_ROLE)
# Refused with 429 by the failed-authentication limits, the credential unread (access.limits).
RATE_LIMITED = "rate_limited"
REASON_TEXT = {
    MISSING: "a Bearer credential is required",
    MALFORMED: "must be `Bearer <token>`",
    UNKNOWN: "is not a valid key",
    REVOKED: "the key was revoked",
    EXPIRED: "the key has expired",
    **TOKEN_REASON_TEXT,
}


@dataclass(frozen=True)
class Authentication:
    principal: Principal | None
    refusal: str | None = None


@dataclass(frozen=True)
class NewKey:
    """A key just created: `token` is the secret, shown this once and stored nowhere."""

    key: StoredKey
    token: str


def principal_of(key: StoredKey) -> Principal:
    if key.kind == "org":
        return Principal(kind="org", name=key.name, key_id=key.id, org_id=key.org_id,
                         scopes=frozenset(Scope(s) for s in key.scopes))
    return Principal(kind="staff", name=key.name, key_id=key.id, role=Role.parse(key.role or ""))


class AccessKeys:
    def __init__(
        self,
        store: KeyStore,
        *,
        customers: Customers,
        configured_keys: Sequence[tuple[str, str]],
        clock: Callable[[], datetime],
        cache_ttl: timedelta = CACHE_TTL,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self.store = store
        self.customers = customers
        self.configured_keys = tuple(configured_keys)
        self.clock = clock
        self.authenticator = KeyAuthenticator(store, configured_keys=self.configured_keys,
                                              clock=clock, cache_ttl=cache_ttl, oidc=oidc)

    # Use cases of an admin.

    def create_org_key(self, *, org_id: str, name: str, scopes: Sequence[Scope],
                       expires_at: datetime | None, created_by: str) -> NewKey:
        self.customers.require(org_id)
        if not scopes:
            raise InvalidRequest("scopes", "must name at least one scope")
        return self._create(kind="org", org_id=org_id, role=None, name=name,
                            scopes=tuple(sorted({s.value for s in scopes})),
                            expires_at=expires_at, created_by=created_by)

    def create_staff_key(self, *, name: str, role: Role, expires_at: datetime | None,
                         created_by: str) -> NewKey:
        # The audit log names staff by their key's name, so a name means one live key.
        if any(name == configured for configured, _ in self.configured_keys):
            raise Conflict("name", "is the name of a key configured in the environment")
        if any(k.name == name and k.revoked_at is None for k in self.store.listing(kind="staff")):
            raise Conflict("name", "another staff key that is not revoked has this name")
        return self._create(kind="staff", org_id=None, role=role.name, name=name, scopes=(),
                            expires_at=expires_at, created_by=created_by)

    def _create(self, *, kind: str, org_id: str | None, role: str | None, name: str,
                scopes: tuple[str, ...], expires_at: datetime | None,
                created_by: str) -> NewKey:
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest("expires_at", "must be in the future")
        token = new_token(kind)
        key = StoredKey(
            id="key_" + secrets.token_hex(8), prefix=display_prefix(token), kind=kind,
            org_id=org_id, role=role, name=name, scopes=scopes, created_by=created_by[:64],
            created_at=now, last_used_at=None, expires_at=expires_at, revoked_at=None,
        )
        self.store.insert(key, sha256=token_hash(token))
        log.info("api key created", extra={"key_id": key.id, "kind": kind, "prefix": key.prefix})
        return NewKey(key=key, token=token)

    def org_keys(self, org_id: str) -> list[StoredKey]:
        self.customers.require(org_id)
        return self.store.listing(kind="org", org_id=org_id)

    def staff_keys(self) -> list[StoredKey]:
        return self.store.listing(kind="staff")

    def revoke(self, key_id: str, *, kind: str, org_id: str | None = None) -> StoredKey:
        """Revoke a key of that kind (and org); NotFound names `key_id` otherwise."""
        found = self.store.get(key_id)
        if found is None or found.kind != kind or (org_id is not None and found.org_id != org_id):
            where = f"org {org_id}" if org_id is not None else "the staff keys"
            raise NotFound("key_id", f"no such key in {where}")
        revoked = self.store.revoke(key_id, at=self.clock())
        assert revoked is not None
        self.authenticator.forget(key_id)
        log.info("api key revoked", extra={"key_id": key_id, "kind": kind})
        return revoked

    # Every request.

    def report_other_org(self, principal: Principal, *, named_org: str, endpoint: str) -> None:
        self.authenticator.report_other_org(principal, named_org=named_org, endpoint=endpoint)

    def authenticate(self, token: str, *, staff_only: bool = False) -> Authentication:
        return self.authenticator.authenticate(token, staff_only=staff_only)


class KeyAuthenticator:
    """Who a token names: the configured admin keys first (constant time), then the key table
    through the cache. The engine's every request and the alerts process (through
    `billing_engine.access.published`) go through this one class."""

    def __init__(self, store: KeyStore, *, configured_keys: Sequence[tuple[str, str]],
                 clock: Callable[[], datetime], cache_ttl: timedelta = CACHE_TTL,
                 oidc: OidcVerifier | None = None) -> None:
        self.store = store
        self.oidc = oidc
        self.configured_keys = tuple(configured_keys)
        self.clock = clock
        self.cache_ttl = min(cache_ttl, CACHE_TTL)
        self._cache: dict[str, tuple[StoredKey | None, datetime]] = {}
        self._touched: dict[str, datetime] = {}
        self._reported: dict[str, datetime] = {}
        self._pending: dict[str, datetime] = {}
        self._revocations_checked_at: datetime | None = None
        self._flushed_at: datetime | None = None

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (it was just revoked here)."""
        self._cache = {h: v for h, v in self._cache.items() if v[0] is None or v[0].id != key_id}

    def authenticate(self, token: str, *, staff_only: bool = False) -> Authentication:
        """Who the token names, or why not (unknown, revoked, expired). `staff_only`: the
        legacy X-Admin-Key header, which carries staff keys and nothing else."""
        configured = identify_admin(self.configured_keys, token)
        if configured is not None:
            return Authentication(Principal(kind="staff", name=configured, role=Role.admin))
        if self.oidc is not None and not staff_only and looks_like_jwt(token):
            checked = self.oidc.verify(token)  # a person's sign-in token (billing_core.access.oidc)
            return Authentication(checked.principal, checked.refusal)
        if not looks_like_key(token):
            return Authentication(None, UNKNOWN)
        key = self._lookup(token_hash(token))
        if key is None or (staff_only and key.kind != "staff"):
            return Authentication(None, UNKNOWN)
        now = self.clock()
        if key.revoked_at is not None and key.revoked_at <= now:
            return Authentication(None, REVOKED)
        if key.expires_at is not None and key.expires_at <= now:
            return Authentication(None, EXPIRED)
        self._touch(key, now)
        return Authentication(principal_of(key))

    def report_other_org(self, principal: Principal, *, named_org: str, endpoint: str) -> None:
        """Log that a valid org key named another org (SuspiciousAPIAccess in
        runbooks/security.md starts here): the key's id and org, never its secret, at most once a
        minute per key, so a key used in a loop cannot flood the log."""
        now = self.clock()
        key = principal.key_id or principal.name
        last = self._reported.get(key)
        if last is not None and timedelta(0) <= now - last < TOUCH_INTERVAL:
            return
        if len(self._reported) >= CACHE_MAX_ENTRIES:
            self._reported.clear()
        self._reported[key] = now
        log.warning("org key named another org", extra={
            "key_id": principal.key_id, "key_org": principal.org_id,
            "named_org": named_org[:64], "endpoint": endpoint[:200]})

    def _lookup(self, sha256: str) -> StoredKey | None:
        """A known key stays cached for KNOWN_KEY_TTL; an unknown token for `cache_ttl`. At
        most every `cache_ttl` the keys revoked lately (on any replica) are read and dropped
        from the cache, so a revocation reaches this replica within that time without a
        database lookup on every request."""
        now = self.clock()
        self._drop_revoked(now)
        cached = self._cache.get(sha256)
        if cached is not None:
            ttl = self.cache_ttl if cached[0] is None else KNOWN_KEY_TTL
            if timedelta(0) <= now - cached[1] < ttl:
                return cached[0]
        key = self.store.by_hash(sha256)
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.clear()  # a flood of made-up keys must not grow memory
        self._cache[sha256] = (key, now)
        return key

    def _drop_revoked(self, now: datetime) -> None:
        checked = self._revocations_checked_at
        if checked is not None and timedelta(0) <= now - checked < self.cache_ttl:
            return
        self._revocations_checked_at = now
        try:
            revoked = set(self.store.revoked_since(now - REVOCATION_LOOKBACK))
        except Exception as exc:  # the next lookup asks again; known keys expire meanwhile
            self._revocations_checked_at = None
            log.warning("recent revocations not read", extra={"reason": str(exc)[:200]})
            return
        if revoked:
            self._cache = {h: v for h, v in self._cache.items()
                           if v[0] is None or v[0].id not in revoked}

    def _touch(self, key: StoredKey, now: datetime) -> None:
        """Note a key's use: at most once a minute per key, written in one batch at most every
        TOUCH_FLUSH_INTERVAL, so a request seldom waits on a write of its own (a fleet of 2,000
        customer CLIs otherwise made every lookup a write)."""
        last = self._touched.get(key.id)
        if last is not None and timedelta(0) <= now - last < TOUCH_INTERVAL:
            return
        self._touched[key.id] = now
        self._pending[key.id] = now
        flushed = self._flushed_at
        if flushed is None or not timedelta(0) <= now - flushed < TOUCH_FLUSH_INTERVAL:
            self.flush_touches(now)

    def flush_touches(self, now: datetime | None = None) -> None:
        pending, self._pending = self._pending, {}
        self._flushed_at = now or self.clock()
        if not pending:
            return
        try:
            self.store.touch_many(pending)
        except Exception as exc:  # noting the use must never fail the request
            log.warning("last_used_at not written", extra={"keys": len(pending),
                                                           "reason": str(exc)[:200]})
