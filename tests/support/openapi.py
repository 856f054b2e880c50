"""Does a FastAPI app's OpenAPI document say what its routes answer?

    from billing_core.http import ErrorBody
    from tests.support.openapi import openapi_problems

    assert openapi_problems(app, error_model=ErrorBody) == []

`openapi_problems` reads `app.openapi()`, checks that every `APIRoute` the app serves (nested
routers included) is in it, and applies these rules to every operation of the document. Each
problem is one line naming the method, the path and the status at fault:

1. A route declares a 2xx response with a schema. A JSON body must be a named model (a `$ref`
   to a component, or an array of them): an anonymous `object` is what `dict[str, Any]` gives,
   and tells a caller nothing. A non-JSON body (text/plain metrics) needs a schema of any kind.
2. A route that takes a parameter (path, query, header, cookie) or a body declares 422.
3. Every 4xx and 5xx a route declares uses the error model: its schema is the error model's
   component, or a component that extends it (every property of the error model, with the same
   definition, and required where the error model requires it). FastAPI's own
   `HTTPValidationError` is not the error model, so a route left with FastAPI's 422 fails here.

Routes with `include_in_schema=False` are not part of the contract and are skipped. The rules
look at what the document declares; a test that sends requests checks that answers keep to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

JSON = "application/json"
COMPONENT = "#/components/schemas/"


def openapi_problems(app: FastAPI, *, error_model: type[BaseModel]) -> list[str]:
    """Every way the app's OpenAPI document falls short of the rules above (empty: none)."""
    document = app.openapi()
    components: dict[str, Any] = document.get("components", {}).get("schemas", {})
    error_name = error_model.__name__
    problems: list[str] = []
    if error_name not in components:
        problems.append(f"the document has no {error_name} schema at all")
    paths: dict[str, Any] = document.get("paths", {})
    for method, path in sorted(api_routes(app)):
        if method.lower() not in paths.get(path, {}):
            problems.append(f"{method} {path}: served but not in the OpenAPI document")
    for path, operations in paths.items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            problems += _operation_problems(where, operation, components, error_name)
    return problems


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of every APIRoute the app serves and puts in its schema, including those
    of routers kept nested (a route object holding `routes` or an `original_router`)."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            nested = getattr(route, "original_router", None) or getattr(route, "routes", None)
            if isinstance(route, APIRoute):
                if route.include_in_schema:
                    found.update((method, route.path_format) for method in route.methods)
            elif nested is not None:
                walk(list(getattr(nested, "routes", nested)))

    walk(list(app.router.routes))
    return found


def _operation_problems(where: str, operation: dict[str, Any], components: dict[str, Any],
                        error_name: str) -> list[str]:
    problems: list[str] = []
    responses: dict[str, Any] = operation.get("responses", {})
    success = {status: answer for status, answer in responses.items() if status.startswith("2")}
    if not success:
        problems.append(f"{where}: declares no 2xx response")
    for status, answer in success.items():
        problem = _success_problem(answer)
        if problem:
            problems.append(f"{where} {status}: {problem}")
    if (operation.get("parameters") or operation.get("requestBody")) and "422" not in responses:
        problems.append(f"{where}: takes parameters but declares no 422")
    for status, answer in responses.items():
        if status[:1] in {"4", "5"} or status == "default":
            problem = _error_problem(answer, components, error_name)
            if problem:
                problems.append(f"{where} {status}: {problem}")
    return problems


def _success_problem(answer: dict[str, Any]) -> str | None:
    content: dict[str, Any] = answer.get("content", {})
    if not content:
        return "has no body schema"
    for media_type, body in content.items():
        schema = body.get("schema")
        if not schema:
            return f"{media_type} has no schema"
        if media_type == JSON and not _names_a_model(schema):
            return f"the JSON body is not a named model: {schema}"
    return None


def _names_a_model(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return _names_a_model(schema.get("items", {}))
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    return bool(alternatives) and all(_names_a_model(s) for s in alternatives)


def _error_problem(answer: dict[str, Any], components: dict[str, Any],
                   error_name: str) -> str | None:
    schema = answer.get("content", {}).get(JSON, {}).get("schema")
    if not schema:
        return f"declares no {error_name} body"
    ref = schema.get("$ref", "")
    if not ref.startswith(COMPONENT):
        return f"its body is not {error_name}: {schema}"
    name = ref[len(COMPONENT):]
    if name == error_name:
        return None
    error, declared = components.get(error_name, {}), components.get(name, {})
    properties = declared.get("properties", {})
    for field, definition in error.get("properties", {}).items():
        if properties.get(field) != definition:
            return f"its body {name} does not extend {error_name} (field {field!r})"
    missing = set(error.get("required", ())) - set(declared.get("required", ()))
    if missing:
        return f"its body {name} does not require {sorted(missing)} as {error_name} does"
    return None
