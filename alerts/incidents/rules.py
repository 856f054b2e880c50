"""Incidents from declaration to post-mortem (pure: time is a parameter).

An incident is declared at P0, P1 or P2 with a title, a one-line impact and a commander. While
it is open the commander owes the channel a status update at the severity's cadence (P0 every
15 min, P1 every 30 min, P2 every 2 h, as the incident runbook says) and is reminded when one is
due. Resolving it starts the post-incident checklist, each item due within 2 hours, 24 hours or
1 week of the resolution, and drafts the post-mortem.

The timeline is assembled, not typed: the declaration, updates, notes and status changes, the
resolution, and, from the alerts process's own records, the alerts that fired and resolved while
it was open and match it, their acknowledgements and escalations, and silences added meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

SEVERITIES = ("P0", "P1", "P2")
STATUSES = ("investigating", "identified", "monitoring", "resolved")
OPEN_STATUSES = STATUSES[:-1]
UPDATE_EVERY: Mapping[str, timedelta] = {
    "P0": timedelta(minutes=15),
    "P1": timedelta(minutes=30),
    "P2": timedelta(hours=2),
}
# An alert that fired this long before the declaration belongs to the incident too.
LOOKBACK = timedelta(minutes=30)

# The post-incident checklist: (when, after the resolution; what).
CHECKLIST: tuple[tuple[timedelta, str], ...] = (
    (timedelta(hours=2), "Service fully restored and watched for regressions"),
    (timedelta(hours=2), "Status page set to resolved"),
    (timedelta(hours=2), "First incident summary shared in the incidents channel"),
    (timedelta(hours=24), "Post-mortem meeting scheduled"),
    (timedelta(hours=24), "Root cause found and written down"),
    (timedelta(hours=24), "Action items identified, each with an owner"),
    (timedelta(hours=24), "Stakeholders told what happened and what changes"),
    (timedelta(days=7), "Post-mortem published"),
    (timedelta(days=7), "Preventive measures in place"),
    (timedelta(days=7), "Monitoring and alerting improved where they fell short"),
    (timedelta(days=7), "Runbook updated with what was learned"),
)


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    severity: str
    impact: str
    commander: str
    status: str
    declared_at: datetime
    declared_by: str
    last_update_at: datetime
    fingerprints: tuple[str, ...] = ()
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    update_reminded_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"INC-{self.id}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def duration(self, now: datetime) -> timedelta:
        return (self.resolved_at or now) - self.declared_at


def update_due_at(incident: Incident) -> datetime | None:
    """When the next status update is owed (None once resolved)."""
    if not incident.is_open:
        return None
    return incident.last_update_at + UPDATE_EVERY[incident.severity]


def reminder_due(incident: Incident, now: datetime) -> bool:
    """An update is overdue, and neither an update nor a reminder came in the last cadence: the
    commander is reminded once per missed update, not every round."""
    if not incident.is_open:
        return False
    last = max(incident.last_update_at, incident.update_reminded_at or incident.last_update_at)
    return now >= last + UPDATE_EVERY[incident.severity]


@dataclass(frozen=True)
class Task:
    key: str  # "2h-1": the phase and the item's place in it
    title: str
    due_at: datetime
    done_at: datetime | None = None
    done_by: str | None = None


def checklist(resolved_at: datetime) -> list[Task]:
    tasks = []
    counts: dict[timedelta, int] = {}
    for within, title in CHECKLIST:
        counts[within] = counts.get(within, 0) + 1
        phase = f"{int(within.total_seconds() // 3600)}h"
        tasks.append(Task(key=f"{phase}-{counts[within]}", title=title,
                          due_at=resolved_at + within))
    return tasks


@dataclass(frozen=True)
class Entry:
    """One line of the timeline."""

    at: datetime
    kind: str  # declared, update, note, status, resolved, alert fired, ...
    who: str
    text: str


@dataclass(frozen=True)
class AlertEpisode:
    """What the timeline needs of an alert episode (the alert history's row)."""

    fingerprint: str
    alertname: str
    severity: str
    labels: Mapping[str, str]
    fired_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None


@dataclass(frozen=True)
class Linked:
    """What links alerts to an incident: its own fingerprints, and the services they name."""

    fingerprints: frozenset[str]
    services: frozenset[str] = field(default_factory=frozenset)


def linked(incident: Incident, episodes: Iterable[AlertEpisode]) -> Linked:
    mine = frozenset(incident.fingerprints)
    services = frozenset(e.labels.get("service", "") for e in episodes
                         if e.fingerprint in mine) - {""}
    return Linked(mine, services)


def matches(incident: Incident, episode: AlertEpisode, link: Linked, now: datetime) -> bool:
    """An alert belongs to the incident when it was firing while the incident was open (or in
    the half hour before it was declared) and it is one of the incident's alerts, shares a
    service with one of them, or the incident names no alert at all."""
    starts, ends = incident.declared_at - LOOKBACK, incident.resolved_at or now
    if episode.fired_at >= ends or (episode.resolved_at is not None
                                    and episode.resolved_at < starts):
        return False
    if not link.fingerprints:
        return True
    return (episode.fingerprint in link.fingerprints
            or episode.labels.get("service", "") in link.services)


def alert_entries(episode: AlertEpisode, *, ends: datetime) -> list[Entry]:
    """The moments of one alert episode up to `ends` (it may have fired before the incident was
    declared: that is often how it started)."""
    name = f"{episode.alertname} ({episode.severity})"
    found = [Entry(episode.fired_at, "alert fired", "alerts", f"{name} fired")]
    if episode.acked_at is not None:
        found.append(Entry(episode.acked_at, "acknowledged", episode.acked_by or "?",
                           f"{name} acknowledged"))
    if episode.resolved_at is not None:
        found.append(Entry(episode.resolved_at, "alert resolved", "alerts", f"{name} resolved"))
    return [e for e in found if e.at <= ends]


def timeline(entries: Sequence[Entry]) -> list[Entry]:
    """Oldest first; at the same moment, in the order given."""
    return [e for _, e in sorted(enumerate(entries), key=lambda pair: (pair[1].at, pair[0]))]
