"""Grafana Alloy's configuration syntax, read far enough to check alloy/config.alloy without Alloy.

There is no Alloy binary here, so this reads the language as its reference describes it: blocks
(`name.more "label" { ... }`), attributes (`name = expression`), `//` and `/* */` comments, and the
expressions a pipeline uses: strings ("..." with escapes, `...` raw), numbers, true, false, null,
lists, objects (`{ key = value, "key" = value }`), references to other components' exports
(`discovery.docker.compose.targets`) and function calls (`sys.env("NAME")`). Operators are not
read: a config using them fails to parse here, which a test would notice. A syntax error raises
`AlloySyntaxError` with the line it is on.

`relabel` applies a `discovery.relabel` block's `rule`s to one set of labels the way Prometheus'
relabelling does (action `replace`, `keep`, `drop`, `labelmap`, `labeldrop`, `labelkeep`), so a
test can say which labels a container's logs get.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]()=,.])
""", re.S | re.X)


class AlloySyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Ref:
    """A reference to another component's export, or to a function's name."""

    path: str


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Any, ...]


@dataclass
class Block:
    name: str  # discovery.docker
    label: str | None  # "compose"
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    line: int = 0

    def children(self, name: str) -> list[Block]:
        return [block for block in self.blocks if block.name == name]


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens, position, line = [], 0, 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise AlloySyntaxError(f"line {line}: unexpected {text[position]!r}")
        kind = match.lastgroup or ""
        if kind not in {"space", "comment"}:
            tokens.append((kind, match.group(), line))
        line += match.group().count("\n")
        position = match.end()
    tokens.append(("end", "", line))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self, ahead: int = 0) -> tuple[str, str, int]:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if (kind is not None and token[0] != kind) or (value is not None and token[1] != value):
            wanted = value or kind
            raise AlloySyntaxError(f"line {token[2]}: expected {wanted}, found {token[1]!r}")
        self.index += 1
        return token

    def body(self, closing: str | None) -> tuple[dict[str, Any], list[Block]]:
        attributes: dict[str, Any] = {}
        blocks: list[Block] = []
        while True:
            kind, value, line = self.peek()
            if closing is None and kind == "end":
                return attributes, blocks
            if closing is not None and value == closing:
                self.take()
                return attributes, blocks
            name = self.take("ident")[1]
            while self.peek()[1] == ".":
                self.take()
                name += "." + self.take("ident")[1]
            if self.peek()[1] == "=":
                if "." in name:
                    raise AlloySyntaxError(f"line {line}: attribute name {name!r} has a dot")
                self.take()
                if name in attributes:
                    raise AlloySyntaxError(f"line {line}: {name} set twice")
                attributes[name] = self.expression()
                continue
            label = None
            if self.peek()[0] == "string":
                label = json.loads(self.take()[1])
            self.take("punct", "{")
            inner_attributes, inner_blocks = self.body("}")
            blocks.append(Block(name, label, inner_attributes, inner_blocks, line))

    def expression(self) -> Any:
        kind, value, line = self.take()
        if kind == "string":
            return json.loads(value)
        if kind == "raw":
            return value[1:-1]
        if kind == "number":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if value == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.expression())
                if self.peek()[1] != "]":
                    self.take("punct", ",")
            self.take()
            return items
        if value == "{":
            entries: dict[str, Any] = {}
            while self.peek()[1] != "}":
                key_kind, key, _ = self.take()
                if key_kind not in {"ident", "string"}:
                    raise AlloySyntaxError(f"line {line}: bad object key {key!r}")
                self.take("punct", "=")
                entries[json.loads(key) if key_kind == "string" else key] = self.expression()
                if self.peek()[1] != "}":
                    self.take("punct", ",")
            self.take()
            return entries
        if kind == "ident":
            if value in {"true", "false"}:
                return value == "true"
            if value == "null":
                return None
            path = value
            while self.peek()[1] == ".":
                self.take()
                path += "." + self.take("ident")[1]
            if self.peek()[1] == "(":
                self.take()
                args = []
                while self.peek()[1] != ")":
                    args.append(self.expression())
                    if self.peek()[1] != ")":
                        self.take("punct", ",")
                self.take()
                return Call(path, tuple(args))
            return Ref(path)
        raise AlloySyntaxError(f"line {line}: unexpected {value!r}")


def parse(text: str) -> list[Block]:
    """The top-level blocks of an Alloy configuration."""
    attributes, blocks = _Parser(text).body(None)
    if attributes:
        raise AlloySyntaxError(f"attributes outside any block: {sorted(attributes)}")
    return blocks


def references(value: Any) -> list[str]:
    """Every reference inside an expression."""
    if isinstance(value, Ref):
        return [value.path]
    if isinstance(value, Call):
        return [ref for arg in value.args for ref in references(arg)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references(item)]
    return []


def _go_replacement(template: str, match: re.Match[str]) -> str:
    """Prometheus' `$1` / `${1}` / `${name}` in a replacement."""
    def group(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        try:
            return match.group(int(name) if name.isdigit() else name) or ""
        except IndexError:  # no such group: empty, as in Prometheus
            return ""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, template)


def relabel(rules: list[Block], labels: Mapping[str, str]) -> dict[str, str] | None:
    """The labels after the rules, or None when a rule drops the target."""
    current = dict(labels)
    for rule in rules:
        attrs = rule.attributes
        action = attrs.get("action", "replace")
        regex = re.compile(f"^(?:{attrs.get('regex', '(.*)')})$")
        source = attrs.get("separator", ";").join(
            current.get(name, "") for name in attrs.get("source_labels", []))
        if action == "replace":
            match = regex.match(source)
            if match is None:
                continue
            value = _go_replacement(attrs.get("replacement", "$1"), match)
            target = attrs["target_label"]
            if value:
                current[target] = value
            else:
                current.pop(target, None)
        elif action in {"keep", "drop"}:
            if (regex.match(source) is not None) != (action == "keep"):
                return None
        elif action == "labelmap":
            for name, value in list(current.items()):
                match = regex.match(name)
                if match:
                    current[_go_replacement(attrs.get("replacement", "$1"), match)] = value
        elif action in {"labeldrop", "labelkeep"}:
            current = {name: value for name, value in current.items()
                       if (regex.match(name) is not None) == (action == "labelkeep")}
        else:
            raise ValueError(f"relabel action {action!r} is not modelled here")
    return current
