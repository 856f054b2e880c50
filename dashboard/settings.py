"""The console's one settings object, read from the environment at the entry point.

The console holds no credential of its own: it signs people in with the organisation's OIDC
provider (Streamlit's `st.login`) and calls the engine and the alerts API with the signed-in
person's ID token, so each API decides what that person may do and its audit log names them.
Sign-in needs the provider (`OIDC_ISSUER_URL`), the console's client at it (`OIDC_CLIENT_ID`,
`OIDC_CLIENT_SECRET`), the console's own address (`CONSOLE_URL`, for the redirect back) and a
secret that signs the sign-in cookie (`CONSOLE_COOKIE_SECRET`). Without them the console serves
only a page saying what to set.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from billing_core.access.oidc import OidcConfig
from billing_core.settings import SettingsError, app_environment, env_int, env_url

DEFAULT_ENGINE_URL = "http://127.0.0.1:8006"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_ALERTS_URL = "http://127.0.0.1:8007"
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8501"
DEFAULT_METRICS_PORT = 8502
MIN_COOKIE_SECRET_LENGTH = 32


@dataclass(frozen=True)
class ConsoleSettings:
    engine_url: str = DEFAULT_ENGINE_URL
    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    alerts_url: str = DEFAULT_ALERTS_URL
    console_url: str = DEFAULT_CONSOLE_URL
    # The identity provider, the console's client id (the tokens' audience) and the role claim.
    oidc: OidcConfig | None = None
    client_secret: str = field(default="", repr=False)
    cookie_secret: str = field(default="", repr=False)
    # The console's own metrics endpoint (dashboard/server.py); 0 serves none.
    metrics_port: int = DEFAULT_METRICS_PORT

    @property
    def sign_in_configured(self) -> bool:
        return self.oidc is not None and bool(self.client_secret) and bool(self.cookie_secret)

    @property
    def redirect_uri(self) -> str:
        return f"{self.console_url}/oauth2callback"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConsoleSettings:
        env = os.environ if env is None else env
        return cls(
            engine_url=env_url(env, "ENGINE_URL", DEFAULT_ENGINE_URL),
            prometheus_url=env_url(env, "PROMETHEUS_URL", DEFAULT_PROMETHEUS_URL),
            alerts_url=env_url(env, "ALERTS_URL", DEFAULT_ALERTS_URL),
            console_url=env_url(env, "CONSOLE_URL", DEFAULT_CONSOLE_URL),
            oidc=OidcConfig.from_env(env),
            client_secret=(env.get("OIDC_CLIENT_SECRET") or "").strip(),
            cookie_secret=(env.get("CONSOLE_COOKIE_SECRET") or "").strip(),
            metrics_port=env_int(env, "CONSOLE_METRICS_PORT", DEFAULT_METRICS_PORT, minimum=0),
        )

    @classmethod
    def for_serving(cls, env: Mapping[str, str] | None = None) -> ConsoleSettings:
        """What `python -m dashboard` starts with: sign-in must be complete once it is asked
        for; in development a missing cookie secret is made up (sign-ins then last until the
        console restarts), in production it must be set and long."""
        env = os.environ if env is None else env
        settings = cls.from_env(env)
        if settings.oidc is None:
            if app_environment(env) == "production":
                raise SettingsError("OIDC_ISSUER_URL is required in production: the console "
                                    "signs people in with the organisation's OIDC provider")
            return settings
        if not settings.client_secret:
            raise SettingsError("OIDC_CLIENT_SECRET is required with OIDC_ISSUER_URL: the "
                                "console's client secret at the provider")
        cookie_secret = settings.cookie_secret
        if not cookie_secret:
            if app_environment(env) == "production":
                raise SettingsError("CONSOLE_COOKIE_SECRET is required in production: a long "
                                    "random value that signs the sign-in cookie")
            cookie_secret = secrets.token_urlsafe(MIN_COOKIE_SECRET_LENGTH)
        if len(cookie_secret) < MIN_COOKIE_SECRET_LENGTH:
            raise SettingsError(f"CONSOLE_COOKIE_SECRET must be at least "
                                f"{MIN_COOKIE_SECRET_LENGTH} characters")
        return cls(engine_url=settings.engine_url, prometheus_url=settings.prometheus_url,
                   alerts_url=settings.alerts_url, console_url=settings.console_url,
                   oidc=settings.oidc, client_secret=settings.client_secret,
                   cookie_secret=cookie_secret, metrics_port=settings.metrics_port)
