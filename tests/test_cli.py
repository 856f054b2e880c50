"""The engine's command line, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes  # runs the command line as a subprocess

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "billing_engine", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_migrate_reports_and_moves_the_schema_both_ways(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "APP_ENV": "test"}
    assert "database: empty" in cli("schema-version", env=env).stdout
    assert cli("migrate", env=env).returncode == 0
    versions = ROOT / "billing_engine/migrations/versions"
    head = sorted(p.name[:4] for p in versions.glob("0*.py"))[-1]
    assert f"database: {head}\ncode:     {head}" in cli("schema-version", env=env).stdout
    assert cli("migrate", "--to", "0001", env=env).returncode == 0
    assert "database: 0001" in cli("schema-version", env=env).stdout
    assert cli("migrate", "--to", "-1", env=env).returncode == 0
    assert "database: empty" in cli("schema-version", env=env).stdout


def test_production_with_a_placeholder_key_refuses_to_start(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
           "APP_ENV": "production", "ADMIN_API_KEY": "changeme"}
    result = cli("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert "ADMIN_API_KEY" in result.stderr and "changeme" not in result.stderr
