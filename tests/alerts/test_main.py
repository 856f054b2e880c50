"""`python -m alerts` with no sub-command does what its help says: migrates, then serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devstack.servers import ROOT, free_port, wait_for
from tests.alerts.core import ADMIN_KEY, alerts_head

pytestmark = pytest.mark.processes  # runs the command line as a subprocess


def test_python_m_alerts_alone_migrates_and_serves_like_serve(tmp_path: Path) -> None:
    database = tmp_path / "billing.db"
    port = free_port()
    log = tmp_path / "alerts.log"
    env = {**os.environ, "APP_ENV": "test", "ADMIN_API_KEY": ADMIN_KEY, "PORT": str(port),
           "DATABASE_URL": f"sqlite:///{database}", "PYTHONUNBUFFERED": "1",
           # Nothing listens there: rule rounds fail, which must not keep the API from serving.
           "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "alerts"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"python -m alerts exited: {log.read_text()[-3000:]}")
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200

    try:
        wait_for(answering, timeout=60, what=f"python -m alerts on {url}")
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        ready = httpx.get(f"{url}/ready", timeout=5)
        assert ready.status_code == 200 and ready.json()["database"] == "ok"
        # It migrated first, as `serve` does: the alerts tables answer through the API.
        assert httpx.get(f"{url}/v1/silences", timeout=5, headers={"X-Admin-Key": ADMIN_KEY}
                         ).json() == {"state": "active",
                                                                      "silences": []}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    schema = subprocess.run([sys.executable, "-m", "alerts", "schema-version"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert f'"database": "{alerts_head()}"' in schema.stdout, schema.stdout + schema.stderr
