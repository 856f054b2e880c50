"""Silences: label matchers with an end time and a reason, as Alertmanager has them.

A silence covers an alert when every matcher matches the alert's labels (a missing label matches
as the empty string) and the silence has started and not yet expired. Regular expressions are
anchored at both ends, so `severity=~"P2|P3"` never matches "P23".

A silence must select: at least one of its matchers must be `=` or `=~` and refuse some value
of its label. Otherwise it silences every alert, however it is spelt: `alertname=~".*"`,
`alertname=~".+"` (every alert has a name), `alertname!=""`, `alertname!~"x"`, `job!="none"`.
Whether a regular expression refuses some value is tried on sample values (`PROBE_VALUES`):
one that matches all of them is taken to match anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from billing_core.errors import InvalidRequest

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MATCHER_TEXT = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class SilenceError(InvalidRequest):
    """A silence that cannot be kept; `field` names what to fix (422)."""

    field: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    op: MatchOp = MatchOp.EQUAL

    def __post_init__(self) -> None:
        if not LABEL_NAME.match(self.name):
            raise SilenceError("name", f"{self.name!r} is not a valid label name")
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                re.compile(self.value)
            except re.error as error:
                raise SilenceError("value", f"is not a valid regular expression: {error}"
                                   ) from None
            except RecursionError:  # nested deeper than the regex compiler goes
                raise SilenceError("value", "is not a valid regular expression: nested too "
                                   "deeply") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == MatchOp.EQUAL:
            return actual == self.value
        if self.op == MatchOp.NOT_EQUAL:
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == MatchOp.REGEX else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op.value}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    """`alertname=Watchdog`, `severity=~"P2|P3"`, `instance!=""` -> a Matcher."""
    match = _MATCHER_TEXT.match(text)
    if match is None:
        raise SilenceError("matchers", f"{text!r} is not name=value, name!=value, name=~regex "
                           "or name!~regex")
    name, op, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return Matcher(name=name, value=value, op=MatchOp(op))


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    expires_at: datetime
    comment: str
    created_by: str
    created_at: datetime

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.expires_at

    def covers(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.is_active(now) and all(m.matches(labels) for m in self.matchers)


# Label values of every shape an alert carries; a regex matching all of them matches anything.
PROBE_VALUES = ("", "a", "Z", "0", "_", "-", ".", "x y", "é✓", "BillingEngineDown", "P0",
                "127.0.0.1:8006", "billing-engine", "/v1/heartbeats", "x" * 300,
                "no-alert-is-called-this-7f3a")
ALWAYS_PRESENT = frozenset({"alertname"})  # every alert has one, never empty


def selects(matcher: Matcher) -> bool:
    """Does this matcher narrow the alerts down: a positive matcher refusing some value?"""
    if matcher.op in (MatchOp.NOT_EQUAL, MatchOp.NOT_REGEX):
        return False
    values = [v for v in PROBE_VALUES if v or matcher.name not in ALWAYS_PRESENT]
    return not all(matcher.matches({matcher.name: v}) for v in values)


def validate_silence(*, matchers: tuple[Matcher, ...], starts_at: datetime, expires_at: datetime,
                     comment: str, created_by: str, now: datetime,
                     max_length: timedelta | None = None, end_field: str = "expires_at") -> None:
    """Refuse a silence that would hide everything, last too long, or say nothing about why."""
    if not matchers:
        raise SilenceError("matchers", "at least one matcher is required")
    if all(m.matches({}) for m in matchers):
        # A silence whose matchers all match the empty label set matches every alert.
        raise SilenceError("matchers", "would silence every alert; name at least one label value")
    if not any(selects(m) for m in matchers):
        raise SilenceError("matchers", "would silence every alert: at least one matcher must be "
                           "= or =~ and leave some alerts out (a negative matcher, .* or .+ "
                           "does not)")
    if max_length is not None:
        if starts_at - now > max_length:
            raise SilenceError("starts_at", f"must be within {_days(max_length)} from now")
        if expires_at - starts_at > max_length:
            raise SilenceError(end_field, f"a silence may last at most {_days(max_length)} "
                               "(SILENCE_MAX_DAYS)")
    if expires_at <= now:
        raise SilenceError("expires_at", "must be in the future")
    if expires_at <= starts_at:
        raise SilenceError("expires_at", "must be after starts_at")
    if not comment.strip():
        raise SilenceError("comment", "must say why the alerts are silenced")
    if not created_by.strip():
        raise SilenceError("created_by", "must name who silences")


def _days(length: timedelta) -> str:
    return f"{length.days} days" if length.days != 1 else "1 day"


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime
                ) -> tuple[str, ...]:
    """Ids of the silences covering these labels now."""
    return tuple(s.id for s in silences if s.covers(labels, now))
