"""Who is on call, and when an unacknowledged alert escalates (pure: time is a parameter).

The policy (`alerts/oncall.yml`) names people, rotations and, per severity, a response time, a
repeat interval and escalation steps:

- a **rotation** hands off weekly at a set local time (weekday and hh:mm in its time zone), going
  through its members in order from its `start` date; an **override** puts someone else on a
  rotation for a date range (the latest override covering a moment wins);
- a firing alert of severity S is **step 0** when it fires: the first rotation of S's steps is
  told. Left unacknowledged for S's response time it reaches step 1, the next rotation, and so on
  every response time until the last step; an acknowledgement (or a silence) stops it.

Severities and response times are the incident runbook's: P0 15 min, P1 30 min, P2 2 h, P3 8 h.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.silences.rules import Matcher

SEVERITIES = ("P0", "P1", "P2", "P3")
WEEK = timedelta(days=7)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Person:
    name: str  # the key in the policy file, shown everywhere
    email: str = ""
    slack: str = ""  # a Slack member id (U012AB3CD) for an @-mention, optional


@dataclass(frozen=True)
class Rotation:
    name: str
    members: tuple[str, ...]  # people, in the order they take the rotation
    start: date  # the first hand-off on or after this day gives the first member
    handoff_weekday: int = 0  # Monday
    handoff_time: time = time(9, 0)
    zone: str = "UTC"

    def first_handoff(self) -> datetime:
        """The first hand-off, as local wall time without a zone."""
        days = (self.handoff_weekday - self.start.weekday()) % 7
        return datetime.combine(self.start + timedelta(days=days), self.handoff_time)


@dataclass(frozen=True)
class Override:
    rotation: str
    person: str
    starts: datetime
    ends: datetime  # exclusive


@dataclass(frozen=True)
class SeverityPolicy:
    severity: str
    response: timedelta  # unacknowledged this long: the next step
    repeat: timedelta | None  # how often a firing alert of this severity is sent again
    steps: tuple[str, ...]  # rotations, told one after another


@dataclass(frozen=True)
class IncidentContacts:
    """Who hears of incidents besides the incidents channel, and where customers read status."""

    status_page: str = ""
    stakeholders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # P0..P2 -> emails


@dataclass(frozen=True)
class OnCallPolicy:
    people: Mapping[str, Person]
    rotations: Mapping[str, Rotation]
    overrides: tuple[Override, ...]
    severities: Mapping[str, SeverityPolicy]
    exclude: tuple[Matcher, ...] = ()  # alerts matching any of these never escalate
    incidents: IncidentContacts = field(default_factory=IncidentContacts)

    def escalates(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with these labels escalates: its severity has steps, and no
        `exclude` matcher matches it (the Watchdog fires forever by design)."""
        rule = self.severities.get(labels.get("severity", ""))
        if rule is None or not rule.steps:
            return False
        return not any(matcher.matches(labels) for matcher in self.exclude)


@dataclass(frozen=True)
class Shift:
    """Who holds a rotation from `starts` to `ends` (exclusive)."""

    rotation: str
    person: str
    starts: datetime
    ends: datetime
    override: bool = False


def _aware(local: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as a UTC moment (UTC, so differences count real hours)."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def _scheduled(rotation: Rotation, at: datetime) -> Shift:
    """The rotation's own shift at `at`, without overrides. Hand-offs are at the same local wall
    time each week, so a shift lasts 167 or 169 hours across a daylight-saving change."""
    zone = ZoneInfo(rotation.zone)
    local = at.astimezone(zone).replace(tzinfo=None)
    first = rotation.first_handoff()
    index = (local - first) // WEEK  # floor: before the first hand-off counts backwards
    begins = first + index * WEEK
    person = rotation.members[index % len(rotation.members)]
    return Shift(rotation.name, person, _aware(begins, zone), _aware(begins + WEEK, zone))


def _override_at(policy: OnCallPolicy, rotation: str, at: datetime) -> Override | None:
    covering = [o for o in policy.overrides if o.rotation == rotation and o.starts <= at < o.ends]
    return covering[-1] if covering else None


def on_call(policy: OnCallPolicy, rotation: str, at: datetime) -> Shift:
    """Who holds `rotation` at `at`: an override covering it, else the scheduled member. The
    shift ends at the next moment the holder may change (a hand-off or an override's edge)."""
    scheduled = _scheduled(policy.rotations[rotation], at)
    mine = [o for o in policy.overrides if o.rotation == rotation]
    later = [edge for o in mine for edge in (o.starts, o.ends) if edge > at]
    earlier = [edge for o in mine for edge in (o.starts, o.ends) if edge <= at]
    override = _override_at(policy, rotation, at)
    if override is not None:
        return Shift(rotation, override.person, override.starts, min([override.ends, *later]),
                     override=True)
    starts = max([scheduled.starts, *earlier])
    return Shift(rotation, scheduled.person, starts, min([scheduled.ends, *later]))


def next_shift(policy: OnCallPolicy, rotation: str, at: datetime) -> Shift:
    """The first shift after the current one with a different holder (within a year)."""
    current = on_call(policy, rotation, at)
    moment = current.ends
    for _ in range(200):
        shift = on_call(policy, rotation, moment)
        if shift.person != current.person:
            return shift
        moment = shift.ends
        if moment - at > timedelta(days=366):
            break
    return on_call(policy, rotation, current.ends)


def due_step(policy: OnCallPolicy, severity: str, fired_at: datetime, now: datetime) -> int | None:
    """The furthest escalation step an alert that fired at `fired_at` has reached by `now` if
    nobody acknowledged it; None for a severity the policy does not escalate."""
    rule = policy.severities.get(severity)
    if rule is None or not rule.steps:
        return None
    if now < fired_at:
        return 0
    reached = int((now - fired_at) / rule.response) if rule.response else 0
    return min(reached, len(rule.steps) - 1)


def step_due_at(policy: OnCallPolicy, severity: str, fired_at: datetime, step: int) -> datetime:
    return fired_at + step * policy.severities[severity].response


def next_step(policy: OnCallPolicy, severity: str, fired_at: datetime, now: datetime
              ) -> tuple[int, datetime] | None:
    """(step, when) of the next escalation of an unacknowledged alert; None after the last."""
    step = due_step(policy, severity, fired_at, now)
    if step is None or step + 1 >= len(policy.severities[severity].steps):
        return None
    return step + 1, step_due_at(policy, severity, fired_at, step + 1)
