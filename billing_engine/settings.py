"""One settings object for the engine process, read from the environment at the entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./var/billing.db"
DEFAULT_PORT = 8006
# Values that must never guard a production deployment.
PLACEHOLDER_ADMIN_KEYS = frozenset({"", "changeme", "change-me", "dev-admin-key", "admin"})
DEV_ADMIN_KEY = "dev-admin-key"
DEFAULT_PLANS_FILE = Path(__file__).with_name("plans.yaml")


class SettingsError(ValueError):
    """The environment describes a configuration the engine refuses to run with."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    admin_api_key: str = field(default=DEV_ADMIN_KEY, repr=False)
    port: int = DEFAULT_PORT
    environment: str = "development"
    plans_file: Path = DEFAULT_PLANS_FILE
    heartbeat_clock_skew: timedelta = timedelta(seconds=120)
    period_close_grace: timedelta = timedelta(hours=1)
    housekeeping_interval_seconds: float = 15.0
    log_level: str = "INFO"
    db_pool_size: int = 10
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    entitlements_cache_ttl_seconds: int = 300
    # After a Redis failure, requests skip Redis for this long instead of each waiting on it.
    cache_retry_seconds: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = env.get("APP_ENV", "development").strip().lower()
        if environment not in {"development", "test", "production"}:
            raise SettingsError(
                f"APP_ENV must be development, test or production, got {environment!r}"
            )
        admin_key = env.get("ADMIN_API_KEY", DEV_ADMIN_KEY if environment != "production" else "")
        settings = cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("REDIS_URL") or None,
            admin_api_key=admin_key,
            port=_int(env, "PORT", DEFAULT_PORT),
            environment=environment,
            plans_file=Path(env.get("PLANS_FILE") or DEFAULT_PLANS_FILE),
            heartbeat_clock_skew=timedelta(seconds=_int(env, "HEARTBEAT_CLOCK_SKEW_SECONDS", 120)),
            period_close_grace=timedelta(seconds=_int(env, "PERIOD_CLOSE_GRACE_SECONDS", 3600)),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            db_pool_size=_int(env, "DB_POOL_SIZE", 10),
            stripe_secret_key=env.get("STRIPE_SECRET_KEY") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            entitlements_cache_ttl_seconds=_int(env, "ENTITLEMENTS_CACHE_TTL_SECONDS", 300),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.environment == "production" and self.admin_api_key in PLACEHOLDER_ADMIN_KEYS:
            raise SettingsError(
                "ADMIN_API_KEY is unset or a placeholder; set a long random value "
                "before running with APP_ENV=production"
            )
        if self.environment == "production" and len(self.admin_api_key) < 16:
            raise SettingsError("ADMIN_API_KEY must be at least 16 characters in production")
        if self.entitlements_cache_ttl_seconds < 1:
            raise SettingsError("ENTITLEMENTS_CACHE_TTL_SECONDS must be at least 1")
        if not 1 <= self.port <= 65535:
            raise SettingsError(f"PORT must be between 1 and 65535, got {self.port}")

    def secret_values(self) -> tuple[str, ...]:
        """Strings that must never appear in a log line."""
        secrets = [self.admin_api_key, self.stripe_secret_key, self.stripe_webhook_secret]
        password = _url_password(self.database_url)
        if self.redis_url:
            secrets.append(_url_password(self.redis_url))
        secrets.append(password)
        return tuple(s for s in secrets if s and len(s) >= 4)


def _url_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:
        return None
