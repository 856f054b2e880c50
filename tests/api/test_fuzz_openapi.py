"""Schemathesis over the engine's OpenAPI document (tests/support/fuzz.py): the app in process on
real PostgreSQL and Redis, every operation sent generated input, valid and invalid, as an admin
staff key and, on the routes an org key may call, as an org key. No answer is a 5xx, and every
answer is one the operation declares, in the declared shape.

`make fuzz` runs this module with many more examples and a random seed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI

from billing_core.access import OrgScope, Role, Scope
from billing_engine.access.policy import ENGINE_POLICY
from billing_engine.api import create_app
from billing_engine.settings import Settings
from billing_engine.usage.rules import InstanceState
from billing_engine.usage.schemas import HeartbeatIn
from tests.support.builders import ADMIN_KEY
from tests.support.fuzz import FuzzSettings, fuzz, openapi_schema
from tests.support.openapi import api_routes

ORG = "org_fuzz"
INSTANCE = "vm-fuzz-1"


@pytest.fixture
def engine(pg_database, redis_url, metrics, clock) -> Iterator[FastAPI]:
    """The engine with the entitlements cache and webhook dedup on Redis, webhook secrets (so
    Stripe deliveries, thin events too, reach the signature check), no failed-authentication
    limits (invalid input includes credentials), and one org with a running instance."""
    settings = Settings(admin_api_key=ADMIN_KEY, environment="test", redis_url=redis_url,
                        stripe_webhook_secret="whsec_fuzz_" + "0" * 32,
                        stripe_thin_webhook_secret="whsec_fuzz_thin_" + "0" * 27,
                        auth_failure_limit_per_address=0, auth_failure_limit_per_key_prefix=0)
    app = create_app(settings, database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False)
    services = app.state.services
    services.customers.upsert(org_id=ORG, name="Fuzz Ltd", email="billing@fuzz.example",
                              plan="base_usage")
    services.usage.ingest([
        HeartbeatIn(instance_id=INSTANCE, org_id=ORG, state=InstanceState.RUNNING,
                    ts=clock() - timedelta(minutes=minutes)) for minutes in range(3)])
    yield app


def test_no_input_gets_a_5xx_or_an_undeclared_answer_from_an_admin(engine):
    token = engine.state.services.access.create_staff_key(
        name="fuzz-admin", role=Role.admin, expires_at=None, created_by="fuzz").token
    plans = sorted(engine.state.services.catalog.plans)
    schema = openapi_schema(engine, token=token, likely={
        "org_id": [ORG], "body.org_id": [ORG], "instance_id": [INSTANCE], "body.plan": plans})
    report = fuzz(schema, FuzzSettings.from_env())
    assert report.selected == len(api_routes(engine))  # every route in the document
    report.assert_clean()


def an_org_key_may_call(method: str, path: str) -> bool:
    return isinstance(ENGINE_POLICY[(method, path)], OrgScope)


def test_no_input_gets_a_5xx_or_an_undeclared_answer_from_an_org_key(engine):
    token = engine.state.services.access.create_org_key(
        org_id=ORG, name="fuzz fleet", scopes=[Scope.usage_write, Scope.billing_read],
        expires_at=None, created_by="fuzz").token
    # Often its own org, so that requests get past the access check to the route; a batch of
    # heartbeats always (one heartbeat of another org refuses the whole batch).
    schema = openapi_schema(engine, token=token, likely={"org_id": [ORG]},
                            fixed={"body.heartbeats[*].org_id": ORG})
    report = fuzz(schema, FuzzSettings.from_env(), select=an_org_key_may_call)
    assert report.selected == len({r for r in api_routes(engine) if an_org_key_may_call(*r)})
    report.assert_clean()
