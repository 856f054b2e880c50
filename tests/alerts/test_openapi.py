"""/openapi.json of the alerts process says what every route answers, errors included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from alerts.api.app import create_app
from alerts.process import build_process
from alerts.settings import Settings
from billing_core.http import ErrorBody
from tests.alerts.core import *  # noqa: F403
from tests.support.openapi import openapi_problems


@pytest.fixture
def app(alerts_sqlite_url: str) -> Iterator[FastAPI]:
    process = build_process(Settings(database_url=alerts_sqlite_url, environment="test"),
                            environ={}, scheduled=False)
    yield create_app(process, run_scheduler=False)
    process.close()


def test_every_route_declares_its_body_and_its_errors_with_the_error_body(app: FastAPI):
    assert openapi_problems(app, error_model=ErrorBody) == []


def test_admin_routes_declare_401_and_open_reads_do_not(app: FastAPI):
    paths = app.openapi()["paths"]
    admin = [("post", "/v1/alerts/{fingerprint}/ack"), ("post", "/v1/silences"),
             ("delete", "/v1/silences/{silence_id}"), ("get", "/debug/alerts/{org_id}"),
             ("post", "/admin/test-email"), ("post", "/admin/test-slack")]
    for method, path in admin:
        assert "401" in paths[path][method]["responses"], (method, path)
    for path in ("/healthz", "/ready", "/metrics", "/v1/alerts", "/v1/silences"):
        assert "401" not in paths[path]["get"]["responses"], path
