"""Load the alerting rules of Prometheus rule files (recording rules stay with Prometheus)."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from alerts.rules.model import AlertRule
from billing_core.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                 "y": 31536000}


class RuleFileError(ConfigError):
    """A rule file that cannot be read, or a rule in it that cannot be used."""


def parse_duration(text: str | int | None, *, where: str) -> timedelta:
    """Prometheus durations: `1m`, `1h30m`, `500ms`, `0s` (a bare 0 too)."""
    if text is None or text == 0 or text == "0":
        return timedelta(0)
    raw = str(text).strip()
    pos = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise RuleFileError(f"{where}: {raw!r} is not a duration like 30s, 5m or 1h30m")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise RuleFileError(f"{where}: {raw!r} is longer than any date can hold") from None


def _string_map(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RuleFileError(f"{where} must be a mapping")
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def load_rule_file(path: Path) -> list[AlertRule]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RuleFileError(f"{path}: cannot read rules: {error}") from error
    if document is None:
        return []
    if not isinstance(document, dict) or not isinstance(document.get("groups", []), list):
        raise RuleFileError(f"{path}: must hold `groups:`, a list of rule groups")
    rules: list[AlertRule] = []
    for group in document.get("groups") or []:
        group_name = str(group.get("name", ""))
        for index, rule in enumerate(group.get("rules") or []):
            if "alert" not in rule:
                continue  # a recording rule
            where = f"{path.name}: group {group_name!r}, rule {index} ({rule.get('alert')})"
            expr = rule.get("expr")
            if not isinstance(expr, str | int | float) or str(expr).strip() == "":
                raise RuleFileError(f"{where}: expr is required")
            rules.append(AlertRule(
                name=str(rule["alert"]),
                expr=str(expr).strip(),
                hold=parse_duration(rule.get("for"), where=f"{where}: for"),
                keep_firing_for=parse_duration(rule.get("keep_firing_for"),
                                               where=f"{where}: keep_firing_for"),
                labels=_string_map(rule.get("labels"), f"{where}: labels"),
                annotations=_string_map(rule.get("annotations"), f"{where}: annotations"),
                group=group_name,
                source=str(path),
            ))
    return rules


def rule_paths(pattern: str) -> list[Path]:
    """The files a rule_files glob names, sorted (one pattern, or several split by commas)."""
    paths: set[Path] = set()
    for part in (p.strip() for p in pattern.split(",")):
        if part:
            paths.update(Path(p) for p in glob.glob(part))
    return sorted(paths)


def load_rules(pattern: str | Iterable[Path]) -> list[AlertRule]:
    """Every alerting rule of the files matched, in file and group order."""
    paths = rule_paths(pattern) if isinstance(pattern, str) else list(pattern)
    if not paths:
        raise RuleFileError(f"no rule files match {pattern!r}")
    rules: list[AlertRule] = []
    for path in paths:
        rules.extend(load_rule_file(path))
    return rules
