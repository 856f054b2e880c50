"""The engine's HTTP contract: every route declares its response body and every error answer it
gives, in the one error shape; and odd input to any route gets one of those answers, never a 500.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

PROBES = {"/healthz", "/live", "/ready"}
NO_DATABASE = PROBES | {"/v1/plans"}
ERROR_SCHEMA = "#/components/schemas/ErrorBody"
# Answers whose body carries more than the error shape (each extends it or is the route's own).
SPECIAL_ANSWERS = {
    ("/ready", "503"): "#/components/schemas/ReadyOut",
    ("/webhooks/stripe", "202"): "#/components/schemas/DeliveryOut",
    ("/webhooks/stripe", "500"): "#/components/schemas/DeliveryOut",
    ("/admin/webhooks/{event_id}/replay", "409"): "#/components/schemas/ReplayFailedOut",
    ("/admin/webhooks/{event_id}/replay", "500"): "#/components/schemas/ReplayFailedOut",
}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


def schema_of(answer: dict[str, Any]) -> dict[str, Any]:
    return answer.get("content", {}).get("application/json", {}).get("schema", {})


def api_routes(app: Any) -> set[tuple[str, str]]:
    """(METHOD, path) of every route the app serves, walked through its included routers."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            original = getattr(route, "original_router", None)
            if original is not None:
                walk(original.routes)
            elif isinstance(route, APIRoute) and route.include_in_schema:
                found.update((m, route.path) for m in route.methods)

    walk(app.router.routes)
    return found


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_route_of_the_app_is_in_the_document(client, document):
    documented = {(m.upper(), p) for p, m, _ in operations(document)}
    assert api_routes(client.app) == documented
    assert len(documented) >= 35


def test_every_route_declares_the_body_of_its_success(document):
    missing = []
    for path, method, op in operations(document):
        ok = [code for code in op["responses"] if code.startswith("2")]
        if not ok or not all(schema_of(op["responses"][code]) for code in ok):
            missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_every_error_answer_is_declared_with_the_error_shape(document):
    wrong = []
    for path, method, op in operations(document):
        for code, answer in op["responses"].items():
            if code.startswith("2"):
                continue
            expected = SPECIAL_ANSWERS.get((path, code), ERROR_SCHEMA)
            if schema_of(answer).get("$ref") != expected:
                wrong.append(f"{method.upper()} {path} {code}: {schema_of(answer)}")
    assert wrong == []
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


ODD_VALUES = ("\x00", "x" * 300, "9" * 40, "-1", "9999-99", "org_nobody", "%s' OR 1=1 --")
ODD_BODIES: tuple[Any, ...] = (
    {"heartbeats": [{"instance_id": "i\x00", "org_id": "o", "ts": "9999-12-31T23:59:59Z",
                     "state": "running"}]},
    {"amount_cents": 10**30, "reason": "\x00", "org_id": "org_nobody"},
    {"name": "", "email": "a@b.c", "plan": "x" * 100},
    [],
    "not an object",
)


def odd_requests(path: str, op: dict[str, Any]) -> list[dict[str, Any]]:
    requests = []
    for value in ODD_VALUES:
        url = path
        params: dict[str, str] = {}
        for parameter in op.get("parameters", []):
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", quote(value, safe=""))
            elif parameter["in"] == "query":
                params[parameter["name"]] = value
        for body in (None, *ODD_BODIES) if op.get("requestBody") else (None,):
            requests.append({"url": url, "params": params, "json": body})
    return requests


def test_odd_input_to_any_route_gets_an_answer_it_declares(client, admin, document):
    undeclared = []
    for path, method, op in operations(document):
        if path == "/webhooks/stripe":
            continue  # its odd bodies are tested against real signatures in its own module
        declared = {int(code) for code in op["responses"]}
        for request in odd_requests(path, op):
            for headers in (admin, {}, {"X-Admin-Key": "k" * 5000}):
                kwargs = {"params": request["params"], "headers": headers}
                if request["json"] is not None:
                    kwargs["json"] = request["json"]
                answer = client.request(method.upper(), request["url"], **kwargs)
                if answer.status_code not in declared:
                    undeclared.append(f"{method.upper()} {request['url']} -> "
                                      f"{answer.status_code} {answer.text[:120]}")
    assert undeclared == []
