"""Render alert labels and annotations the way Prometheus does.

Prometheus expands each annotation as a Go text/template with `$labels` (the series' labels),
`$value` (the sample value), `$externalLabels` and `$externalURL`, and the same data as `.Labels`,
`.Value`. A missing label prints as an empty string (`missingkey=zero`). A template that fails
renders as `<error expanding template: ...>`, as Prometheus does, so a broken annotation never
stops the alert itself.

We implement the subset alert rules use: actions made of pipelines of variables, fields, string
and number literals and functions (`{{ $value | humanizePercentage }}`,
`{{ humanize $value }}`, `{{ printf "%.2f" $value }}`), with `{{-`/`-}}` whitespace trimming.
Control structures (`if`, `range`, `with`) and functions that query Prometheus are refused with
an error naming them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerts.rules.gofmt import format_g, format_printf, format_v
from alerts.rules.model import RuleEvaluationError


class TemplateError(RuleEvaluationError):
    """A template Prometheus would refuse too; it renders as Prometheus' error text."""


@dataclass(frozen=True)
class TemplateData:
    labels: Mapping[str, str]
    value: float
    external_labels: Mapping[str, str]
    external_url: str = ""


def render(template: str, data: TemplateData) -> str:
    """Expand one template; errors come back in Prometheus' words instead of raising."""
    try:
        return expand(template, data)
    except TemplateError as error:
        return f"<error expanding template: {error}>"


def expand(template: str, data: TemplateData) -> str:
    """Expand one template, raising TemplateError on a template Prometheus would also refuse
    (or one that uses a part of Go templates we do not implement)."""
    out: list[str] = []
    pos = 0
    trim_next = False
    while True:
        start = template.find("{{", pos)
        if start < 0:
            text = template[pos:]
            out.append(text.lstrip() if trim_next else text)
            break
        text = template[pos:start]
        if trim_next:
            text = text.lstrip()
        end = template.find("}}", start + 2)
        if end < 0:
            raise TemplateError("unclosed action")
        inner = template[start + 2 : end]
        if inner.startswith("- ") or inner == "-":
            text = text.rstrip()
            inner = inner[1:]
        trim_next = inner.endswith(" -") or inner == "-"
        if trim_next:
            inner = inner[:-1]
        out.append(text)
        out.append(_evaluate_action(inner.strip(), data))
        pos = end + 2
    return "".join(out)


# -- functions (Prometheus' template function map, the side-effect-free part) -----------------

_SI_UP = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SI_DOWN = ("m", "u", "n", "p", "f", "a", "z", "y")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TemplateError(f"cannot convert {value!r} to a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise TemplateError(f"strconv.ParseFloat: parsing {value!r}: invalid syntax") from None
    raise TemplateError(f"cannot convert {value!r} to a number")


def humanize(raw: Any) -> str:
    v = _to_float(raw)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    prefix = ""
    if abs(v) >= 1:
        for p in _SI_UP:
            if abs(v) < 1000:
                break
            prefix = p
            v /= 1000
        return format_g(v, 4) + prefix
    for p in _SI_DOWN:
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return format_g(v, 4) + prefix


def humanize1024(raw: Any) -> str:
    v = _to_float(raw)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return format_g(v, 4) + prefix


def humanize_percentage(raw: Any) -> str:
    return format_g(_to_float(raw) * 100, 4) + "%"


def humanize_duration(raw: Any) -> str:
    v = _to_float(raw)
    if math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    if v == 0:
        return format_g(v, 4) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        duration = _go_int64(v)
        seconds = _go_rem(duration, 60)
        minutes = _go_rem(_go_div(duration, 60), 60)
        hours = _go_rem(_go_div(duration, 3600), 24)
        days = _go_div(duration, 86400)
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{format_g(v, 4)}s"
    prefix = ""
    for p in _SI_DOWN:
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{format_g(v, 4)}{prefix}s"


def _go_int64(v: float) -> int:
    """Go's int64(v): out of range gives the minimum int64 (what amd64 does)."""
    return int(v) if -(2**63) <= v < 2**63 else -(2**63)


def _go_div(a: int, b: int) -> int:
    """Go's integer division truncates toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def _go_rem(a: int, b: int) -> int:
    return a - b * _go_div(a, b)


def humanize_timestamp(raw: Any) -> str:
    v = _to_float(raw)
    if math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    if not -(2**63) <= v * 1e9 < 2**63:
        raise TemplateError(f"error calling humanizeTimestamp: {format_v(v)} cannot be "
                            "represented as a nanoseconds timestamp since it overflows int64")
    # Prometheus goes through model.Time: nanoseconds truncated to milliseconds.
    millis = int(int(v * 1e9) / 10**6)
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    fraction = f"{millis % 1000:03d}".rstrip("0")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "") + \
        " +0000 UTC"


def _strip_port(host: Any) -> str:
    text = str(host)
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else text
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def _strip_domain(host: Any) -> str:
    text = str(host)
    port = ""
    if text.count(":") == 1:
        text, port = text.split(":", 1)
        port = ":" + port
    if re.fullmatch(r"[0-9.]+", text):
        return text + port
    return text.split(".", 1)[0] + port


def _go_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise TemplateError(f"error parsing regexp: {error}") from None


def _re_replace_all(pattern: Any, repl: Any, text: Any) -> str:
    # Go writes group references as $1 or ${1}; Python as \1.
    python_repl = re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", str(repl).replace("\\", "\\\\"))
    return _go_regex(str(pattern)).sub(python_repl, str(text))


def _match(pattern: Any, text: Any) -> bool:
    return _go_regex(str(pattern)).search(str(text)) is not None


def _title(text: Any) -> str:
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), str(text))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
    "humanizeTimestamp": humanize_timestamp,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": _title,
    "stripPort": _strip_port,
    "stripDomain": _strip_domain,
    "reReplaceAll": _re_replace_all,
    "match": _match,
    "safeHtml": lambda s: str(s),
    "printf": lambda fmt, *args: format_printf(str(fmt), list(args)),
}
UNSUPPORTED = {"query", "first", "label", "value", "sortByLabel", "strvalue", "args",
               "tmpl", "graphLink", "tableLink", "pathPrefix", "externalURL", "parseDuration"}
KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
            "continue"}


# -- a small tokenizer and evaluator for one action ------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*") |
        (?P<raw>`[^`]*`) |
        (?P<pipe>\|) |
        (?P<paren>[()]) |
        (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*) |
        (?P<field>(?:\.[A-Za-z0-9_]+)+|\.) |
        (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)) |
        (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokenize(action: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(action):
        if action[pos:].strip() == "":
            break
        match = _TOKEN.match(action, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"unexpected {action[pos:].strip()[:20]!r} in command")
        kind = match.lastgroup
        assert kind is not None
        tokens.append(_Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


def _evaluate_action(action: str, data: TemplateData) -> str:
    if action.startswith("/*"):
        return ""  # a comment
    tokens = _tokenize(action)
    if not tokens:
        raise TemplateError("missing value for command")
    if tokens[0].kind == "ident" and tokens[0].text in KEYWORDS:
        raise TemplateError(f"{tokens[0].text!r} is not supported by the alerts process")
    if any(t.kind == "paren" for t in tokens):
        raise TemplateError("parenthesised pipelines are not supported by the alerts process")
    value = _evaluate_pipeline(tokens, data)
    return _print(value)


def _print(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_v(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _evaluate_pipeline(tokens: list[_Token], data: TemplateData) -> Any:
    commands: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "pipe":
            commands.append([])
        else:
            commands[-1].append(token)
    result: Any = None
    for index, command in enumerate(commands):
        if not command:
            raise TemplateError("missing command in pipeline")
        piped = () if index == 0 else (result,)
        result = _evaluate_command(command, piped, data)
    return result


def _evaluate_command(command: list[_Token], piped: tuple[Any, ...], data: TemplateData) -> Any:
    head = command[0]
    if head.kind == "ident":
        name = head.text
        if name in UNSUPPORTED:
            raise TemplateError(f"function {name!r} is not supported by the alerts process")
        if name in {"true", "false"}:
            return name == "true"
        function = FUNCTIONS.get(name)
        if function is None:
            raise TemplateError(f'function "{name}" not defined')
        args = [_operand(t, data) for t in command[1:]] + list(piped)
        try:
            return function(*args)
        except TypeError:
            raise TemplateError(f"wrong number of args for {name}") from None
    if len(command) > 1 or piped:
        raise TemplateError(f"can't give argument to non-function {head.text}")
    return _operand(head, data)


def _operand(token: _Token, data: TemplateData) -> Any:
    if token.kind == "string":
        return bytes(token.text[1:-1], "utf-8").decode("unicode_escape")
    if token.kind == "raw":
        return token.text[1:-1]
    if token.kind == "number":
        text = token.text
        return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
    if token.kind == "var":
        name, *path = token.text.split(".")
        roots: dict[str, Any] = {
            "$": _dot(data),
            "$labels": data.labels,
            "$value": data.value,
            "$externalLabels": data.external_labels,
            "$externalURL": data.external_url,
        }
        if name not in roots:
            raise TemplateError(f"undefined variable: {name}")
        return _walk(roots[name], path)
    if token.kind == "field":
        path = [p for p in token.text.split(".") if p]
        return _walk(_dot(data), path)
    if token.kind == "ident":
        raise TemplateError(f"function {token.text!r} used as an argument")
    raise TemplateError(f"unexpected {token.text!r}")


def _dot(data: TemplateData) -> dict[str, Any]:
    return {
        "Labels": data.labels,
        "Value": data.value,
        "ExternalLabels": data.external_labels,
        "ExternalURL": data.external_url,
    }


def _walk(value: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(value, Mapping):
            raise TemplateError(f"can't evaluate field {part} in type {type(value).__name__}")
        value = value.get(part, "")
    return value
