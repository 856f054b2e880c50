"""The local mail sink of `make run`: what the alerts process sends lands as .eml files."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from alerts.delivery.email import EmailChannel, SmtpConfig
from alerts.delivery.mailsink import MailSink, read_mailbox
from devstack.servers import free_port, wait_for
from tests.alerts.messages import ROOT, budget_message, rule_message


def test_each_message_becomes_one_eml_file_with_its_envelope(tmp_path: Path) -> None:
    port = free_port()
    with MailSink(tmp_path / "mail", port=port):
        channel = EmailChannel(SmtpConfig(host="127.0.0.1", port=port))
        assert channel.send(rule_message()).ok
        assert channel.send(budget_message(50)).ok
        wait_for(lambda: len(list((tmp_path / "mail").glob("*.eml"))) == 2, timeout=5)

    newest, oldest = read_mailbox(tmp_path / "mail")
    assert oldest.subject.startswith("[P1] FIRING BillingAvailabilityFastBurn: ")
    assert oldest.envelope_to == ("oncall@example.com",)
    assert "Runbook:" in oldest.body("plain")
    assert "<html" in oldest.body("html")
    assert newest.subject == "You have used 50 % of your included hours for November 2026"
    assert newest.envelope_to == ("billing@acme.example",)
    assert newest.sender == "alerts@billing.local"
    assert not list((tmp_path / "mail").glob(".*.tmp"))  # no half-written file left behind


def test_blind_copies_are_visible_in_the_envelope(tmp_path: Path) -> None:
    port = free_port()
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@example.com", "b@example.com", "hello"
    mail.set_content("body")
    with MailSink(tmp_path, port=port), smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.send_message(mail, to_addrs=["b@example.com", "hidden@example.com"])

    [stored] = read_mailbox(tmp_path)
    assert stored.envelope_to == ("b@example.com", "hidden@example.com")
    assert stored.body() == "body\n"


@pytest.mark.processes
def test_python_m_alerts_mailsink_runs_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "var" / "mail"
    process = subprocess.Popen(
        [sys.executable, "-m", "alerts.mailsink", "--dir", str(folder), "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        config = SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=2)
        wait_for(lambda: EmailChannel(config).send(rule_message()).ok, timeout=15, what="mail sink")
        wait_for(lambda: list(folder.glob("*.eml")), timeout=5, what="a .eml file")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)

    assert process.returncode == 0, output
    assert f"listening on 127.0.0.1:{port}" in output
    [stored] = read_mailbox(folder)
    assert stored.subject.startswith("[P1] FIRING ")


@pytest.mark.processes
def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    with MailSink(tmp_path, port=port):
        result = subprocess.run(
            [sys.executable, "-m", "alerts.mailsink", "--dir", str(tmp_path), "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
