"""Access control shared by both processes: credentials, roles, org key scopes, principals and
the policy table type (`rules`, pure), and API key tokens (`tokens`)."""

from billing_core.access.rules import (
    ADMIN_KEY_HEADER,
    AUTHORIZATION,
    Credential,
    OrgScope,
    Policy,
    Principal,
    Public,
    Requirement,
    Role,
    Scope,
    StaffRole,
    Verdict,
    credential_from,
    decide,
    first_other_org,
)
from billing_core.access.tokens import display_prefix, new_token, same_secret, token_hash

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
    "display_prefix",
    "first_other_org",
    "new_token",
    "same_secret",
    "token_hash",
]
