"""API keys: insert, look up by hash, list, revoke, note the last use. Parameterised SQL only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, select, update

from billing_core.sql import utc, utc_or_none
from billing_engine.access.tables import api_keys
from billing_engine.db.database import Store


@dataclass(frozen=True)
class StoredKey:
    id: str
    prefix: str
    kind: str  # org or staff
    org_id: str | None
    role: str | None
    name: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


def _key(row: Row[tuple[object, ...]]) -> StoredKey:
    m = row._mapping
    return StoredKey(
        id=m["id"],
        prefix=m["prefix"],
        kind=m["kind"],
        org_id=m["org_id"],
        role=m["role"],
        name=m["name"],
        scopes=tuple(str(m["scopes"]).split()),
        created_by=m["created_by"],
        created_at=utc(m["created_at"]),
        last_used_at=utc_or_none(m["last_used_at"]),
        expires_at=utc_or_none(m["expires_at"]),
        revoked_at=utc_or_none(m["revoked_at"]),
    )


class KeyStore(Store):
    def insert(self, key: StoredKey, *, sha256: str) -> None:
        stmt = api_keys.insert().values(
            id=key.id,
            prefix=key.prefix,
            sha256=sha256,
            kind=key.kind,
            org_id=key.org_id,
            role=key.role,
            name=key.name,
            scopes=" ".join(key.scopes),
            created_by=key.created_by,
            created_at=key.created_at,
            expires_at=key.expires_at,
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def by_hash(self, sha256: str) -> StoredKey | None:
        query = select(api_keys).where(api_keys.c.sha256 == sha256)

        def work(conn: Connection) -> StoredKey | None:
            row = conn.execute(query).first()
            return None if row is None else _key(row)

        return self._run(work)

    def listing(self, *, kind: str, org_id: str | None = None) -> list[StoredKey]:
        """Every key of the kind (of the org, for org keys), newest first, revoked ones too."""
        query = select(api_keys).where(api_keys.c.kind == kind)
        if org_id is not None:
            query = query.where(api_keys.c.org_id == org_id)
        query = query.order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        return self._run(lambda c: [_key(r) for r in c.execute(query)])

    def get(self, key_id: str) -> StoredKey | None:
        query = select(api_keys).where(api_keys.c.id == key_id)

        def work(conn: Connection) -> StoredKey | None:
            row = conn.execute(query).first()
            return None if row is None else _key(row)

        return self._run(work)

    def revoke(self, key_id: str, *, at: datetime) -> StoredKey | None:
        """Revoke (once: a second revocation keeps the first time); the key, or None."""

        def work(conn: Connection) -> StoredKey | None:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            return None if row is None else _key(row)

        return self._run(work, write=True)

    def revoked_since(self, at: datetime) -> list[str]:
        """Ids of the keys revoked at or after `at`."""
        query = select(api_keys.c.id).where(api_keys.c.revoked_at >= at)
        return list(self._run(lambda c: [str(r.id) for r in c.execute(query)]))

    def touch(self, key_id: str, *, at: datetime) -> None:
        self.touch_many({key_id: at})

    def touch_many(self, used: dict[str, datetime]) -> None:
        """last_used_at of several keys in one transaction."""
        stmt = (update(api_keys).where(api_keys.c.id == bindparam("key_id"))
                .values(last_used_at=bindparam("used_at")))
        rows = [{"key_id": key_id, "used_at": at} for key_id, at in used.items()]
        self._run(lambda c: c.execute(stmt, rows), write=True)
