"""The engine's HTTP contract: every route declares its response body and every error answer it
gives, in the one error shape; and odd input to any route gets one of those answers, never a 500.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from billing_core.http import ErrorBody
from tests.support.openapi import api_routes, openapi_problems

PROBES = {"/healthz", "/live", "/ready"}
NO_DATABASE = PROBES | {"/v1/plans"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_route_declares_its_body_and_its_errors_in_the_error_shape(client, document):
    """The shared rules (tests/support/openapi.py): every served route is in the document, with
    a named model for its 2xx body, a 422 where it takes input, every error as ErrorBody."""
    assert openapi_problems(client.app, error_model=ErrorBody) == []
    assert len(api_routes(client.app)) >= 35
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_routes_declare_the_answers_they_can_give(document):
    """422 wherever there is a parameter or a body, 401 on every admin route, 503 wherever the
    database is asked."""
    missing = []
    for path, method, op in operations(document):
        codes = set(op["responses"])
        needs = set()
        if op.get("parameters") or op.get("requestBody"):
            needs.add("422")
        if path.startswith(("/admin/", "/debug/")):
            needs |= {"401", "422"}
        if path not in NO_DATABASE:
            needs.add("503")
        if needs - codes:
            missing.append(f"{method.upper()} {path}: {sorted(needs - codes)}")
    assert missing == []


ODD_VALUES = ("\x00", "a\x00b", "x" * 300, "9" * 40, "4611686018427387904", "-1", "9999-99",
              "9999-12", "0000-01", "org_nobody",
              "%s' OR 1=1 --")
ODD_BODIES: tuple[Any, ...] = (
    {"heartbeats": [{"instance_id": "i\x00", "org_id": "o", "ts": "9999-12-31T23:59:59Z",
                     "state": "running"}]},
    {"heartbeats": [{"instance_id": "i1", "org_id": "org_nobody", "ts": "9999-12-31T23:59:59Z",
                     "state": "running"}]},
    {"amount_cents": 10**30, "reason": "\x00", "org_id": "org_nobody"},
    {"amount_cents": 5, "reason": "a\x00b", "org_id": "org_nobody"},
    {"name": "a\x00b", "email": "a@b.co", "plan": "free"},
    {"name": "A", "email": "a\x00@b.co", "plan": "free"},
    {"name": "\ud800", "email": "a@b.co", "plan": "free"},
    {"name": "", "email": "a@b.c", "plan": "x" * 100},
    [],
    "not an object",
    b'{"amount_cents": ' + b"9" * 5000 + b', "reason": "x", "org_id": "org_nobody"}',
    b"\xff\xfe not UTF-8",
)


def plausible(parameter: dict[str, Any]) -> str:
    """A value the parameter accepts, so an odd value in another parameter is what is tested."""
    schema = parameter.get("schema", {})
    schema = next(iter(schema.get("anyOf", [])), schema) if "anyOf" in schema else schema
    if schema.get("type") == "integer":
        return str(schema.get("minimum", 1))
    if "\\d{4}" in schema.get("pattern", ""):
        return "2026-11"
    return "org_nobody"


def odd_requests(path: str, op: dict[str, Any]) -> list[dict[str, Any]]:
    """Each parameter in turn given each odd value (the others a plausible one), then each odd
    body with plausible parameters."""
    parameters = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]

    def build(odd: dict[str, str]) -> tuple[str, dict[str, str]]:
        url, params = path, {}
        for parameter in parameters:
            value = odd.get(parameter["name"], plausible(parameter))
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", quote(value, safe=""))
            else:
                params[parameter["name"]] = value
        return url, params

    requests = []
    for parameter in parameters:
        for value in ODD_VALUES:
            url, params = build({parameter["name"]: value})
            requests.append({"url": url, "params": params, "json": None})
    url, params = build({})
    requests.append({"url": url, "params": params, "json": None})
    if op.get("requestBody"):
        requests += [{"url": url, "params": params, "json": body} for body in ODD_BODIES]
    return requests


def test_odd_input_to_any_route_gets_an_answer_it_declares(client, admin, document):
    undeclared = []
    for path, method, op in operations(document):
        if path == "/webhooks/stripe":
            continue  # its odd bodies are tested against real signatures in its own module
        declared = {int(code) for code in op["responses"]}
        for request in odd_requests(path, op):
            for headers in (admin, {}, {"X-Admin-Key": "k" * 5000}):
                kwargs: dict[str, Any] = {"params": request["params"], "headers": headers}
                body = request["json"]
                if body is not None:  # as JSON text escapes it: \ud800 included
                    kwargs["content"] = body if isinstance(body, bytes) else json.dumps(
                        body).encode()
                    kwargs["headers"] = {**headers, "Content-Type": "application/json"}
                answer = client.request(method.upper(), request["url"], **kwargs)
                if answer.status_code not in declared:
                    undeclared.append(f"{method.upper()} {request['url']} -> "
                                      f"{answer.status_code} {answer.text[:120]}")
    assert undeclared == []


def test_a_method_the_route_does_not_serve_gets_405_with_allow(client, admin):
    """Starlette says which methods a path serves; our error shape used to drop that header."""
    for method in ("DELETE", "TRACE", "PATCH"):
        answer = client.request(method, "/v1/billing", params={"org_id": "org_x"},
                                headers=admin)
        assert answer.status_code == 405
        assert answer.headers["Allow"] == "GET"
        assert answer.json()["errors"] == [
            {"field": "method", "reason": "is not served here; allowed: GET"}]
