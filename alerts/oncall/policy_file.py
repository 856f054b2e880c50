"""The on-call policy file (`ONCALL_FILE`, default `alerts/oncall.yml`): read once at start.

Every problem is reported at once, each naming its field and why, like the routes file; `${VAR}`
and `${VAR:-text}` are replaced from the environment. Format in the shipped file's header.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from alerts.delivery.routes_file import FieldError, expand_env, parse_duration
from alerts.oncall.rules import (
    SEVERITIES,
    WEEKDAYS,
    IncidentContacts,
    OnCallPolicy,
    Override,
    Person,
    Rotation,
    SeverityPolicy,
)
from alerts.silences.rules import Matcher, SilenceError, parse_matcher
from billing_core.errors import ConfigError

DEFAULT_ONCALL_FILE = Path(__file__).resolve().parent.parent / "oncall.yml"


class OnCallFileError(ConfigError):
    """An on-call policy that cannot be used; `errors` names each bad field and why."""

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        self.source = source
        self.errors = tuple(errors)
        super().__init__(f"on-call file {source}: " + "; ".join(map(str, errors)))


def oncall_file_from_env(environ: Mapping[str, str]) -> Path:
    value = environ.get("ONCALL_FILE", "").strip()
    return Path(value) if value else DEFAULT_ONCALL_FILE


def load_policy(path: Path | str | None = None, *,
                environ: Mapping[str, str] | None = None) -> OnCallPolicy:
    file = DEFAULT_ONCALL_FILE if path is None else Path(path)
    source = str(file)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OnCallFileError(source, [FieldError("", f"cannot be read: {exc.strerror}")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise OnCallFileError(source, [FieldError("", f"is not valid YAML{where}")]) from exc
    return parse_policy(data, environ=os.environ if environ is None else environ, source=source)


def parse_policy(data: object, *, environ: Mapping[str, str] | None = None,
                 source: str = "<on-call policy>") -> OnCallPolicy:
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        raise OnCallFileError(source, [FieldError("", "must be a mapping")])
    data = cast(dict[str, Any], expand_env(data, os.environ if environ is None else environ))
    _unknown(data, {"version", "people", "rotations", "overrides", "severities", "exclude",
                    "incidents"}, "", errors)
    if data.get("version") != 1:
        errors.append(FieldError("version", "must be 1"))
    people = _people(data.get("people"), errors)
    rotations = _rotations(data.get("rotations"), people, errors)
    overrides = _overrides(data.get("overrides") or [], people, rotations, errors)
    severities = _severities(data.get("severities"), rotations, errors)
    exclude = _exclude(data.get("exclude") or [], errors)
    incidents = _incidents(data.get("incidents") or {}, errors)
    if errors:
        raise OnCallFileError(source, errors)
    return OnCallPolicy(people=people, rotations=rotations, overrides=tuple(overrides),
                        severities=severities, exclude=tuple(exclude), incidents=incidents)


def _incidents(raw: object, errors: list[FieldError]) -> IncidentContacts:
    if not isinstance(raw, dict):
        errors.append(FieldError("incidents", "must be a mapping with status_page and "
                                              "stakeholders"))
        return IncidentContacts()
    _unknown(raw, {"status_page", "stakeholders"}, "incidents", errors)
    status_page = str(raw.get("status_page") or "").strip()
    if status_page and not status_page.startswith(("https://", "http://")):
        errors.append(FieldError("incidents.status_page", "must be a URL (https://...)"))
    stakeholders: dict[str, tuple[str, ...]] = {}
    listed = raw.get("stakeholders") or {}
    if not isinstance(listed, dict):
        errors.append(FieldError("incidents.stakeholders", "must map P0..P2 to email lists"))
        listed = {}
    for severity, emails in listed.items():
        where = f"incidents.stakeholders.{severity}"
        if severity not in ("P0", "P1", "P2"):
            errors.append(FieldError(where, "must be one of ['P0', 'P1', 'P2']"))
            continue
        if isinstance(emails, str):
            emails = [e for e in emails.split(",")]
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            errors.append(FieldError(where, "must be a list of email addresses"))
            continue
        found = tuple(e.strip() for e in emails if e.strip())
        if any("@" not in e or any(c.isspace() for c in e) for e in found):
            errors.append(FieldError(where, "must be a list of email addresses"))
        stakeholders[str(severity)] = found
    return IncidentContacts(status_page=status_page, stakeholders=stakeholders)


def _exclude(raw: object, errors: list[FieldError]) -> list[Matcher]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        errors.append(FieldError("exclude", "must be a list of matchers like alertname=Watchdog"))
        return []
    matchers = []
    for index, text in enumerate(raw):
        try:
            matchers.append(parse_matcher(text))
        except SilenceError as exc:
            errors.append(FieldError(f"exclude[{index}]", exc.reason))
    return matchers


def _unknown(mapping: Mapping[str, Any], allowed: set[str], where: str,
             errors: list[FieldError]) -> None:
    for key in mapping:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            errors.append(FieldError(name, f"unknown field (expected one of {sorted(allowed)})"))


def _people(raw: object, errors: list[FieldError]) -> dict[str, Person]:
    if not isinstance(raw, dict) or not raw:
        errors.append(FieldError("people", "must be a non-empty mapping of name to person"))
        return {}
    people = {}
    for name, entry in raw.items():
        where = f"people.{name}"
        if not isinstance(entry, dict):
            errors.append(FieldError(where, "must be a mapping with email and/or slack"))
            continue
        _unknown(entry, {"email", "slack"}, where, errors)
        email, slack = str(entry.get("email") or "").strip(), str(entry.get("slack") or "").strip()
        if email and ("@" not in email or any(c.isspace() for c in email)):
            errors.append(FieldError(f"{where}.email", "must be an email address"))
        people[str(name)] = Person(name=str(name), email=email, slack=slack)
    return people


def _rotations(raw: object, people: Mapping[str, Person], errors: list[FieldError]
               ) -> dict[str, Rotation]:
    if not isinstance(raw, dict) or not raw:
        errors.append(FieldError("rotations", "must be a non-empty mapping of name to rotation"))
        return {}
    rotations = {}
    for name, entry in raw.items():
        where = f"rotations.{name}"
        if not isinstance(entry, dict):
            errors.append(FieldError(where, "must be a mapping with members, start, handoff"))
            continue
        _unknown(entry, {"members", "start", "handoff"}, where, errors)
        members = entry.get("members")
        if (not isinstance(members, list) or not members
                or not all(isinstance(m, str) for m in members)):
            errors.append(FieldError(f"{where}.members", "must be a non-empty list of people"))
            continue
        unknown = [m for m in members if m not in people]
        if unknown:
            errors.append(FieldError(f"{where}.members", f"names no person: {unknown}"))
        start = entry.get("start", date(2026, 1, 5))
        if not isinstance(start, date) or isinstance(start, datetime):
            errors.append(FieldError(f"{where}.start", "must be a date, YYYY-MM-DD"))
            continue
        handoff = entry.get("handoff") or {}
        weekday, at, zone = _handoff(handoff, f"{where}.handoff", errors)
        rotations[str(name)] = Rotation(name=str(name), members=tuple(members), start=start,
                                        handoff_weekday=weekday, handoff_time=at, zone=zone)
    return rotations


def _handoff(raw: object, where: str, errors: list[FieldError]) -> tuple[int, time, str]:
    if not isinstance(raw, dict):
        errors.append(FieldError(where, "must be a mapping with weekday, time and zone"))
        return 0, time(9, 0), "UTC"
    _unknown(raw, {"weekday", "time", "zone"}, where, errors)
    weekday_name = str(raw.get("weekday", "monday")).lower()
    if weekday_name not in WEEKDAYS:
        errors.append(FieldError(f"{where}.weekday", f"must be one of {list(WEEKDAYS)}"))
        weekday_name = "monday"
    text = str(raw.get("time", "09:00"))
    try:
        at = time.fromisoformat(text)
    except ValueError:
        errors.append(FieldError(f"{where}.time", "must be a time of day, HH:MM"))
        at = time(9, 0)
    zone = str(raw.get("zone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(FieldError(f"{where}.zone", "must be a time zone name like Europe/Berlin"))
        zone = "UTC"
    return WEEKDAYS.index(weekday_name), at, zone


def _moment(value: object, where: str, errors: list[FieldError]) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    else:
        moment = None
    if moment is None:
        errors.append(FieldError(where, "must be a date and time, e.g. 2026-12-24T09:00:00Z"))
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _overrides(raw: object, people: Mapping[str, Person], rotations: Mapping[str, Rotation],
               errors: list[FieldError]) -> list[Override]:
    if not isinstance(raw, list):
        errors.append(FieldError("overrides", "must be a list"))
        return []
    overrides = []
    for index, entry in enumerate(raw):
        where = f"overrides[{index}]"
        if not isinstance(entry, dict):
            errors.append(FieldError(where, "must be a mapping with rotation, person, from, until"))
            continue
        _unknown(entry, {"rotation", "person", "from", "until"}, where, errors)
        rotation, person = str(entry.get("rotation", "")), str(entry.get("person", ""))
        if rotation not in rotations:
            errors.append(FieldError(f"{where}.rotation", "names no rotation"))
        if person not in people:
            errors.append(FieldError(f"{where}.person", "names no person"))
        starts = _moment(entry.get("from"), f"{where}.from", errors)
        ends = _moment(entry.get("until"), f"{where}.until", errors)
        if starts is not None and ends is not None:
            if ends <= starts:
                errors.append(FieldError(f"{where}.until", "must be after from"))
            else:
                overrides.append(Override(rotation, person, starts, ends))
    return overrides


def _severities(raw: object, rotations: Mapping[str, Rotation], errors: list[FieldError]
                ) -> dict[str, SeverityPolicy]:
    if not isinstance(raw, dict):
        errors.append(FieldError("severities", f"must be a mapping of {list(SEVERITIES)}"))
        return {}
    severities = {}
    for severity, entry in raw.items():
        where = f"severities.{severity}"
        if severity not in SEVERITIES:
            errors.append(FieldError(where, f"must be one of {list(SEVERITIES)}"))
            continue
        if not isinstance(entry, dict):
            errors.append(FieldError(where, "must be a mapping with response, repeat, steps"))
            continue
        _unknown(entry, {"response", "repeat", "steps"}, where, errors)
        try:
            response = parse_duration(entry.get("response"))
        except ValueError as exc:
            errors.append(FieldError(f"{where}.response", str(exc)))
            continue
        if response is None:
            errors.append(FieldError(f"{where}.response", "is required (e.g. 15m)"))
            continue
        try:
            repeat = parse_duration(entry.get("repeat", "never"))
        except ValueError as exc:
            errors.append(FieldError(f"{where}.repeat", str(exc)))
            repeat = None
        steps = entry.get("steps") or []
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            errors.append(FieldError(f"{where}.steps", "must be a list of rotations"))
            continue
        unknown = [s for s in steps if s not in rotations]
        if unknown:
            errors.append(FieldError(f"{where}.steps", f"names no rotation: {unknown}"))
        severities[str(severity)] = SeverityPolicy(str(severity), response, repeat, tuple(steps))
    return severities
