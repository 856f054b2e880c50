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


def test_every_route_but_the_probes_declares_401_and_403(app: FastAPI):
    paths = app.openapi()["paths"]
    guarded = [("post", "/v1/alerts/{fingerprint}/ack"), ("post", "/v1/silences"),
               ("delete", "/v1/silences/{silence_id}"), ("get", "/debug/alerts/{org_id}"),
               ("post", "/admin/test-email"), ("post", "/admin/test-slack"),
               ("get", "/v1/alerts"), ("get", "/v1/silences"), ("get", "/v1/silences/{silence_id}")]
    for method, path in guarded:
        responses = paths[path][method]["responses"]
        assert {"401", "403"} <= set(responses), (method, path)
        assert "Access: staff with the role" in paths[path][method]["description"], path
    for path in ("/healthz", "/ready", "/metrics"):
        assert not {"401", "403"} & set(paths[path]["get"]["responses"]), path
