"""`python -m alerts ...` as an operator runs it: migrate, silences, ack, delivery tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.receivers import SmtpServer
from devstack.servers import ROOT
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY, alerts_head

pytestmark = pytest.mark.processes  # runs the command line as a subprocess


def cli(*args: str, env: dict[str, str]) -> tuple[int, Any, str]:


    result = subprocess.run(
        [sys.executable, "-m", "alerts", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "APP_ENV": "test", "ADMIN_API_KEY": ADMIN_KEY, **env}, timeout=60)
    try:
        body = json.loads(result.stdout) if result.stdout.strip() else None
    except ValueError:
        body = result.stdout
    return result.returncode, body, result.stderr


def test_migrate_then_silence_add_list_and_expire(tmp_path: Path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}"}
    code, body, _ = cli("migrate", env=env)
    assert code == 0 and body == {"alerts_schema": alerts_head()}
    code, silence, err = cli("silence", "add", "alertname=BillingHighLatencyP95",
                             'severity=~"P2|P3"', "--for", "2h", "--comment",
                             "load test until 16:00", "--by", "alice", env=env)
    assert code == 0, err
    assert silence["state"] == "active" and silence["created_by"] == "admin"
    assert silence["matchers"] == [
        {"name": "alertname", "op": "=", "value": "BillingHighLatencyP95"},
        {"name": "severity", "op": "=~", "value": "P2|P3"}]
    code, listed, _ = cli("silence", "list", env=env)
    assert [s["id"] for s in listed["silences"]] == [silence["id"]]
    code, expired, _ = cli("silence", "expire", silence["id"], env=env)
    assert code == 0 and expired["state"] == "expired"
    code, listed, _ = cli("silence", "list", env=env)
    assert listed["silences"] == []


def test_a_bad_silence_or_an_unknown_alert_exits_non_zero_and_says_why(tmp_path: Path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}"}
    cli("migrate", env=env)
    code, body, _ = cli("silence", "add", "alertname=X", "--for", "1h", "--comment", " ",
                        "--by", "bob", env=env)
    assert code == 1 and body["errors"][0]["field"] == "comment"
    code, body, _ = cli("ack", "0123456789abcdef", env=env)
    assert code == 1 and body["error"] == "not_found"


def test_test_email_reaches_the_smtp_server(tmp_path: Path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}"}
    cli("migrate", env=env)
    with SmtpServer() as smtp:
        code, body, err = cli("test-email", "--to", "support@example.com",
                              env={**env, **smtp.environ()})
        assert code == 0, err
        assert body["ok"] is True
        [mail] = smtp.wait_for_messages(1)
        assert mail.rcpt_tos == ("support@example.com",)


def test_a_configuration_error_names_the_variable(tmp_path: Path):
    code, _, err = cli("silence", "list", env={"EVALUATION_INTERVAL_SECONDS": "often"})
    assert code == 2 and "EVALUATION_INTERVAL_SECONDS" in err


def test_an_incident_is_declared_updated_resolved_and_its_postmortem_printed(tmp_path: Path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}",
           # A person's own key: the audit log and the incident name them, not "admin".
           "ADMIN_API_KEYS": "ana:ana-key-0123456789abcdef", "STAFF_API_KEY":
               "ana-key-0123456789abcdef"}
    cli("migrate", env=env)
    code, declared, err = cli("incident", "declare", "--severity", "P1", "--title",
                              "Card payments failing", "--impact", "a third declined",
                              "--commander", "ana", env=env)
    assert code == 0, err
    assert (declared["key"], declared["declared_by"]) == ("INC-1", "ana")
    code, updated, _ = cli("incident", "update", "1", "Rolled back", "--status", "monitoring",
                           env=env)
    assert code == 0 and updated["status"] == "monitoring"
    code, listed, _ = cli("incident", "list", "--open", env=env)
    assert [i["key"] for i in listed["incidents"]] == ["INC-1"]
    code, resolved, _ = cli("incident", "resolve", "1", "Payments succeed again", env=env)
    assert code == 0 and resolved["resolved_by"] == "ana"
    printed = subprocess.run(
        [sys.executable, "-m", "alerts", "incident", "postmortem", "1"], cwd=ROOT,
        env={**os.environ, "APP_ENV": "test", "ADMIN_API_KEY": ADMIN_KEY, **env},
        capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0
    assert printed.stdout.startswith("# Post-mortem: INC-1 Card payments failing")
    code, body, _ = cli("incident", "resolve", "1", "again", env=env)
    assert code == 1 and body["errors"][0]["field"] == "incident_id"
