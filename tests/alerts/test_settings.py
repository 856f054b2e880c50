"""The alerts settings, and the purity of the alerts domain core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import alerts
from alerts.settings import Settings, SettingsError

FORBIDDEN = ("sqlalchemy", "redis", "httpx", "streamlit", "fastapi", "psycopg", "requests",
             "prometheus_api_client", "apscheduler", "smtplib", "os", "time")


def test_defaults_run_embedded_on_port_8007_every_5_seconds():
    settings = Settings.from_env({})
    assert settings.port == 8007 and settings.evaluation_interval_seconds == 5
    assert settings.database_url.startswith("sqlite:///") and not settings.slack_enabled
    assert settings.rule_files.endswith("prometheus/rules/*.yml")


def test_production_refuses_a_placeholder_admin_key():
    with pytest.raises(SettingsError, match="ADMIN_API_KEY"):
        Settings.from_env({"APP_ENV": "production", "ADMIN_API_KEY": "dev-admin-key"})
    assert Settings.from_env({"APP_ENV": "production",
                              "ADMIN_API_KEY": "k" * 32}).environment == "production"


@pytest.mark.parametrize("env, name", [
    ({"PORT": "eighty"}, "PORT"),
    ({"EVALUATION_INTERVAL_SECONDS": "0"}, "EVALUATION_INTERVAL_SECONDS"),
    ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS"),
    ({"SMTP_USERNAME": "alerts"}, "SMTP_USERNAME"),
    ({"LEADER_RETRY_SECONDS": "60"}, "LEADER_RETRY_SECONDS"),
])
def test_a_bad_value_names_its_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_secrets_stay_out_of_the_repr_and_are_listed_for_scrubbing():
    settings = Settings.from_env({
        "ADMIN_API_KEY": "admin-key-secret-1", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "pw-secret",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/tok",
        "DATABASE_URL": "postgresql://alerts:db-secret@db/billing"})
    text = repr(settings)
    for secret in ("admin-key-secret-1", "pw-secret", "hooks.slack.com", "db-secret"):
        assert secret not in text
        assert any(secret in s for s in settings.secret_values())


ALERTS = Path(alerts.__file__).parent
PURE_MODULES = [
    *ALERTS.glob("*/rules.py"),
    *(ALERTS / "rules" / f"{name}.py"
      for name in ("model", "gofmt", "templating", "state", "notify", "messages")),
    ALERTS / "budget" / "messages.py",
    *(ALERTS / "delivery" / f"{name}.py" for name in ("message", "routing", "links", "wording")),
]


def test_the_alerts_domain_imports_nothing_that_does_io_or_reads_the_clock():
    assert all(path.exists() for path in PURE_MODULES)
    offenders = []
    for path in PURE_MODULES:
        source = path.read_text()
        if "datetime.now" in source or "utcnow" in source:
            offenders.append(f"{path.name}: reads the clock")
        for node in ast.walk(ast.parse(source)):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
