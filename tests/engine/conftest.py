"""The engine's Stripe tests: the stand-in, settings pointing the engine at it, and the app on
real PostgreSQL wired to it (housekeeping off, so each test runs its jobs when it means to)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.settings import Settings
from tests.support.fake_stripe import FakeStripe


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


@pytest.fixture
def configured(settings: Settings, fake: FakeStripe) -> Settings:
    return replace(settings, stripe_secret_key=fake.api_key, stripe_api_base=fake.url)


@pytest.fixture
def engine(pg_database, configured: Settings, clock) -> Iterator[TestClient]:
    app = create_app(configured, database=pg_database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    with TestClient(app) as client:
        yield client
