"""No secret reaches a log file or an audit log, over a full run of the stack.

The whole stack as `make run` starts it (OIDC provider, engine, mail sink, Prometheus, alerts
process, console) on PostgreSQL, every process logging at DEBUG into files. Then what people and
fleets do, with every kind of credential, right and wrong: keys created, used, revoked and used
again, unknown keys, sign-in tokens on both APIs (and a forged one), a person signing in to the
console in Chromium and granting a credit from it. Afterwards every log file and both audit logs
are searched for each secret the run handled, and for anything shaped like a key or a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from devstack.servers import create_scratch_database, drop_database
from devstack.stack import Stack
from tests.support.browser import chromium, sign_in, wait_until_run_finished

pytestmark = pytest.mark.processes

ADMIN_KEY = "full-run-admin-key-0123456789abcdef"
ADMIN = {"X-Admin-Key": ADMIN_KEY}
ORG = "org_secrets_check"
# A full key or token: a prefix and more than the few characters a key listing shows, or a JWT.
KEY_SHAPED = re.compile(r"bks?_live_[A-Za-z0-9_-]{12,}")
JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def run(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database_url = create_scratch_database(pg_server_url)
    logs = tmp_path_factory.mktemp("full-run-logs")
    debug = {"LOG_LEVEL": "DEBUG"}
    stack = Stack(database_url, admin_key=ADMIN_KEY, log_dir=logs, engine_env=debug,
                  alerts_env={**debug, "EVALUATION_INTERVAL_SECONDS": "1"},
                  console_env={"STREAMLIT_LOGGER_LEVEL": "debug"})
    try:
        with stack:
            yield stack
    finally:
        drop_database(database_url)


def exercise(stack: Stack) -> list[str]:
    """Everything the run does; returns every secret it handled."""
    engine, alerts = stack.url("engine"), stack.url("alerts")
    assert stack.oidc is not None and stack.console is not None
    secrets = [ADMIN_KEY, *stack.console.sign_in_env.values()]
    secrets.remove(stack.console.sign_in_env["OIDC_ISSUER_URL"])
    secrets.remove(stack.console.sign_in_env["OIDC_CLIENT_ID"])

    made = httpx.put(f"{engine}/admin/orgs/{ORG}", headers=ADMIN, timeout=30,
                     json={"name": "Secrets Check Co", "email": "ops@secrets.example",
                           "plan": "base_usage"})
    assert made.status_code in (200, 201), made.text
    keys = {}
    for name in ("fleet", "old fleet"):
        answer = httpx.post(f"{engine}/admin/orgs/{ORG}/keys", headers=ADMIN, timeout=30,
                            json={"name": name, "scopes": ["usage:write", "billing:read"]})
        assert answer.status_code == 201, answer.text
        keys[name] = answer.json()
    staff = httpx.post(f"{engine}/admin/staff-keys", headers=ADMIN, timeout=30,
                       json={"name": "secrets-check", "role": "operator"}).json()
    secrets += [keys["fleet"]["key"], keys["old fleet"]["key"], staff["key"]]

    beats = [{"instance_id": "vm-1", "org_id": ORG, "ts": "2026-01-01T00:00:00Z",
              "state": "running"}]
    fleet = bearer(keys["fleet"]["key"])
    assert httpx.post(f"{engine}/v1/heartbeats", headers=fleet,
                      json={"heartbeats": beats}).status_code == 200
    assert httpx.get(f"{engine}/v1/billing", headers=fleet,
                     params={"org_id": ORG}).status_code == 200
    old = bearer(keys["old fleet"]["key"])
    revoked = httpx.delete(f"{engine}/admin/orgs/{ORG}/keys/{keys['old fleet']['id']}",
                           headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    assert httpx.get(f"{engine}/v1/billing", headers=old,
                     params={"org_id": ORG}).status_code == 401
    # Wrong keys of both kinds, and a wrong legacy admin key.
    wrong = ["bk_live_" + "W" * 43, "bks_live_" + "X" * 43, "not-the-admin-key-987654321"]
    secrets += wrong
    for key in wrong[:2]:
        assert httpx.get(f"{engine}/v1/customers", headers=bearer(key)).status_code == 401
    assert httpx.get(f"{engine}/admin/audit", headers={"X-Admin-Key": wrong[2]}
                     ).status_code == 401

    # Sign-in tokens on both APIs, and a forged one (a real token with its signature changed).
    token = stack.oidc.id_token("operator@example.com", client_id="billing-console")
    forged = token[:-8] + ("AAAAAAAA" if not token.endswith("AAAAAAAA") else "BBBBBBBB")
    secrets += [token, forged]
    assert httpx.get(f"{engine}/v1/customers", headers=bearer(token)).status_code == 200
    assert httpx.get(f"{alerts}/v1/alerts", headers=bearer(token)).status_code == 200
    assert httpx.get(f"{engine}/v1/customers", headers=bearer(forged)).status_code == 401
    operator = bearer(staff["key"])
    silence = httpx.post(f"{alerts}/v1/silences", headers=operator, timeout=30,
                         json={"matchers": ["alertname=NothingReal"], "duration": "30m",
                               "comment": "secrets check"})
    assert silence.status_code == 201, silence.text

    # A person signs in to the console and grants a credit from the customer card.
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, console_url=stack.console.url, issuer=stack.oidc.issuer,
                person="admin@example.com")
        page.goto(f"{stack.console.url}/customers")
        wait_until_run_finished(page)
        search = page.get_by_label("Search by org id, name or billing email")
        search.fill(ORG)
        search.press("Enter")
        expect(page.get_by_role("button", name="Grant credit")).to_be_visible()
        page.get_by_label("Amount (USD)").fill("1.50")
        page.get_by_label("Reason (e.g. the ticket number and why)").fill("secrets check")
        page.get_by_role("button", name="Grant credit").click()
        expect(page.get_by_text("granted by admin@example.com")).to_be_visible()
        page.close()
    return secrets


def audit_rows(database_url: str) -> list[str]:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            rows = [str(tuple(r)) for r in conn.execute(text("SELECT * FROM audit_log"))]
            rows += [str(tuple(r)) for r in conn.execute(text("SELECT * FROM alert_audit"))]
    finally:
        engine.dispose()
    return rows


def test_no_secret_reaches_a_log_file_or_an_audit_log_over_a_full_run(run: Stack):
    secrets = exercise(run)
    database_url = run.database_url
    logs = sorted(Path(p.log_path) for p in run.started if p.log_path is not None)
    run.stop()  # every process has written and closed its log
    texts = {path.name: path.read_text(errors="replace") for path in logs}
    audit = audit_rows(database_url)

    # The run did what it says: the logs and audit logs hold its traces, not nothing.
    assert {"engine.log", "alerts.log", "console.log", "oidc.log"} <= set(texts)
    assert "sign-in token refused" in texts["engine.log"]  # the forged token, without it
    assert any("admin@example.com" in row and "/admin/credits" in row for row in audit)
    assert any("secrets-check" in row and "silence.add" in row for row in audit)

    found = [(name, secret[:12]) for name, body in texts.items() for secret in secrets
             if len(secret) >= 16 and secret in body]
    found += [("audit", secret[:12]) for row in audit for secret in secrets
              if len(secret) >= 16 and secret in row]
    assert found == []
    # The shapes would catch this run's keys and tokens, were they written anywhere.
    assert all(KEY_SHAPED.fullmatch(k) for k in secrets if k.startswith(("bk_", "bks_")))
    assert all(JWT_SHAPED.fullmatch(t) for t in secrets if t.startswith("eyJ"))
    shaped = [(name, m.group()[:16]) for name, body in texts.items()
              for m in (*KEY_SHAPED.finditer(body), *JWT_SHAPED.finditer(body))]
    shaped += [("audit", m.group()[:16]) for row in audit
               for m in (*KEY_SHAPED.finditer(row), *JWT_SHAPED.finditer(row))]
    assert shaped == []
