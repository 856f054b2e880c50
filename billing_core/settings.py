"""Reading settings from the environment, the same way in both processes.

Each process has one frozen `Settings` class built at its entry point from these helpers; nothing
below the entry point reads the environment. A value that cannot be used raises `SettingsError`
naming the variable, so the process refuses to start instead of running half-configured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from billing_core.errors import ConfigError

ENVIRONMENTS = ("development", "test", "production")
DEV_ADMIN_KEY = "dev-admin-key"
# Values that must never guard a production deployment.
PLACEHOLDER_ADMIN_KEYS = frozenset({"", "changeme", "change-me", DEV_ADMIN_KEY, "admin"})
MIN_PRODUCTION_KEY_LENGTH = 16


class SettingsError(ConfigError):
    """The environment describes a configuration the process refuses to run with."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def env_int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None
) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0
) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not value >= minimum:  # also refuses NaN
        raise SettingsError(f"{name} must be at least {minimum}, got {raw}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (_raw(env, name) or "").lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def env_url(env: Mapping[str, str], name: str, default: str) -> str:
    """A base URL without its trailing slash."""
    return (_raw(env, name) or default).rstrip("/")


def app_environment(env: Mapping[str, str]) -> str:
    environment = (env.get("APP_ENV") or "development").strip().lower()
    if environment not in ENVIRONMENTS:
        raise SettingsError(
            f"APP_ENV must be development, test or production, got {environment!r}"
        )
    return environment


def default_admin_key(env: Mapping[str, str], environment: str) -> str:
    """ADMIN_API_KEY, or the development key outside production (and nothing in production)."""
    return env.get("ADMIN_API_KEY", DEV_ADMIN_KEY if environment != "production" else "")


def check_admin_key(key: str, *, environment: str, what: str = "ADMIN_API_KEY") -> None:
    """Refuse a placeholder or short admin key in production."""
    if environment != "production":
        return
    if key in PLACEHOLDER_ADMIN_KEYS:
        raise SettingsError(
            f"{what} is unset or a placeholder; set a long random value "
            "before running with APP_ENV=production"
        )
    if len(key) < MIN_PRODUCTION_KEY_LENGTH:
        raise SettingsError(
            f"{what} must be at least {MIN_PRODUCTION_KEY_LENGTH} characters in production"
        )


ADMIN_KEY_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")


def parse_admin_api_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """ADMIN_API_KEYS, as both processes read it: 'alice:key1,bob:key2' -> (('alice', 'key1'),
    ('bob', 'key2')); names a-z 0-9 _ -, unique and not "admin" (the name of ADMIN_API_KEY);
    keys non-empty and distinct."""
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(p.strip() for p in raw.split(",")):
        if not item:
            continue
        name, sep, key = item.partition(":")
        name, key = name.strip(), key.strip()
        where = f"ADMIN_API_KEYS entry {index + 1}"
        if not sep or not key:
            raise SettingsError(f"{where} must look like name:key")
        if not ADMIN_KEY_NAME.match(name):
            raise SettingsError(f"{where}: the name must be 1-64 of a-z, 0-9, _ and -")
        if name == "admin":
            raise SettingsError(f"{where}: the name admin is ADMIN_API_KEY's; choose another")
        if any(name == n for n, _ in pairs):
            raise SettingsError(f"{where}: the name {name!r} is used twice")
        if any(key == k for _, k in pairs):
            raise SettingsError(f"{where}: the key of {name!r} is also another name's key")
        pairs.append((name, key))
    return tuple(pairs)


def check_admin_api_keys(keys: Iterable[tuple[str, str]], *, admin_api_key: str,
                         environment: str) -> None:
    """Refuse a named key equal to ADMIN_API_KEY, and short or placeholder ones in production."""
    for name, key in keys:
        if key == admin_api_key:
            raise SettingsError(f"ADMIN_API_KEYS: the key named {name!r} is ADMIN_API_KEY")
        if environment == "production" and (
            key in PLACEHOLDER_ADMIN_KEYS or len(key) < MIN_PRODUCTION_KEY_LENGTH
        ):
            raise SettingsError(
                f"ADMIN_API_KEYS: the key named {name!r} must be at least 16 characters "
                "and not a placeholder in production"
            )


def admin_keys(admin_api_key: str, named: tuple[tuple[str, str], ...]
               ) -> tuple[tuple[str, str], ...]:
    """(name, key) of every configured admin key; ADMIN_API_KEY is named "admin"."""
    return ((("admin", admin_api_key),) if admin_api_key else ()) + named


def check_port(name: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise SettingsError(f"{name} must be between 1 and 65535, got {port}")


def url_password(url: str | None) -> str | None:
    """The password inside a database or Redis URL, so logs can scrub it."""
    if not url:
        return None
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:
        return None


def secrets_to_scrub(values: Iterable[str | None]) -> tuple[str, ...]:
    """The values no log line may carry; very short ones would scrub ordinary words."""
    return tuple(s for s in values if s and len(s) >= 4)
