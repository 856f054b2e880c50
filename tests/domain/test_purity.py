"""The domain core stays pure: no database, cache, HTTP or UI imports."""

from __future__ import annotations

import ast
from pathlib import Path

import billing_engine.domain

FORBIDDEN = ("sqlalchemy", "redis", "httpx", "streamlit", "fastapi", "psycopg", "requests",
             "stripe", "os", "time")


def test_domain_modules_import_nothing_that_does_io():
    offenders = []
    for path in Path(billing_engine.domain.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_domain_never_reads_the_clock():
    for path in Path(billing_engine.domain.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert "datetime.now" not in source and "utcnow" not in source, path.name
