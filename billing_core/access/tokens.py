"""API key tokens: a readable prefix and 256 bits from `secrets`, stored only as SHA-256.

    bk_live_<43 url-safe characters>    an org key
    bks_live_<43 url-safe characters>   a staff key

The token has enough entropy that a fast hash is enough (no salt or stretching is needed: nobody
can enumerate 2**256 candidates). The first characters are kept in clear as the key's `prefix`,
so people can tell keys apart in a list without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ORG_KEY_PREFIX = "bk_live_"
STAFF_KEY_PREFIX = "bks_live_"
PREFIXES = {"org": ORG_KEY_PREFIX, "staff": STAFF_KEY_PREFIX}
SHOWN_CHARACTERS = 6  # of the random part, kept as the key's prefix
MAX_TOKEN_LENGTH = 512


def new_token(kind: str) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(token: str) -> str:
    """`bk_live_AbC123`: enough to recognise a key, nothing to guess it with."""
    for prefix in PREFIXES.values():
        if token.startswith(prefix):
            return token[: len(prefix) + SHOWN_CHARACTERS]
    return ""


def looks_like_key(token: str) -> bool:
    return len(token) <= MAX_TOKEN_LENGTH and any(token.startswith(p) for p in PREFIXES.values())


def same_secret(a: str, b: str) -> bool:
    encode = "utf-8", "surrogatepass"
    return hmac.compare_digest(a.encode(*encode), b.encode(*encode))
