"""Failed-authentication limits: per client address and per key prefix, held in this process.

The rule: when one client address has failed to authenticate `per_address` times within
`window` (or one key prefix, `bk_live_AbC123`, `per_prefix` times), every request from that
address (or with that prefix) that needs a credential is refused with 429 for one `window` from
the failure that reached the limit, without its credential being looked at, so even a correct
key waits. Successful requests neither count nor reset anything: a valid key mixed into a guessing
run must not buy more guesses.

Why in the process and not in Redis: the check sits on every authenticated request, and a Redis
round trip there would cost more than the key lookup it protects (cached in memory for 2 s, see
`access.service`); the keys hold 256 random bits, so the limit is not what makes guessing hopeless,
it keeps a flood of wrong keys off the database, the logs and the audit log. Each replica
therefore allows its own `per_address` failures: N replicas behind a balancer let an address
fail up to N times as often, which is still slow and still shows on `auth_failures_total`.

Memory is bounded: at most `max_subjects` addresses and prefixes are tracked; when full, ended
windows are dropped, and if that frees nothing a new subject is not tracked (existing blocks hold).
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

ADDRESS, KEY_PREFIX = "client address", "key prefix"
MAX_SUBJECTS = 100_000
MAX_FORWARDED_HOPS = 32


@dataclass(frozen=True)
class Block:
    """Why a request is refused: which subject is over its limit, and for how long still."""

    subject: str  # ADDRESS or KEY_PREFIX
    retry_after_seconds: int


@dataclass
class _Window:
    started: datetime
    failures: int = 0
    blocked_until: datetime | None = None


class FailedAuthLimiter:
    def __init__(
        self,
        *,
        per_address: int,
        per_prefix: int,
        window: timedelta,
        clock: Callable[[], datetime],
        max_subjects: int = MAX_SUBJECTS,
    ) -> None:
        self.limits = {ADDRESS: per_address, KEY_PREFIX: per_prefix}
        self.window = window
        self.clock = clock
        self.max_subjects = max_subjects
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def blocked(self, *, address: str | None, prefix: str | None) -> Block | None:
        """The block that holds for this address or prefix now, if any (the longer one)."""
        now = self.clock()
        found: Block | None = None
        with self._lock:
            for subject, value in ((ADDRESS, address), (KEY_PREFIX, prefix)):
                entry = self._windows.get((subject, value)) if value else None
                if entry is None or entry.blocked_until is None or entry.blocked_until <= now:
                    continue
                seconds = math.ceil((entry.blocked_until - now).total_seconds())
                if found is None or seconds > found.retry_after_seconds:
                    found = Block(subject, seconds)
        return found

    def failed(self, *, address: str | None, prefix: str | None) -> None:
        """Count one failed authentication against the address and the prefix."""
        now = self.clock()
        with self._lock:
            for subject, value in ((ADDRESS, address), (KEY_PREFIX, prefix)):
                limit = self.limits[subject]
                if not value or limit <= 0:
                    continue
                entry = self._window_of((subject, value), now)
                if entry is None or (entry.blocked_until is not None
                                     and entry.blocked_until > now):
                    continue  # untracked, or already refused until its block ends
                entry.failures += 1
                if entry.failures >= limit:
                    entry.blocked_until = now + self.window

    def _window_of(self, key: tuple[str, str], now: datetime) -> _Window | None:
        entry = self._windows.get(key)
        if entry is not None:
            if entry.blocked_until is not None:
                if entry.blocked_until <= now:  # the block ended: a fresh window
                    entry.started, entry.failures, entry.blocked_until = now, 0, None
            elif not timedelta(0) <= now - entry.started < self.window:
                entry.started, entry.failures = now, 0
            return entry
        if len(self._windows) >= self.max_subjects:
            self._windows = {k: w for k, w in self._windows.items() if not self._ended(w, now)}
            if len(self._windows) >= self.max_subjects:
                return None
        entry = self._windows[key] = _Window(started=now)
        return entry

    def _ended(self, entry: _Window, now: datetime) -> bool:
        if entry.blocked_until is not None:
            return entry.blocked_until <= now
        return now - entry.started >= self.window


def client_address(
    peer: str | None, forwarded_for: str | None, *, trusted_proxies: Sequence[str]
) -> str | None:
    """The address a request came from: the socket peer, unless the peer is one of
    `trusted_proxies` (addresses or networks); then the right-most `X-Forwarded-For` hop that is
    not a trusted proxy (each proxy appends the address it saw, so hops left of the first
    untrusted one are the client's own claims and are ignored)."""
    if not peer or not trusted_proxies or not forwarded_for or not _trusted(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",")][-MAX_FORWARDED_HOPS:]
    address = peer
    for hop in reversed(hops):
        try:
            parsed = str(ipaddress.ip_address(hop))
        except ValueError:
            return address  # not an address a proxy would write: stop at the last proxy's word
        address = parsed
        if not _trusted(parsed, trusted_proxies):
            return parsed
    return address


def _trusted(address: str, trusted_proxies: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in trusted_proxies)
