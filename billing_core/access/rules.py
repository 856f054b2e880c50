"""Who a credential says the caller is, and whether that is enough for a route. Pure.

Two kinds of caller:

- an **org key** acts for one org, with scopes: `usage:write` sends that org's heartbeats,
  `billing:read` reads that org's own billing (card, daily usage, invoices, credits, payments,
  entitlements);
- a **staff** credential acts for a person or a tool, with one role. Roles are ordered
  viewer < support < operator < admin and a higher role may do whatever a lower one may.

A policy table maps each route, as `(METHOD, path template)`, to one requirement:

- `Public()`: anyone, no credential read;
- `OrgScope(scope, staff=role)`: an org key holding `scope` for the org the request names
  (every `org_id` in its path and query), or staff with at least `staff` (None: no staff);
- `StaffRole(role)`: staff with at least `role`; org keys are refused.

`decide` answers with a `Verdict`: allowed, or refused with the HTTP status (401 or 403), the
field at fault and why. A route missing from the table is refused (default deny).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

__all__ = [
    "ADMIN_KEY_HEADER",
    "AUTHORIZATION",
    "Credential",
    "OrgScope",
    "Policy",
    "Principal",
    "Public",
    "Requirement",
    "Role",
    "Scope",
    "StaffRole",
    "Verdict",
    "credential_from",
    "decide",
    "first_other_org",
]

AUTHORIZATION = "Authorization"
ADMIN_KEY_HEADER = "X-Admin-Key"


class Role(IntEnum):
    """Staff roles, in order: each may do what the ones before it may."""

    viewer = 1  # on-call: SLOs, metrics views; no customer personal data
    support = 2  # customer search, billing card, usage, invoices, payments
    operator = 3  # debug views, webhook replay, meter requeue and flush
    admin = 4  # orgs, keys, credits, invoice close, plans: everything

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"must be one of: {', '.join(r.name for r in cls)}") from None


class Scope(StrEnum):
    """What an org key may do, for its own org only."""

    usage_write = "usage:write"
    billing_read = "billing:read"


@dataclass(frozen=True)
class Principal:
    """The caller a valid credential names."""

    kind: str  # "org" or "staff"
    name: str
    key_id: str | None = None  # None for the keys configured in the environment
    org_id: str | None = None  # org keys only
    scopes: frozenset[Scope] = frozenset()  # org keys only
    role: Role | None = None  # staff only

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return self.name


@dataclass(frozen=True)
class Public:
    pass


@dataclass(frozen=True)
class OrgScope:
    scope: Scope
    staff: Role | None = Role.support


@dataclass(frozen=True)
class StaffRole:
    role: Role


Requirement = Public | OrgScope | StaffRole
Policy = Mapping[tuple[str, str], Requirement]


@dataclass(frozen=True)
class Credential:
    """A presented secret and where it came from (the header's name, for error messages)."""

    token: str
    source: str


def credential_from(authorization: str | None, admin_key: str | None) -> Credential | None:
    """`Authorization: Bearer <token>` first; else the legacy `X-Admin-Key`. An Authorization
    header in another scheme, or without a token, is no credential (the caller gets a 401)."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return Credential(token=token, source=AUTHORIZATION)
        return None
    if admin_key:
        return Credential(token=admin_key.strip(), source=ADMIN_KEY_HEADER)
    return None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    status: int = 200
    field: str | None = None
    reason: str | None = None
    code: str | None = None  # the counter's reason when refused

    @classmethod
    def allow(cls) -> Verdict:
        return cls(allowed=True)

    @classmethod
    def refuse(cls, status: int, field: str, reason: str, code: str) -> Verdict:
        return cls(allowed=False, status=status, field=field, reason=reason, code=code)


def decide(
    requirement: Requirement | None,
    principal: Principal | None,
    *,
    org_ids: Iterable[tuple[str, str]] = (),
) -> Verdict:
    """May `principal` (None: no valid credential) do what `requirement` asks? `org_ids` are the
    (field, org id) pairs the request names, such as ("org_id", "org_a")."""
    if requirement is None:
        return Verdict.refuse(403, "route", "has no access policy: refused by default",
                              "no_policy")
    if isinstance(requirement, Public):
        return Verdict.allow()
    if principal is None:
        return Verdict.refuse(401, AUTHORIZATION, "a Bearer credential is required", "missing")
    if isinstance(requirement, StaffRole):
        return _staff(principal, requirement.role)
    if principal.is_staff:
        if requirement.staff is None:
            return Verdict.refuse(403, AUTHORIZATION, "needs an org key; staff may not",
                                  "staff_not_allowed")
        return _staff(principal, requirement.staff)
    if requirement.scope not in principal.scopes:
        return Verdict.refuse(403, AUTHORIZATION,
                              f"the key lacks the scope {requirement.scope.value}", "scope")
    for field, org_id in org_ids:
        if org_id != principal.org_id:
            return Verdict.refuse(403, field, "names another org than the key's", "other_org")
    return Verdict.allow()


def _staff(principal: Principal, needed: Role) -> Verdict:
    if not principal.is_staff or principal.role is None:
        return Verdict.refuse(403, AUTHORIZATION, f"needs a staff role of at least {needed.name}",
                              "org_key_not_allowed")
    if principal.role < needed:
        return Verdict.refuse(
            403, AUTHORIZATION,
            f"needs the role {needed.name} or higher (this credential is {principal.role.name})",
            "role",
        )
    return Verdict.allow()


def first_other_org(org_ids: Iterable[str], own: str) -> int | None:
    """The index of the first item naming another org than `own`, or None."""
    for index, org_id in enumerate(org_ids):
        if org_id != own:
            return index
    return None
