"""Fixtures for the alerts process tests: real SMTP and Slack receivers (tests/support/receivers).

- smtp_server: a plain aiosmtpd server accepting everything (no TLS, no AUTH).
- smtp_server_with_login: the same, but MAIL is refused until the client logs in as
  SMTP_LOGIN (clear text: tests only).
- smtp_server_starttls: requires STARTTLS, then login as SMTP_LOGIN; trust it with
  `tls_files.client_context()`.
- tls_files: a self-signed certificate for 127.0.0.1 (once per session, needs openssl).
- slack_receiver: a Slack webhook stand-in answering 200 "ok"; script answers with
  `slack_receiver.script(Reply(429, retry_after="1"), Reply(500))`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.receivers import SlackReceiver, SmtpServer, TlsFiles, make_tls_files

SMTP_LOGIN = ("alerts", "smtp-test-password-7d1f")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp_server_with_login() -> Iterator[SmtpServer]:
    with SmtpServer(credentials=dict([SMTP_LOGIN])) as server:
        yield server


@pytest.fixture
def smtp_server_starttls(tls_files: TlsFiles) -> Iterator[SmtpServer]:
    with SmtpServer(credentials=dict([SMTP_LOGIN]), tls=tls_files, require_starttls=True) as server:
        yield server


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver
