"""Shared fixtures: a real PostgreSQL (configured or throwaway), stores on both backends, the app;
and the marks that split the suite into its two lanes (docs/development.md).

A test that needs PostgreSQL and cannot get one fails with what to install; it never skips.
Marks `postgres` and `redis` are set here from the fixtures a test uses; `processes` is written
on the tests that start subprocesses, and devstack refuses to start one in a test without it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.db import Database, create_database, migrate
from billing_engine.db.metadata import engine_metadata
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.settings import Settings
from devstack.processes import GUARD_VARIABLE, demo_user_claims
from devstack.servers import (
    INSTALL_HINT,
    PostgresServer,
    RedisServer,
    create_scratch_database,
    drop_database,
    reachable_postgres,
    start_throwaway_postgres,
)
from tests.support.builders import ADMIN_KEY, ALL_SCOPES, bearer, create_key
from tests.support.clock import FrozenClock


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "pg_server_url" in fixtures:
            item.add_marker(pytest.mark.postgres)
        if "redis_url" in fixtures:
            item.add_marker(pytest.mark.redis)
    heavy_first(items)


def heavy_first(items: list[pytest.Item]) -> None:
    """Modules that start processes (a stack, Chromium, promtool, a command line) run before
    the rest, each module kept whole and in its own order. The workers of `make test` take
    work in collection order: the long modules then start while every worker is free, and the
    many short in-process tests fill the end of the run, instead of one worker finishing a
    stack module alone while the others wait."""
    heavy_modules = {item.module.__name__ for item in items
                     if isinstance(item, pytest.Function)
                     and (item.get_closest_marker("processes") is not None
                          or item.get_closest_marker("xdist_group") is not None)}
    items.sort(key=lambda item: getattr(getattr(item, "module", None), "__name__", "")
               not in heavy_modules)  # stable: False (heavy) first, order kept within each


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    allowed = item.get_closest_marker("processes") is not None
    os.environ[GUARD_VARIABLE] = "allowed" if allowed else "forbidden"
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    # Module and session fixtures that started processes stop them here: always allowed.
    os.environ[GUARD_VARIABLE] = "allowed"
    return (yield)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """The URL of a PostgreSQL server we may create databases on."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured and reachable_postgres(configured):
        yield configured
        return
    try:
        server: PostgresServer = start_throwaway_postgres()
    except Exception as exc:
        pytest.fail(f"{INSTALL_HINT}\n(starting a throwaway server failed: {exc})")
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A migrated database of this test session's own."""
    url = create_scratch_database(pg_server_url)
    migrate(url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[str]:
    """A real OIDC provider (oidc-provider-mock) on a thread of this process: discovery, JWKS,
    the authorization-code flow and signed ID tokens, with the demo users (one per staff role)
    and one whose groups map to no role."""
    from oidc_provider_mock import User, run_server_in_thread

    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http on localhost
    users = [User(sub=str(c["sub"]), claims={k: v for k, v in c.items() if k != "sub"})
             for c in demo_user_claims()]
    users.append(User(sub="nobody@example.com",
                      claims={"email": "nobody@example.com", "groups": ["unrelated"]}))
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[Database]:
    database = create_database(pg_url)
    with database.engine.begin() as conn:  # every test starts from empty tables
        for table in reversed(engine_metadata().sorted_tables):
            conn.execute(table.delete())
    yield database
    database.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    migrate(url)
    database = create_database(url)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    """The same store contract, run against every backend we ship."""
    name = "sqlite_database" if request.param == "sqlite" else "pg_database"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC))


@pytest.fixture
def settings() -> Settings:
    return Settings(admin_api_key=ADMIN_KEY, environment="test")


@pytest.fixture
def metrics() -> EngineMetrics:
    return EngineMetrics()


@pytest.fixture
def client(
    pg_database: Database, settings: Settings, metrics: EngineMetrics, clock: FrozenClock
) -> Iterator[TestClient]:
    """The app in-process on real PostgreSQL, with a clock the test controls."""
    app = create_app(settings, database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def admin() -> dict[str, str]:
    return {"X-Admin-Key": ADMIN_KEY}


@pytest.fixture
def org_key(client: TestClient, admin: dict[str, str]) -> Callable[..., dict[str, str]]:
    """`org_key(org_id, "billing:read")`: Authorization headers of a new key of that org."""

    def make(org_id: str, *scopes: str) -> dict[str, str]:
        return bearer(create_key(client, admin, org_id, scopes or ALL_SCOPES)["key"])

    return make


@pytest.fixture
def staff_key(client: TestClient, admin: dict[str, str]) -> Callable[[str], dict[str, str]]:
    """`staff_key("support")`: Authorization headers of a new staff key with that role."""

    def make(role: str) -> dict[str, str]:
        response = client.post("/admin/staff-keys", headers=admin,
                               json={"name": f"{role}-{uuid.uuid4().hex[:8]}", "role": role})
        assert response.status_code == 201, response.text
        return bearer(response.json()["key"])

    return make
