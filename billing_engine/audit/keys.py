"""Admin keys: which named key a request presented, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

ADMIN_KEY_NAME = "admin"  # the name ADMIN_API_KEY is recorded under
# Where require_admin leaves its verdict for the audit middleware (request.state lives in scope).
STATE_ACTOR = "admin_key_name"
STATE_REFUSAL = "admin_refusal"
STATE_AUDIT_ID = "audit_entry_id"  # the row written ahead for this request


def identify_admin(keys: Sequence[tuple[str, str]], presented: str) -> str | None:
    """The name of the key presented, or None. Every key is compared, in constant time, whether
    or not an earlier one matched, so timing says nothing about which key (or how many) exist."""
    candidate = presented.encode()
    matched: str | None = None
    for name, key in keys:
        if hmac.compare_digest(candidate, key.encode()) and matched is None:
            matched = name
    return matched
