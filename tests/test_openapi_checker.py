"""tests/support/openapi.py finds each way an OpenAPI document can fall short."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from billing_core.http import ErrorBody, error_responses
from tests.support.openapi import openapi_problems


class Thing(BaseModel):
    name: str


class ThingGone(ErrorBody):
    """Extends the error body: allowed."""

    gone_since: str


class NotAnError(BaseModel):
    detail: str


def test_a_fully_declared_app_has_no_problems() -> None:
    app = FastAPI()

    @app.get("/things/{name}", response_model=Thing,
             responses={**error_responses(404, 422), 410: {"model": ThingGone}})
    def get_thing(name: str) -> Thing:
        return Thing(name=name)

    @app.get("/things", response_model=list[Thing])
    def list_things() -> list[Thing]:
        return []

    assert openapi_problems(app, error_model=ErrorBody) == []


def test_each_shortfall_is_named_with_its_route_and_status() -> None:
    app = FastAPI()

    @app.get("/untyped/{name}")
    def untyped(name: str) -> dict[str, Any]:  # FastAPI's own 422, an anonymous object
        return {}

    @app.post("/wrong-error", response_model=Thing,
              responses={**error_responses(422), 409: {"model": NotAnError}})
    def wrong_error(body: Thing) -> Thing:
        return body

    problems = openapi_problems(app, error_model=ErrorBody)
    assert problems[0].startswith("GET /untyped/{name} 200: the JSON body is not a named model")
    assert problems[1:] == [
        "GET /untyped/{name} 422: its body HTTPValidationError does not extend ErrorBody "
        "(field 'error')",
        "POST /wrong-error 409: its body NotAnError does not extend ErrorBody (field 'error')",
    ]


def test_a_422_without_the_error_body_is_named_and_hidden_routes_are_not_checked() -> None:
    app = FastAPI()

    @app.get("/things/{name}", response_model=Thing, responses={422: {"description": "x"}})
    def get_thing(name: str) -> Thing:
        return Thing(name=name)

    @app.get("/hidden/{name}", include_in_schema=False)
    def hidden(name: str) -> dict[str, Any]:  # not part of the contract: not checked
        return {}

    assert openapi_problems(app, error_model=ErrorBody) == [
        "the document has no ErrorBody schema at all",
        "GET /things/{name} 422: declares no ErrorBody body"]


def test_a_served_route_missing_from_the_document_is_named() -> None:
    app = FastAPI()

    @app.get("/things", response_model=list[Thing])
    def list_things() -> list[Thing]:
        return []

    app.openapi()["paths"].pop("/things")  # a document built by hand, and stale
    assert openapi_problems(app, error_model=ErrorBody) == [
        "the document has no ErrorBody schema at all",
        "GET /things: served but not in the OpenAPI document"]
