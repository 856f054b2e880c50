"""Console sign-in settings and who the signed-in person is (no Streamlit runtime, no servers)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing_core.access import Role
from billing_core.settings import SettingsError
from dashboard.__main__ import auth_secrets, streamlit_argv, write_secrets
from dashboard.settings import ConsoleSettings
from dashboard.signin import person_from_claims

ROOT = Path(__file__).resolve().parents[2]
SIGN_IN = {"OIDC_ISSUER_URL": "https://idp.example/realms/ops/",
           "OIDC_CLIENT_ID": "billing-console", "OIDC_CLIENT_SECRET": 'se"cr\\et ünï',
           "CONSOLE_URL": "https://console.example/", "CONSOLE_COOKIE_SECRET": "c" * 40}


def test_the_secrets_file_holds_what_st_login_needs_and_only_its_owner_reads_it():
    settings = ConsoleSettings.for_serving(SIGN_IN)
    path = write_secrets(settings)
    try:
        auth = tomllib.loads(path.read_text(encoding="utf-8"))["auth"]
        assert auth == {
            "redirect_uri": "https://console.example/oauth2callback",
            "cookie_secret": "c" * 40,
            "client_id": "billing-console",
            "client_secret": 'se"cr\\et ünï',  # quotes, backslashes and accents survive
            "server_metadata_url":
                "https://idp.example/realms/ops/.well-known/openid-configuration",
            "expose_tokens": ["id"],
        }
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        path.unlink()
        path.parent.rmdir()
    argv = streamlit_argv(host="0.0.0.0", port=8501, secrets_file=path)
    assert argv[argv.index("--secrets.files") + 1] == str(path)
    assert settings.client_secret not in " ".join(argv)  # secrets never on a command line


def test_a_secret_is_never_shown_in_the_settings_repr():
    settings = ConsoleSettings.for_serving(SIGN_IN)
    assert "se\"cr" not in repr(settings) and "c" * 40 not in repr(settings)
    assert "c" * 40 in auth_secrets(settings)


@pytest.mark.parametrize(("env", "named"), [
    ({**SIGN_IN, "OIDC_CLIENT_SECRET": ""}, "OIDC_CLIENT_SECRET"),
    ({**SIGN_IN, "CONSOLE_COOKIE_SECRET": "short"}, "CONSOLE_COOKIE_SECRET"),
    ({**SIGN_IN, "CONSOLE_COOKIE_SECRET": "", "APP_ENV": "production"}, "CONSOLE_COOKIE_SECRET"),
    ({"APP_ENV": "production"}, "OIDC_ISSUER_URL"),
    ({**SIGN_IN, "OIDC_CLIENT_ID": ""}, "OIDC_CLIENT_ID"),
    ({**SIGN_IN, "OIDC_ROLE_MAP": "ops:superuser"}, "OIDC_ROLE_MAP"),
])
def test_an_incomplete_sign_in_setup_refuses_to_serve_naming_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        ConsoleSettings.for_serving(env)


def test_in_development_a_missing_cookie_secret_is_made_up_for_the_run():
    first = ConsoleSettings.for_serving({**SIGN_IN, "CONSOLE_COOKIE_SECRET": ""})
    second = ConsoleSettings.for_serving({**SIGN_IN, "CONSOLE_COOKIE_SECRET": ""})
    assert len(first.cookie_secret) >= 32 and first.cookie_secret != second.cookie_secret
    assert first.sign_in_configured


def test_without_a_provider_nobody_can_sign_in():
    settings = ConsoleSettings.for_serving({})
    assert settings.oidc is None and not settings.sign_in_configured


def test_the_role_comes_from_the_groups_claim_through_the_same_map_as_the_apis():
    settings = ConsoleSettings.from_env(
        {**SIGN_IN, "OIDC_ROLE_CLAIM": "roles", "OIDC_ROLE_MAP": "ops-oncall:viewer,ops:operator"})
    exp = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    person = person_from_claims({"sub": "u1", "email": "ana@example.com", "name": "Ana",
                                 "roles": ["ops-oncall", "ops", "unknown"], "exp": exp},
                                "token", settings)
    assert (person.email, person.role) == ("ana@example.com", Role.operator)
    assert person.may(Role.support) and not person.may(Role.admin)
    assert not person.expired(datetime.now(UTC))
    assert person.expired(datetime.now(UTC) + timedelta(minutes=59, seconds=45))
    nobody = person_from_claims({"sub": "u2", "roles": "elsewhere"}, "token", settings)
    assert nobody.role is None and not nobody.may(Role.viewer) and nobody.email == "u2"


@pytest.mark.processes
def test_python_m_dashboard_refuses_to_start_in_production_without_sign_in():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "CONSOLE_"))}
    result = subprocess.run([sys.executable, "-m", "dashboard", "--port", "1"], cwd=ROOT,
                            env={**env, "APP_ENV": "production"}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "OIDC_ISSUER_URL is required in production" in result.stderr
