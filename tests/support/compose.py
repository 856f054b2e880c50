"""docker-compose.yml read the way docker compose reads it, without Docker.

`interpolate` follows the Compose Specification's interpolation rules (`${VAR}`, `$VAR`,
`${VAR:-default}` and `${VAR-default}`, `${VAR:?message}` and `${VAR?message}`, `${VAR:+other}` and
`${VAR+other}`, `$$` for a dollar sign, defaults that hold further `${...}`); `read_env_file` the
plain `NAME=value` lines of `.env.example`; `schema_errors` checks a document against the Compose
Specification's own JSON schema, vendored in `tests/data/compose-spec/` (Apache-2.0, see its
README).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.S)


class InterpolationError(ValueError):
    """Text compose would refuse to interpolate."""


class MissingVariable(InterpolationError):
    """A `${VAR:?message}` whose variable is unset (or empty): compose stops with the message."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def interpolate(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_substitute(text[i + 2:end], env))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            raise InterpolationError(f"invalid interpolation at {text[i:i + 20]!r}")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 1, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _substitute(body: str, env: Mapping[str, str]) -> str:
    match = _BRACED.fullmatch(body)
    if match is None:
        raise InterpolationError(f"invalid interpolation ${{{body}}}")
    name, operator, argument = match.groups()
    value = env.get(name)
    if operator is None:
        return value or ""
    # With a colon an empty value counts as unset, without one only an absent variable does.
    present = bool(value) if operator.startswith(":") else value is not None
    kind = operator[-1]
    if kind == "-":
        return value if present and value is not None else interpolate(argument, env)
    if kind == "+":
        return interpolate(argument, env) if present else ""
    if present and value is not None:
        return value
    raise MissingVariable(name, interpolate(argument, env))


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    """The document with every string value interpolated (compose leaves keys alone)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    return node


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and _NAME.fullmatch(name), f"{path.name}: not NAME=value: {line!r}"
        values[name] = value
    return values


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The file as YAML gives it (anchors and `<<` merges resolved), not yet interpolated."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def enabled_services(document: Mapping[str, Any], profiles: Iterable[str] = ()) -> set[str]:
    """The services `docker compose --profile P ... up` starts: those without profiles, and those
    in one of the given profiles."""
    wanted = set(profiles)
    return {name for name, service in document["services"].items()
            if not service.get("profiles") or wanted & set(service["profiles"])}


@cache
def _schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_FILE.read_text()))


def schema_errors(document: Mapping[str, Any]) -> list[str]:
    """Where the document breaks the Compose Specification, one line per error ([] when none)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(_schema())
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
            for error in validator.iter_errors(document)]
