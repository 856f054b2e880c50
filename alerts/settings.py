"""One settings object for the alerts process, read from the environment at the entry point.

Nothing else in the package reads the environment: the entry point builds `Settings` and passes
it (or the values it holds) down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from alerts.delivery.email import (
    DEFAULT_SMTP_FROM,
    DEFAULT_SMTP_HOST,
    DEFAULT_SMTP_PORT,
    SmtpConfig,
)
from alerts.delivery.links import (
    DEFAULT_CONSOLE_URL,
    DEFAULT_GRAFANA_URL,
    DEFAULT_RUNBOOK_BASE_URL,
    LinkSettings,
)
from alerts.delivery.routes_file import DEFAULT_ROUTES_FILE, routes_file_from_env
from alerts.oncall.policy_file import DEFAULT_ONCALL_FILE, oncall_file_from_env
from billing_core.access.oidc import OidcConfig
from billing_core.catalogue import DEFAULT_PLANS_FILE
from billing_core.resources import parse_volumes
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
    env_url,
    parse_admin_api_keys,
    secrets_to_scrub,
    url_password,
)
from billing_core.sql import through_pgbouncer

__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_PORT", "Settings", "SettingsError"]

DEFAULT_DATABASE_URL = "sqlite:///./var/billing.db"
DEFAULT_PORT = 8007
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULE_FILES = str(REPOSITORY_ROOT / "prometheus" / "rules" / "*.yml")


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    admin_api_key: str = field(default=DEV_ADMIN_KEY, repr=False)
    # Named admin keys, read as the engine reads them (ADMIN_API_KEYS="alice:key1,bob:key2").
    admin_api_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    oidc: OidcConfig | None = None  # staff sign-in tokens, as the engine takes them
    environment: str = "development"
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    db_pool_size: int = 5

    # rule evaluation
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_timeout_seconds: float = 10.0
    rule_files: str = DEFAULT_RULE_FILES  # a glob, like Prometheus' rule_files
    # Short enough that a page comes within 5 s of its rule's `for` (docs/benchmarks.md).
    evaluation_interval_seconds: float = 5.0

    # budget alerts
    plans_file: Path = DEFAULT_PLANS_FILE
    budget_interval_seconds: float = 60.0
    # A month takes late usage this long after it ends (the engine's PERIOD_CLOSE_GRACE_SECONDS).
    period_close_grace_seconds: int = 3600

    # delivery
    routes_file: Path = DEFAULT_ROUTES_FILE
    oncall_file: Path = DEFAULT_ONCALL_FILE
    outbox_interval_seconds: float = 1.0
    outbox_backoff_seconds: float = 5.0  # first retry; doubles per attempt
    outbox_backoff_max_seconds: float = 900.0
    outbox_max_attempts: int = 12  # about 66 minutes of retries with the defaults above
    outbox_lease_seconds: float = 120.0  # a claimed message is retried after this if unmarked
    retention_days: int = 90  # sent and failed messages, and their log keys, are kept this long
    smtp_host: str = DEFAULT_SMTP_HOST
    smtp_port: int = DEFAULT_SMTP_PORT
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = DEFAULT_SMTP_FROM
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    oncall_email: str = "oncall@billing.local"
    slack_webhook_url: str | None = field(default=None, repr=False)
    # The incidents channel (defaults to SLACK_WEBHOOK_URL's).
    slack_incidents_webhook_url: str | None = field(default=None, repr=False)
    # A Slack bot token (xoxb-...): with SLACK_INCIDENTS_CHANNEL, incidents are posted through
    # the Web API, each in its own thread (routes.yml, incidents-slack).
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_timeout_seconds: float = 10.0

    # links in every message
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    console_url: str = DEFAULT_CONSOLE_URL
    grafana_url: str = DEFAULT_GRAFANA_URL
    logs_base_url: str = ""  # LOGS_BASE_URL: Grafana (Explore on Loki) or a template
    traces_base_url: str = ""  # TRACES_BASE_URL: Jaeger UI, Grafana Explore (Tempo) or a template

    # silences: the longest one may be (and the furthest ahead it may start)
    silence_max_days: int = 30

    # leadership (PostgreSQL advisory lock); SQLite: always the leader
    leader_retry_seconds: float = 5.0
    # Where the leader lock's session goes: DATABASE_URL unless set. A session-level lock needs
    # a session of its own, which PgBouncer in transaction mode does not give: with
    # DATABASE_URL through it, this must name PostgreSQL (or a session-mode pool) directly.
    leader_database_url: str | None = field(default=None, repr=False)

    # our own resources: the dead man's switch seen from outside, and the disks to watch
    heartbeat_url: str | None = field(default=None, repr=False)  # holds its service's token
    heartbeat_interval_seconds: float = 60.0
    watch_volumes: tuple[tuple[str, str], ...] = ()  # (name, path), from WATCH_VOLUMES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = app_environment(env)
        smtp = SmtpConfig.from_env(env)
        links = LinkSettings.from_env(env)
        settings = cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            admin_api_key=default_admin_key(env, environment),
            admin_api_keys=parse_admin_api_keys(env.get("ADMIN_API_KEYS") or ""),
            oidc=OidcConfig.from_env(env),
            environment=environment,
            port=env_int(env, "PORT", DEFAULT_PORT, minimum=1),
            host=env.get("HOST") or "127.0.0.1",
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            db_pool_size=env_int(env, "ALERTS_DB_POOL_SIZE", 5, minimum=1),
            prometheus_url=env_url(env, "PROMETHEUS_URL", "http://127.0.0.1:9090"),
            prometheus_timeout_seconds=env_float(env, "PROMETHEUS_TIMEOUT_SECONDS", 10.0,
                                                 minimum=0.1),
            rule_files=env.get("RULE_FILES") or DEFAULT_RULE_FILES,
            evaluation_interval_seconds=env_float(env, "EVALUATION_INTERVAL_SECONDS", 5.0,
                                                  minimum=0.1),
            plans_file=Path(env.get("PLANS_FILE") or DEFAULT_PLANS_FILE),
            budget_interval_seconds=env_float(env, "BUDGET_INTERVAL_SECONDS", 60.0, minimum=0.1),
            period_close_grace_seconds=env_int(env, "PERIOD_CLOSE_GRACE_SECONDS", 3600,
                                               minimum=0),
            routes_file=routes_file_from_env(env),
            oncall_file=oncall_file_from_env(env),
            outbox_interval_seconds=env_float(env, "OUTBOX_INTERVAL_SECONDS", 1.0, minimum=0.05),
            outbox_backoff_seconds=env_float(env, "OUTBOX_BACKOFF_SECONDS", 5.0, minimum=0.01),
            outbox_backoff_max_seconds=env_float(env, "OUTBOX_BACKOFF_MAX_SECONDS", 900.0,
                                                 minimum=0.01),
            outbox_max_attempts=env_int(env, "OUTBOX_MAX_ATTEMPTS", 12, minimum=1),
            outbox_lease_seconds=env_float(env, "OUTBOX_LEASE_SECONDS", 120.0, minimum=1.0),
            retention_days=env_int(env, "ALERTS_RETENTION_DAYS", 90, minimum=1),
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_username=smtp.username or None,
            smtp_password=smtp.password or None,
            smtp_from=smtp.sender,
            smtp_starttls=smtp.starttls,
            smtp_timeout_seconds=smtp.timeout_seconds,
            oncall_email=env.get("ONCALL_EMAIL") or "oncall@billing.local",
            slack_webhook_url=env.get("SLACK_WEBHOOK_URL") or None,
            slack_incidents_webhook_url=env.get("SLACK_INCIDENTS_WEBHOOK_URL") or None,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_timeout_seconds=env_float(env, "SLACK_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            runbook_base_url=links.runbook_base_url,
            console_url=links.console_url,
            grafana_url=links.grafana_url,
            logs_base_url=links.logs_base_url,
            traces_base_url=links.traces_base_url,
            silence_max_days=env_int(env, "SILENCE_MAX_DAYS", 30, minimum=1),
            leader_retry_seconds=env_float(env, "LEADER_RETRY_SECONDS", 5.0, minimum=0.1),
            leader_database_url=env.get("LEADER_DATABASE_URL") or None,
            heartbeat_url=(env.get("HEARTBEAT_URL") or "").strip() or None,
            heartbeat_interval_seconds=env_float(env, "HEARTBEAT_INTERVAL_SECONDS", 60.0,
                                                 minimum=1.0),
            watch_volumes=tuple((name, str(path)) for name, path
                                in parse_volumes(env.get("WATCH_VOLUMES")).items()),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        check_admin_key(self.admin_api_key, environment=self.environment)
        check_admin_api_keys(self.admin_api_keys, admin_api_key=self.admin_api_key,
                             environment=self.environment)
        check_port("PORT", self.port)
        check_port("SMTP_PORT", self.smtp_port)
        if self.outbox_backoff_max_seconds < self.outbox_backoff_seconds:
            raise SettingsError("OUTBOX_BACKOFF_MAX_SECONDS must not be below "
                                "OUTBOX_BACKOFF_SECONDS")
        if self.heartbeat_url and not self.heartbeat_url.startswith(("http://", "https://")):
            raise SettingsError("HEARTBEAT_URL must be an http:// or https:// URL")
        if self.leader_retry_seconds > 10:
            # A standby must notice a dead leader well within 30 seconds.
            raise SettingsError("LEADER_RETRY_SECONDS must be at most 10")
        if through_pgbouncer(self.leader_lock_url):
            # Two replicas could each believe they hold the lock, and both send.
            raise SettingsError(
                "the leader lock needs a database session of its own, which PgBouncer in "
                "transaction mode does not keep: set LEADER_DATABASE_URL to PostgreSQL itself "
                "(or a session-mode pool) when DATABASE_URL goes through PgBouncer")

    @property
    def leader_lock_url(self) -> str:
        return self.leader_database_url or self.database_url

    def admin_keys(self) -> tuple[tuple[str, str], ...]:
        """(name, key) of every configured admin key; ADMIN_API_KEY is named "admin"."""
        return admin_keys(self.admin_api_key, self.admin_api_keys)

    @property
    def smtp(self) -> SmtpConfig:
        return SmtpConfig(host=self.smtp_host, port=self.smtp_port, sender=self.smtp_from,
                          starttls=self.smtp_starttls, username=self.smtp_username or "",
                          password=self.smtp_password or "",
                          timeout_seconds=self.smtp_timeout_seconds)

    @property
    def links(self) -> LinkSettings:
        return LinkSettings(runbook_base_url=self.runbook_base_url,
                            grafana_url=self.grafana_url, console_url=self.console_url,
                            logs_base_url=self.logs_base_url,
                            traces_base_url=self.traces_base_url)

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_webhook_url)

    def secret_values(self) -> tuple[str, ...]:
        """Strings that must never appear in a log line."""
        return secrets_to_scrub([self.admin_api_key, self.smtp_password, self.slack_webhook_url,
                                 self.heartbeat_url,
                                 self.slack_incidents_webhook_url, self.slack_bot_token,
                                 *(key for _name, key in self.admin_api_keys),
                                 url_password(self.database_url),
                                 url_password(self.leader_database_url)])
