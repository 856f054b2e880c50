"""Shared by the generators: write a generated file, or with --check fail when it is stale."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def write_or_check(output: Path, text: str, *, check: bool, regenerate: str) -> int:
    """Return 0 when `output` was written (or is current under check), 1 when it is stale."""
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current == text:
            return 0
        sys.stderr.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=str(output),
                tofile="generated",
            )
        )
        print(f"{output} is stale: run {regenerate}", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return 0
