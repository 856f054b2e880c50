"""API keys over HTTP: what an admin sends to create one, and what comes back (never the hash;
the secret only in the answer to its creation)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from billing_core.access import Scope
from billing_core.http import ResponseModel, Storable, Timestamp
from billing_engine.access.service import NewKey
from billing_engine.access.store import StoredKey

KEY_ID_PATTERN = r"^key_[0-9a-f]{16}$"
# Staff keys are named as the audit log records them (`actor`), so they share its alphabet.
STAFF_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"

OrgKeyName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), Storable
]


class OrgKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: OrgKeyName = Field(description="What the key is for: `prod fleet`, `billing cli`")
    scopes: list[Scope] = Field(min_length=1, max_length=2,
                                description="`usage:write` and/or `billing:read`")
    expires_at: AwareDatetime | None = Field(
        default=None, description="Optional: the key stops working at this time (with offset)"
    )


class StaffKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=STAFF_NAME_PATTERN)] = Field(
        description="Who or what holds it (a-z, 0-9, _ and -); the audit log records it"
    )
    role: Literal["viewer", "support", "operator", "admin"] = Field(
        description="viewer < support < operator < admin: each may do what the lower ones may"
    )
    expires_at: AwareDatetime | None = None


class KeyOut(ResponseModel):
    id: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    kind: str = Field(description="org or staff")
    org_id: str | None
    role: str | None
    name: str
    scopes: list[str]
    created_by: str
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="To the minute")
    expires_at: Timestamp | None
    revoked_at: Timestamp | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret: shown this once, stored only as a hash")


class KeysOut(ResponseModel):
    keys: list[KeyOut]


def key_out(key: StoredKey) -> KeyOut:
    return KeyOut(
        id=key.id, prefix=key.prefix, kind=key.kind, org_id=key.org_id, role=key.role,
        name=key.name, scopes=list(key.scopes), created_by=key.created_by,
        created_at=key.created_at, last_used_at=key.last_used_at, expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


def new_key_out(new: NewKey) -> NewKeyOut:
    return NewKeyOut(**key_out(new.key).model_dump(), key=new.token)


def keys_out(keys: list[StoredKey]) -> KeysOut:
    return KeysOut(keys=[key_out(k) for k in keys])
