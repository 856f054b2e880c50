from __future__ import annotations

import io
import json
import logging

import pytest

from billing_core.logs import JsonFormatter, request_id_var
from billing_core.settings import SettingsError
from billing_engine.settings import Settings


def test_production_refuses_a_placeholder_admin_key():
    with pytest.raises(SettingsError, match="ADMIN_API_KEY"):
        Settings.from_env({"APP_ENV": "production", "ADMIN_API_KEY": "changeme"})
    with pytest.raises(SettingsError, match="ADMIN_API_KEY"):
        Settings.from_env({"APP_ENV": "production"})
    ok = Settings.from_env({"APP_ENV": "production", "ADMIN_API_KEY": "x" * 32})
    assert ok.environment == "production"


def test_development_defaults_run_embedded():
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.port == 8006 and settings.redis_url is None


def test_bad_numbers_name_the_variable():
    with pytest.raises(SettingsError, match="PORT"):
        Settings.from_env({"PORT": "eighty"})


def test_secrets_never_reach_a_log_line():
    settings = Settings.from_env({
        "ADMIN_API_KEY": "super-secret-admin-key",
        "DATABASE_URL": "postgresql://billing:db-pass-123@db/billing",
        "STRIPE_SECRET_KEY": "sk_test_abcdef123456",
    })
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(settings.secret_values()))
    logger = logging.getLogger("test.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("req-1")
    try:
        logger.warning("oops %s", settings.database_url, extra={"key": "sk_test_abcdef123456"})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = stream.getvalue()
    entry = json.loads(line)
    assert "db-pass-123" not in line and "sk_test_abcdef123456" not in line
    assert entry["request_id"] == "req-1" and "[redacted]" in entry["message"]
    assert "sk_test" not in repr(settings) and "super-secret" not in repr(settings)
    assert "db-pass" not in repr(settings)
