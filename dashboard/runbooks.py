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
    wanted = anchor.strip().lstrip("#").lower()
    return next((s for s in sections(markdown) if s.anchor == wanted), None)


def console_runbook_link(runbook_url: str | None, *, service: str, alertname: str) -> str:
    """A console-relative link to the runbook section, from the alert's runbook_url or labels."""
    if runbook_url and "?" in runbook_url and "/runbooks" in runbook_url:
        return "/runbooks?" + runbook_url.split("?", 1)[1]
    return f"/runbooks?runbook={service}&section={github_slug(alertname)}"
