"""Silences as the API and the CLI keep them: built from a request, checked, stored, listed,
expired. A silence needs an end and a reason; one that would hide every alert is refused."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Literal

from alerts.access.store import AuditEntry
from alerts.rules.files import RuleFileError, parse_duration
from alerts.silences.rules import (
    Matcher,
    MatchOp,
    Silence,
    SilenceError,
    parse_matcher,
    validate_silence,
)
from alerts.silences.schemas import MatcherOut, SilenceIn, SilenceList, SilenceOut
from alerts.silences.store import SilenceStore
from billing_core.access import Principal
from billing_core.clock import Clock
from billing_core.errors import InvalidRequest, NotFound

log = logging.getLogger("alerts.api")
SilenceState = Literal["active", "expired", "all"]
ZONE_REQUIRED = "must carry a time zone (e.g. 2026-11-23T14:00:00Z)"


def silence_view(silence: Silence, now: datetime) -> SilenceOut:
    state: Literal["active", "pending", "expired"] = "active" if silence.is_active(now) else (
        "pending" if now < silence.starts_at else "expired")
    return SilenceOut(
        id=silence.id,
        matchers=[MatcherOut(name=m.name, op=m.op.value, value=m.value)
                  for m in silence.matchers],
        starts_at=silence.starts_at, expires_at=silence.expires_at, comment=silence.comment,
        created_by=silence.created_by, created_at=silence.created_at, state=state)


def build_silence(body: SilenceIn, now: datetime, *, created_by: str,
                  max_length: timedelta | None = None
                  ) -> tuple[tuple[Matcher, ...], datetime, datetime]:
    """The matchers, start and end a request asks for; InvalidRequest names the field at fault."""
    matchers: list[Matcher] = []
    for index, raw in enumerate(body.matchers):
        try:
            if isinstance(raw, str):
                matchers.append(parse_matcher(raw))
            else:
                matchers.append(Matcher(name=raw.name, value=raw.value, op=MatchOp(raw.op)))
        except SilenceError as error:
            raise InvalidRequest(f"matchers[{index}]", error.reason) from None
    starts_at = body.starts_at or now
    if starts_at.tzinfo is None:
        raise InvalidRequest("starts_at", ZONE_REQUIRED)
    if max_length is not None and starts_at - now > max_length:
        raise InvalidRequest("starts_at", f"must be within {max_length.days} days from now "
                             "(SILENCE_MAX_DAYS)")
    if body.expires_at is not None and body.duration is not None:
        raise InvalidRequest("duration", "give expires_at or duration, not both")
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise InvalidRequest("expires_at", ZONE_REQUIRED)
        expires_at = body.expires_at
    elif body.duration is not None:
        expires_at = _end(starts_at, body.duration, max_length)
    else:
        raise InvalidRequest("expires_at", "is required (or give duration): a silence must end")
    validate_silence(matchers=tuple(matchers), starts_at=starts_at, expires_at=expires_at,
                     comment=body.comment, created_by=created_by, now=now,
                     max_length=max_length,
                     end_field="duration" if body.duration is not None else "expires_at")
    return tuple(matchers), starts_at, expires_at


def _end(starts_at: datetime, duration: str, max_length: timedelta | None) -> datetime:
    # A silence's duration is written as the rule files write `for:` (30m, 2h, 1d).
    try:
        length = parse_duration(duration, where="duration")
    except (RuleFileError, OverflowError):
        raise InvalidRequest("duration", "must be a duration like 30m, 2h or 1d") from None
    if max_length is not None and length > max_length:
        raise InvalidRequest("duration", f"a silence may last at most {max_length.days} days "
                             "(SILENCE_MAX_DAYS)")
    try:
        return starts_at + length
    except OverflowError:
        raise InvalidRequest("duration", "ends after the year 9999") from None


class SilenceService:
    def __init__(self, *, store: SilenceStore, clock: Clock,
                 max_length: timedelta | None = None) -> None:
        self.store = store
        self.clock = clock
        self.max_length = max_length

    def list(self, state: SilenceState) -> SilenceList:
        now = self.clock()
        return SilenceList(state=state, silences=[
            silence_view(s, now) for s in self.store.list_silences(state=state, now=now)])

    def get(self, silence_id: str) -> SilenceOut:
        silence = self.store.get_silence(silence_id)
        if silence is None:
            raise NotFound("silence_id", "no such silence")
        return silence_view(silence, self.clock())

    def add(self, body: SilenceIn, *, by: Principal) -> SilenceOut:
        """`by` is who silences, as recorded; the body's `created_by` is only a note of whom
        it was done for (kept in the audit row)."""
        now = self.clock()
        matchers, starts_at, expires_at = build_silence(body, now, created_by=by.actor,
                                                        max_length=self.max_length)
        audit = AuditEntry.of(by, action="silence.add", target="", at=now,
                              matchers=", ".join(str(m) for m in matchers),
                              expires_at=expires_at.isoformat(),
                              on_behalf_of=body.created_by if body.created_by != by.actor
                              else None)
        silence = self.store.add_silence(matchers=matchers, starts_at=starts_at,
                                         expires_at=expires_at, comment=body.comment,
                                         created_by=by.actor, now=now, audit=audit)
        log.info("silence added", extra={"silence_id": silence.id, "by": by.actor,
                                         "matchers": [str(m) for m in matchers],
                                         "expires_at": expires_at.isoformat()})
        return silence_view(silence, now)

    def expire(self, silence_id: str, *, by: Principal) -> SilenceOut:
        now = self.clock()
        audit = AuditEntry.of(by, action="silence.expire", target=silence_id, at=now)
        silence = self.store.expire_silence(silence_id, now=now, audit=audit)
        if silence is None:
            raise NotFound("silence_id", "no such silence")
        log.info("silence expired", extra={"silence_id": silence_id, "by": by.actor})
        return silence_view(silence, now)

