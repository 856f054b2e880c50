"""One settings object for the engine process, read from the environment at the entry point."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from billing_core.access.oidc import OidcConfig
from billing_core.catalogue import DEFAULT_PLANS_FILE
from billing_core.settings import (
    DEV_ADMIN_KEY,
    SettingsError,
    admin_keys,
    app_environment,
    check_admin_api_keys,
    check_admin_key,
    check_port,
    default_admin_key,
    env_float,
    env_int,
    parse_admin_api_keys,
    secrets_to_scrub,
    url_password,
)

__all__ = [
    "DEFAULT_PLANS_FILE",
    "Settings",
    "SettingsError",
    "parse_admin_api_keys",
    "parse_trusted_proxies",
]

DEFAULT_DATABASE_URL = "sqlite:///./var/billing.db"
DEFAULT_PORT = 8006
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


def parse_trusted_proxies(raw: str) -> tuple[str, ...]:
    """'10.0.0.1, 10.1.0.0/16' -> ('10.0.0.1/32', '10.1.0.0/16'): addresses or networks whose
    `X-Forwarded-For` is believed."""
    found: list[str] = []
    for index, item in enumerate(p.strip() for p in raw.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES entry {index + 1} ({item[:64]!r}) is not an IP address or "
                "network"
            ) from None
    return tuple(found)


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    admin_api_key: str = field(default=DEV_ADMIN_KEY, repr=False)
    # Named admin keys (ADMIN_API_KEYS="alice:key1,bob:key2"): the audit log records the name.
    admin_api_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    oidc: OidcConfig | None = None  # staff sign-in tokens (billing_core.access.oidc)
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
    # The signing secret of the v2 event destination sending thin events (meter error reports).
    stripe_thin_webhook_secret: str | None = field(default=None, repr=False)
    entitlements_cache_ttl_seconds: int = 300
    # After a Redis failure, requests skip Redis for this long instead of each waiting on it.
    cache_retry_seconds: float = 2.0
    # Usage reporting to Stripe (billing meter events) and the client around the Stripe API.
    stripe_api_base: str | None = None
    stripe_meter_event_name: str = "instance_minutes"
    stripe_timeout_seconds: float = 10.0
    stripe_breaker_failures: int = 5
    stripe_breaker_cooldown_seconds: float = 30.0
    meter_flush_interval_seconds: float = 60.0
    meter_flush_batch_size: int = 5000
    # Requests to Stripe in flight at once, and the smallest chunk sent by the v2 stream.
    meter_concurrency: int = 8
    meter_stream_min_records: int = 20
    # An hour is reported once it ended this long ago (late heartbeats become corrections).
    meter_close_delay: timedelta = timedelta(seconds=300)
    # Payment attempts and refunds older than this are deleted by the hourly retention job.
    payment_retention_days: int = 90
    # The last closed period is reconciled with Stripe once per this many seconds (slots
    # aligned to the epoch: daily runs just after 00:00 UTC); 0 turns the scheduled run off.
    reconciliation_interval_seconds: int = 86400
    # Raw usage (instance-hours) of a month is kept this many complete months, then archived to
    # USAGE_ARCHIVE_DIR and dropped once the month is invoiced; rollups and invoices stay.
    usage_retention_months: int = 13
    usage_archive_dir: Path = Path("var/usage-archive")
    # Abuse limits (docs/security.md#limits). A body larger than this is refused with 413.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Failed authentications allowed per window from one client address and with one key
    # prefix; past them every attempt is refused with 429 until the window ends. 0: no limit.
    auth_failure_limit_per_address: int = 20
    auth_failure_limit_per_key_prefix: int = 10
    auth_failure_window_seconds: int = 60
    # Proxies (addresses or networks) whose X-Forwarded-For names the client; none by default.
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = app_environment(env)
        admin_key = default_admin_key(env, environment)
        settings = cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("REDIS_URL") or None,
            admin_api_key=admin_key,
            admin_api_keys=parse_admin_api_keys(env.get("ADMIN_API_KEYS") or ""),
            oidc=OidcConfig.from_env(env),
            port=env_int(env, "PORT", DEFAULT_PORT),
            environment=environment,
            plans_file=Path(env.get("PLANS_FILE") or DEFAULT_PLANS_FILE),
            heartbeat_clock_skew=timedelta(
                seconds=env_int(env, "HEARTBEAT_CLOCK_SKEW_SECONDS", 120)
            ),
            period_close_grace=timedelta(seconds=env_int(env, "PERIOD_CLOSE_GRACE_SECONDS", 3600)),
            housekeeping_interval_seconds=env_float(env, "HOUSEKEEPING_INTERVAL_SECONDS", 15.0),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            db_pool_size=env_int(env, "DB_POOL_SIZE", 10),
            stripe_secret_key=env.get("STRIPE_SECRET_KEY") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            stripe_thin_webhook_secret=env.get("STRIPE_THIN_WEBHOOK_SECRET") or None,
            entitlements_cache_ttl_seconds=env_int(env, "ENTITLEMENTS_CACHE_TTL_SECONDS", 300),
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            stripe_meter_event_name=env.get("STRIPE_METER_EVENT_NAME") or "instance_minutes",
            stripe_timeout_seconds=env_int(env, "STRIPE_TIMEOUT_SECONDS", 10),
            stripe_breaker_failures=env_int(env, "STRIPE_BREAKER_FAILURES", 5),
            stripe_breaker_cooldown_seconds=env_int(env, "STRIPE_BREAKER_COOLDOWN_SECONDS", 30),
            meter_flush_interval_seconds=env_int(env, "METER_FLUSH_INTERVAL_SECONDS", 60),
            meter_flush_batch_size=env_int(env, "METER_FLUSH_BATCH_SIZE", 5000),
            meter_concurrency=env_int(env, "METER_CONCURRENCY", 8),
            meter_stream_min_records=env_int(env, "METER_STREAM_MIN_RECORDS", 20),
            meter_close_delay=timedelta(seconds=env_int(env, "METER_CLOSE_DELAY_SECONDS", 300)),
            payment_retention_days=env_int(env, "PAYMENT_RETENTION_DAYS", 90),
            reconciliation_interval_seconds=env_int(
                env, "RECONCILIATION_INTERVAL_SECONDS", 86400
            ),
            usage_retention_months=env_int(env, "USAGE_RETENTION_MONTHS", 13),
            usage_archive_dir=Path(env.get("USAGE_ARCHIVE_DIR") or "var/usage-archive"),
            max_body_bytes=env_int(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            auth_failure_limit_per_address=env_int(env, "AUTH_FAILURE_LIMIT_PER_ADDRESS", 20),
            auth_failure_limit_per_key_prefix=env_int(
                env, "AUTH_FAILURE_LIMIT_PER_KEY_PREFIX", 10
            ),
            auth_failure_window_seconds=env_int(env, "AUTH_FAILURE_WINDOW_SECONDS", 60),
            trusted_proxies=parse_trusted_proxies(env.get("TRUSTED_PROXIES") or ""),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        check_admin_key(self.admin_api_key, environment=self.environment)
        check_admin_api_keys(self.admin_api_keys, admin_api_key=self.admin_api_key,
                             environment=self.environment)
        if self.entitlements_cache_ttl_seconds < 1:
            raise SettingsError("ENTITLEMENTS_CACHE_TTL_SECONDS must be at least 1")
        if self.payment_retention_days < 1:
            raise SettingsError("PAYMENT_RETENTION_DAYS must be at least 1")
        if not 0.05 <= self.housekeeping_interval_seconds <= 3600:
            raise SettingsError("HOUSEKEEPING_INTERVAL_SECONDS must be between 0.05 and 3600")
        if self.reconciliation_interval_seconds != 0 and not (
            300 <= self.reconciliation_interval_seconds <= 7 * 86400
        ):
            raise SettingsError(
                "RECONCILIATION_INTERVAL_SECONDS must be 0 (off) or between 300 and 604800"
            )
        if self.usage_retention_months < 1:
            raise SettingsError("USAGE_RETENTION_MONTHS must be at least 1")
        check_port("PORT", self.port)
        if self.meter_flush_interval_seconds < 1:
            raise SettingsError("METER_FLUSH_INTERVAL_SECONDS must be at least 1")
        if not 1 <= self.meter_flush_batch_size <= 10000:
            raise SettingsError("METER_FLUSH_BATCH_SIZE must be between 1 and 10000")
        if not 1 <= self.meter_concurrency <= 64:
            raise SettingsError("METER_CONCURRENCY must be between 1 and 64")
        if self.meter_stream_min_records < 1:
            raise SettingsError("METER_STREAM_MIN_RECORDS must be at least 1")
        if self.stripe_breaker_failures < 1:
            raise SettingsError("STRIPE_BREAKER_FAILURES must be at least 1")
        if self.meter_close_delay < timedelta(0):
            raise SettingsError("METER_CLOSE_DELAY_SECONDS must not be negative")
        if self.max_body_bytes < 1024:
            raise SettingsError("MAX_BODY_BYTES must be at least 1024")
        if self.auth_failure_limit_per_address < 0:
            raise SettingsError("AUTH_FAILURE_LIMIT_PER_ADDRESS must not be negative")
        if self.auth_failure_limit_per_key_prefix < 0:
            raise SettingsError("AUTH_FAILURE_LIMIT_PER_KEY_PREFIX must not be negative")
        if not 1 <= self.auth_failure_window_seconds <= 86400:
            raise SettingsError("AUTH_FAILURE_WINDOW_SECONDS must be between 1 and 86400")

    def admin_keys(self) -> tuple[tuple[str, str], ...]:
        """(name, key) of every valid admin key; ADMIN_API_KEY is named "admin"."""
        return admin_keys(self.admin_api_key, self.admin_api_keys)

    def secret_values(self) -> tuple[str, ...]:
        """Strings that must never appear in a log line."""
        return secrets_to_scrub(
            [
                self.admin_api_key,
                self.stripe_secret_key,
                self.stripe_webhook_secret,
                self.stripe_thin_webhook_secret,
                *(key for _name, key in self.admin_api_keys),
                url_password(self.database_url),
                url_password(self.redis_url),
            ]
        )
