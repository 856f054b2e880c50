"""The routes file: read it once at start, check every field, build the routing table.

Every problem of a file is reported at once, each naming its field and the reason, and none
echoes a URL, token, password or routing key (Slack's webhook URL carries its token).
`${VAR}` and `${VAR:-text}` in any string are replaced from the environment the process was
started with; a receiver whose address, URL, key or credential comes out empty is disabled.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast, get_args

import yaml

from alerts.delivery.message import Kind
from alerts.delivery.pagerduty import DEFAULT_EVENTS_URL, ROUTING_KEY_LENGTH
from alerts.delivery.routing import (
    BUDGET_CHANNELS,
    DEFAULT_GROUP_BY,
    DEFAULT_REPEAT_INTERVAL,
    Receiver,
    Route,
    RoutingTable,
)
from alerts.delivery.slack_api import DEFAULT_SLACK_API_URL
from billing_core.errors import ConfigError

DEFAULT_ROUTES_FILE = Path(__file__).resolve().parent / "routes.yml"
KINDS: tuple[str, ...] = get_args(Kind)
RECEIVER_KINDS = ("email", "slack", "webhook", "pagerduty")

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class RoutesFileError(ConfigError):
    """A routes file that cannot be used; `errors` names each bad field and why."""

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        self.source = source
        self.errors = tuple(errors)
        super().__init__(f"routes file {source}: " + "; ".join(map(str, errors)))


def routes_file_from_env(environ: Mapping[str, str]) -> Path:
    """ROUTES_FILE, or the shipped routes file."""
    value = environ.get("ROUTES_FILE", "").strip()
    return Path(value) if value else DEFAULT_ROUTES_FILE


def load_routes(
    path: Path | str | None = None, *, environ: Mapping[str, str] | None = None
) -> RoutingTable:
    """Read and check a routes file (the shipped one by default); RoutesFileError when bad."""
    file = DEFAULT_ROUTES_FILE if path is None else Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesFileError(source, [FieldError("", f"cannot be read: {exc.strerror}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RoutesFileError(source, [FieldError("", f"is not valid YAML{where}")]) from exc
    return parse_routes(data, environ=os.environ if environ is None else environ, source=source)


def parse_duration(value: object) -> timedelta | None:
    """`4h`, `30m`, `1h30m`, `90s`, `1d` -> timedelta; `never` or null -> None."""
    if value is None or value == "never":
        return None
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise ValueError("must be a duration like 4h, 30m or 1h30m, or never")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError("must be longer than zero (use never to send once)")
    return duration


def expand_env(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML document."""
    if isinstance(value, str):
        return _ENV_REFERENCE.sub(
            lambda m: environ.get(m.group(1), "") or (m.group(2) or ""), value
        )
    if isinstance(value, list):
        return [expand_env(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: expand_env(item, environ) for key, item in value.items()}
    return value


def parse_routes(
    data: object, *, environ: Mapping[str, str] | None = None, source: str = "<routes>"
) -> RoutingTable:
    """Check a parsed routes document and build the table; every problem is reported at once."""
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        raise RoutesFileError(
            source, [FieldError("", "must be a mapping with receivers and routes")]
        )
    data = cast(dict[str, Any], expand_env(data, os.environ if environ is None else environ))
    _unknown_keys(data, {"version", "defaults", "receivers", "routes"}, "", errors)
    if data.get("version") != 1:
        errors.append(FieldError("version", "must be 1"))

    defaults = _route_settings(data.get("defaults", {}), "defaults", errors, fallback=None)
    receivers = _receivers(data.get("receivers"), errors)
    routes = _routes(data.get("routes"), receivers, defaults, errors)
    if errors:
        raise RoutesFileError(source, errors)
    return RoutingTable(receivers=receivers, routes=routes, source=source)


def _unknown_keys(
    mapping: Mapping[str, Any], allowed: set[str], where: str, errors: list[FieldError]
) -> None:
    for key in mapping:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            errors.append(FieldError(name, f"unknown field (expected one of {sorted(allowed)})"))


def _string_list(value: object, where: str, errors: list[FieldError]) -> list[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.append(FieldError(where, "must be a list of strings"))
        return None
    return value


def _receivers(raw: object, errors: list[FieldError]) -> dict[str, Receiver]:
    if not isinstance(raw, dict) or not raw:
        errors.append(FieldError("receivers", "must be a non-empty mapping of name to receiver"))
        return {}
    receivers: dict[str, Receiver] = {}
    for name, spec in raw.items():
        where = f"receivers.{name}"
        if (
            not isinstance(spec, dict)
            or len(spec) != 1
            or next(iter(spec)) not in RECEIVER_KINDS
        ):
            errors.append(FieldError(where, "must have exactly one of email, slack, webhook "
                                            "or pagerduty"))
            continue
        channel, options = next(iter(spec.items()))
        where = f"{where}.{channel}"
        if not isinstance(options, dict):
            errors.append(FieldError(where, "must be a mapping"))
            continue
        if channel == "email":
            receiver = _email_receiver(str(name), options, where, errors)
        elif channel == "slack":
            receiver = _slack_receiver(str(name), options, where, errors)
        elif channel == "webhook":
            receiver = _webhook_receiver(str(name), options, where, errors)
        else:
            receiver = _pagerduty_receiver(str(name), options, where, errors)
        if receiver is not None:
            receivers[str(name)] = receiver
    return receivers


def _email_receiver(
    name: str, options: dict[str, Any], where: str, errors: list[FieldError]
) -> Receiver | None:
    _unknown_keys(options, {"to", "to_label"}, where, errors)
    if "to" not in options and "to_label" not in options:
        errors.append(FieldError(where, "needs to (addresses) or to_label (a label name)"))
        return None
    addresses = _string_list(options.get("to", []), f"{where}.to", errors)
    if addresses is None:
        return None
    kept = []
    for index, address in enumerate(addresses):
        address = address.strip()
        if not address:
            continue  # an unset variable: the receiver may end up disabled
        if "@" not in address or any(c.isspace() or c in ",;<>" for c in address):
            errors.append(FieldError(f"{where}.to[{index}]", f"{address!r} is not an address"))
        kept.append(address)
    to_label = options.get("to_label", "")
    if not isinstance(to_label, str) or (to_label and not _LABEL_NAME.match(to_label)):
        errors.append(FieldError(f"{where}.to_label", "must be a label name"))
        return None
    return Receiver(name=name, channel="email", to=tuple(kept), to_label=to_label)


def _slack_receiver(
    name: str, options: dict[str, Any], where: str, errors: list[FieldError]
) -> Receiver | None:
    _unknown_keys(options, {"webhook_url", "api_token", "channel", "api_url"}, where, errors)
    if "webhook_url" not in options and "api_token" not in options:
        errors.append(FieldError(f"{where}.webhook_url", "is required (a string), unless "
                                                          "api_token and channel are given"))
        return None
    url = _url(options, "webhook_url", where, errors, default="")
    api_url = _url(options, "api_url", where, errors, default=DEFAULT_SLACK_API_URL)
    token = options.get("api_token", "")
    channel = options.get("channel", "")
    if not isinstance(token, str) or not isinstance(channel, str):
        errors.append(FieldError(where, "api_token and channel must be strings"))
        return None
    if url is None or api_url is None:
        return None
    if token.strip() and not channel.strip():
        errors.append(FieldError(f"{where}.channel", "is required with api_token (a channel "
                                                      "id such as C0123ABCD)"))
        return None
    # A bot token and a channel win over a webhook: threads need the Web API.
    return Receiver(name=name, channel="slack", webhook_url=url, bearer_token=token.strip(),
                    slack_channel=channel.strip(), api_url=api_url)


def _url(options: dict[str, Any], key: str, where: str, errors: list[FieldError], *,
         default: str | None = None) -> str | None:
    """An http(s) URL ("" when it came out empty); None when it is not one. Never echoed."""
    url = options.get(key, default)
    if not isinstance(url, str):
        errors.append(FieldError(f"{where}.{key}", "is required (a string)"))
        return None
    url = url.strip()
    if url and not url.startswith(("https://", "http://")):
        errors.append(FieldError(f"{where}.{key}", "must be an http(s) URL"))
        return None
    return url


def _secret(options: dict[str, Any], key: str, where: str, errors: list[FieldError]) -> str:
    value = options.get(key, "")
    if not isinstance(value, str):
        errors.append(FieldError(f"{where}.{key}", "must be a string"))
        return ""
    return value.strip()


def _timeout(options: dict[str, Any], where: str, errors: list[FieldError]) -> float | None:
    if "timeout" not in options:
        return None
    try:
        duration = parse_duration(options["timeout"])
    except ValueError as exc:
        errors.append(FieldError(f"{where}.timeout", str(exc)))
        return None
    if duration is None:
        errors.append(FieldError(f"{where}.timeout", "must be a duration like 10s"))
        return None
    return duration.total_seconds()


def _webhook_receiver(
    name: str, options: dict[str, Any], where: str, errors: list[FieldError]
) -> Receiver | None:
    _unknown_keys(options, {"url", "bearer_token", "basic_auth", "send_resolved", "timeout"},
                  where, errors)
    url = _url(options, "url", where, errors)
    unset = [] if url else ["url"]
    token = _secret(options, "bearer_token", where, errors)
    if "bearer_token" in options and not token:
        unset.append("bearer_token")
    basic_auth = None
    if "basic_auth" in options:
        if "bearer_token" in options:
            errors.append(FieldError(f"{where}.basic_auth", "use bearer_token or basic_auth, "
                                                            "not both"))
        raw = options["basic_auth"]
        if not isinstance(raw, dict) or not {"username", "password"} <= set(raw):
            errors.append(FieldError(f"{where}.basic_auth", "must have username and password"))
        else:
            _unknown_keys(raw, {"username", "password"}, f"{where}.basic_auth", errors)
            user = _secret(raw, "username", f"{where}.basic_auth", errors)
            password = _secret(raw, "password", f"{where}.basic_auth", errors)
            unset += [f"basic_auth.{key}" for key, value in
                      (("username", user), ("password", password)) if not value]
            basic_auth = (user, password)
    send_resolved = options.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        errors.append(FieldError(f"{where}.send_resolved", "must be true or false"))
    timeout = _timeout(options, where, errors)
    if url is None:
        return None
    return Receiver(name=name, channel="webhook", webhook_url=url, bearer_token=token,
                    basic_auth=basic_auth, timeout_seconds=timeout,
                    send_resolved=send_resolved is not False, unset=tuple(unset))


def _pagerduty_receiver(
    name: str, options: dict[str, Any], where: str, errors: list[FieldError]
) -> Receiver | None:
    _unknown_keys(options, {"routing_key", "url", "timeout"}, where, errors)
    if "routing_key" not in options:
        errors.append(FieldError(f"{where}.routing_key", "is required (the integration key)"))
        return None
    key = _secret(options, "routing_key", where, errors)
    if key and len(key) != ROUTING_KEY_LENGTH:
        errors.append(FieldError(f"{where}.routing_key", f"must be the {ROUTING_KEY_LENGTH}-"
                                 "character integration key of an Events API v2 integration"))
    url = _url(options, "url", where, errors, default=DEFAULT_EVENTS_URL)
    timeout = _timeout(options, where, errors)
    if url is None:
        return None
    unset = [field for field, value in (("routing_key", key), ("url", url)) if not value]
    return Receiver(name=name, channel="pagerduty", routing_key=key, events_url=url,
                    timeout_seconds=timeout, unset=tuple(unset))


@dataclass(frozen=True)
class _Settings:
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    repeat_interval: timedelta | None = DEFAULT_REPEAT_INTERVAL
    send_resolved: bool = True


def _route_settings(
    raw: object, where: str, errors: list[FieldError], *, fallback: _Settings | None
) -> _Settings:
    base = fallback or _Settings()
    if not isinstance(raw, dict):
        errors.append(FieldError(where, "must be a mapping"))
        return base
    if fallback is None:
        _unknown_keys(raw, {"group_by", "repeat_interval", "send_resolved"}, where, errors)
    group_by = base.group_by
    if "group_by" in raw:
        names = _string_list(raw["group_by"], f"{where}.group_by", errors)
        if names is not None:
            bad = [n for n in names if not _LABEL_NAME.match(n)]
            if bad or not names:
                errors.append(FieldError(f"{where}.group_by", "must list label names"))
            group_by = tuple(names)
    repeat = base.repeat_interval
    if "repeat_interval" in raw:
        try:
            repeat = parse_duration(raw["repeat_interval"])
        except ValueError as exc:
            errors.append(FieldError(f"{where}.repeat_interval", str(exc)))
    send_resolved = raw.get("send_resolved", base.send_resolved)
    if not isinstance(send_resolved, bool):
        errors.append(FieldError(f"{where}.send_resolved", "must be true or false"))
        send_resolved = base.send_resolved
    return _Settings(group_by=group_by, repeat_interval=repeat, send_resolved=send_resolved)


def _match(raw: object, where: str, errors: list[FieldError]) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(FieldError(where, "must be a mapping of label to value(s)"))
        return {}
    match: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if not isinstance(key, str) or not _LABEL_NAME.match(key):
            errors.append(FieldError(at, "is not a label name"))
            continue
        values = _string_list(value, at, errors)
        if values is None:
            continue
        if not values:
            errors.append(FieldError(at, "must name at least one value"))
        if key == "kind" and not set(values) <= set(KINDS):
            errors.append(FieldError(at, f"must be one of {list(KINDS)}"))
        match[key] = tuple(values)
    return match


def _routes(
    raw: object,
    receivers: Mapping[str, Receiver],
    defaults: _Settings,
    errors: list[FieldError],
) -> tuple[Route, ...]:
    if not isinstance(raw, list) or not raw:
        errors.append(FieldError("routes", "must be a non-empty list"))
        return ()
    routes = []
    allowed = {
        "name",
        "match",
        "receivers",
        "group_by",
        "repeat_interval",
        "send_resolved",
        "continue",
    }
    for index, spec in enumerate(raw):
        where = f"routes[{index}]"
        if not isinstance(spec, dict):
            errors.append(FieldError(where, "must be a mapping"))
            continue
        _unknown_keys(spec, allowed, where, errors)
        names: list[str] = []
        if "receivers" not in spec:
            errors.append(FieldError(f"{where}.receivers", "is required"))
        else:
            names = _string_list(spec["receivers"], f"{where}.receivers", errors) or []
            if not names and isinstance(spec["receivers"], list):
                errors.append(FieldError(f"{where}.receivers", "must name at least one receiver"))
        chosen = []
        match = _match(spec.get("match"), f"{where}.match", errors)
        for position, name in enumerate(names):
            if name not in receivers:
                errors.append(
                    FieldError(f"{where}.receivers[{position}]", f"unknown receiver {name!r}")
                )
                continue
            receiver = receivers[name]
            if "budget" in match.get("kind", ()) and receiver.channel not in BUDGET_CHANNELS:
                errors.append(FieldError(
                    f"{where}.receivers[{position}]",
                    f"{name!r} is a {receiver.channel} receiver: budget messages go to email "
                    "and Slack receivers only"))
            chosen.append(receiver)
        settings = _route_settings(spec, where, errors, fallback=defaults)
        keep_going = spec.get("continue", False)
        if not isinstance(keep_going, bool):
            errors.append(FieldError(f"{where}.continue", "must be true or false"))
            keep_going = False
        routes.append(
            Route(
                name=str(spec.get("name") or f"route {index}"),
                match=match,
                receivers=tuple(chosen),
                group_by=settings.group_by,
                repeat_interval=settings.repeat_interval,
                send_resolved=settings.send_resolved,
                continue_matching=keep_going,
            )
        )
    return tuple(routes)
