"""The suite's own parallel layout: `make test` runs `--dist loadgroup`, and modules that start
one stack for all their tests carry `xdist_group` so that one worker runs them all and the stack
starts once. A pytest and pytest-xdist pair that loses the grouping (pytest 9.2 with
pytest-xdist 3.8 did) spreads those tests over the workers, each starting the stack again: the
suite still passes, only slower. This runs a small suite the same way and checks it is grouped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

SAMPLE = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("one_stack")

@pytest.mark.parametrize("n", range(12))
def test_grouped(n):
    out = os.environ["GROUPING_OUT"]
    with open(os.path.join(out, f"grouped-{n}"), "w") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"])
'''

UNGROUPED = '''
def test_free():
    pass
'''


def test_grouped_tests_run_on_one_worker_under_make_tests_options(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_grouped.py").write_text(SAMPLE)
    for n in range(6):  # ungrouped modules, so the scheduler has other work to spread
        (suite / f"test_free_{n}.py").write_text(UNGROUPED)
    ran = tmp_path / "ran"
    ran.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
         "-p", "no:cacheprovider", str(suite)],
        cwd=suite, env={**os.environ, "GROUPING_OUT": str(ran)}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    workers = {path.read_text() for path in ran.glob("grouped-*")}
    assert len(list(ran.glob("grouped-*"))) == 12
    assert len(workers) == 1, f"one group's tests ran on {sorted(workers)}"
