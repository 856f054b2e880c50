"""The pure rules stay pure: no database, cache, HTTP or UI imports, and no clock reads.

Pure modules are every concept's `rules.py` in the engine, the pure part of the shared core and
the alerts process' pure modules. Time comes in as a parameter; I/O lives in stores and adapters.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("sqlalchemy", "redis", "httpx", "streamlit", "fastapi", "psycopg", "requests",
             "stripe", "os", "time", "yaml", "pydantic", "starlette")
PURE_MODULES = sorted(
    [
        *ROOT.glob("billing_engine/*/rules.py"),
        *ROOT.glob("billing_engine/*/*/rules.py"),
        *(ROOT / "billing_core" / name for name in ("periods.py", "plans.py", "quota.py",
                                                     "errors.py")),
        ROOT / "billing_core" / "access" / "rules.py",
        *ROOT.glob("alerts/domain/*.py"),
    ]
)


def test_every_engine_concept_has_its_rules_under_this_test():
    concepts = {p.parent.name for p in PURE_MODULES if "billing_engine" in p.parts}
    assert {"usage", "throttling", "entitlements", "invoicing", "subscriptions"} <= concepts


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_import_nothing_that_does_io(path: Path):
    offenders = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        offenders += [name for name in names if name.split(".")[0] in FORBIDDEN]
    assert offenders == []


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_never_read_the_clock(path: Path):
    source = path.read_text()
    assert "datetime.now" not in source and "utcnow" not in source and "today()" not in source
