"""Silences as the API and the CLI keep them: built from a request, checked, stored, listed,
expired. A silence needs an end and a reason; one that would hide every alert is refused."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

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


def build_silence(body: SilenceIn, now: datetime) -> tuple[tuple[Matcher, ...], datetime, datetime]:
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
    if body.expires_at is not None and body.duration is not None:
        raise InvalidRequest("duration", "give expires_at or duration, not both")
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise InvalidRequest("expires_at", ZONE_REQUIRED)
        expires_at = body.expires_at
    elif body.duration is not None:
        expires_at = _end(starts_at, body.duration)
    else:
        raise InvalidRequest("expires_at", "is required (or give duration): a silence must end")
    validate_silence(matchers=tuple(matchers), starts_at=starts_at, expires_at=expires_at,
                     comment=body.comment, created_by=body.created_by, now=now)
    return tuple(matchers), starts_at, expires_at


def _end(starts_at: datetime, duration: str) -> datetime:
    # A silence's duration is written as the rule files write `for:` (30m, 2h, 1d).
    try:
        length = parse_duration(duration, where="duration")
    except RuleFileError:
        raise InvalidRequest("duration", "must be a duration like 30m, 2h or 1d") from None
    try:
        return starts_at + length
    except OverflowError:
        raise InvalidRequest("duration", "ends after the year 9999") from None


class SilenceService:
    def __init__(self, *, store: SilenceStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def list(self, state: SilenceState) -> SilenceList:
        now = self.clock()
        return SilenceList(state=state, silences=[
            silence_view(s, now) for s in self.store.list_silences(state=state, now=now)])

    def get(self, silence_id: str) -> SilenceOut:
        silence = self.store.get_silence(silence_id)
        if silence is None:
            raise NotFound("silence_id", "no such silence")
        return silence_view(silence, self.clock())

    def add(self, body: SilenceIn) -> SilenceOut:
        now = self.clock()
        matchers, starts_at, expires_at = build_silence(body, now)
        silence = self.store.add_silence(matchers=matchers, starts_at=starts_at,
                                         expires_at=expires_at, comment=body.comment,
                                         created_by=body.created_by, now=now)
        log.info("silence added", extra={"silence_id": silence.id, "by": body.created_by,
                                         "matchers": [str(m) for m in matchers],
                                         "expires_at": expires_at.isoformat()})
        return silence_view(silence, now)

    def expire(self, silence_id: str) -> SilenceOut:
        now = self.clock()
        silence = self.store.expire_silence(silence_id, now=now)
        if silence is None:
            raise NotFound("silence_id", "no such silence")
        log.info("silence expired", extra={"silence_id": silence_id})
        return silence_view(silence, now)

