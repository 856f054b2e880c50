"""Runbook files split into sections, with GitHub-style anchors (what alert links point at)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNBOOK_DIR = Path(__file__).resolve().parent.parent / "runbooks"


def github_slug(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@dataclass(frozen=True)
class Section:
    heading: str
    anchor: str
    body: str  # the markdown of the section, heading line included


def list_runbooks(directory: Path = RUNBOOK_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.md"))


def read_runbook(name: str, directory: Path = RUNBOOK_DIR) -> str | None:
    if name not in list_runbooks(directory):
        return None  # only names we listed: the query string never picks a path
    return (directory / f"{name}.md").read_text(encoding="utf-8")


def sections(markdown: str) -> list[Section]:
    """Level-2 sections; headings inside code fences are text, not sections."""
    found: list[Section] = []
    heading: str | None = None
    lines: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            if heading is not None:
                found.append(Section(heading, github_slug(heading), "\n".join(lines)))
            heading, lines = line[3:].strip(), [line]
        elif heading is not None:
            lines.append(line)
    if heading is not None:
        found.append(Section(heading, github_slug(heading), "\n".join(lines)))
    return found


def find_section(markdown: str, anchor: str) -> Section | None:
    """The level-2 section with this anchor, or the one holding a deeper heading with it."""
    wanted = anchor.strip().lstrip("#").lower()
    found = sections(markdown)
    exact = next((s for s in found if s.anchor == wanted), None)
    if exact is not None:
        return exact
    for section in found:
        in_fence = False
        for line in section.body.splitlines()[1:]:
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
            if not in_fence and re.match(r"#{3,6} ", line) and (
                github_slug(line.lstrip("#")) == wanted
            ):
                return section
    return None


_RELATIVE_LINK = re.compile(r"\]\((?P<file>[A-Za-z0-9_\-]+\.md)?(?:#(?P<anchor>[\w\-]+))?\)")


def console_links(markdown: str, *, runbook: str) -> str:
    """Rewrite links between runbooks (`other.md`, `other.md#anchor`, `#anchor`) to the console's
    runbook page, so they open the right runbook at the right section; code stays as written."""

    def rewrite(match: re.Match[str]) -> str:
        target = match.group("file")
        anchor = match.group("anchor")
        if target is None and anchor is None:
            return match.group(0)
        name = target[:-3] if target else runbook
        link = f"/runbooks?runbook={name}"
        return f"]({link}&section={anchor.lower()})" if anchor else f"]({link})"

    out: list[str] = []
    in_fence = False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        out.append(line if in_fence else _RELATIVE_LINK.sub(rewrite, line))
    return "".join(out)


def console_runbook_link(runbook_url: str | None, *, service: str, alertname: str) -> str:
    """A console-relative link to the runbook section, from the alert's runbook_url or labels."""
    if runbook_url and "?" in runbook_url and "/runbooks" in runbook_url:
        return "/runbooks?" + runbook_url.split("?", 1)[1]
    return f"/runbooks?runbook={service}&section={github_slug(alertname)}"
