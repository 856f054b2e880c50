"""Request bodies are limited (413 naming the limit, nothing stored, nothing more read) and big
ones are parsed off the event loop, so the probes keep answering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.api.middleware import BodyLimitMiddleware
from billing_engine.operability.metrics import EngineMetrics
from tests.support.builders import hb, new_org, org_headers

LIMIT = 64 * 1024


@pytest.fixture
def small_limit(pg_database, settings, clock) -> Iterator[TestClient]:
    app = create_app(replace(settings, max_body_bytes=LIMIT), database=pg_database,
                     metrics=EngineMetrics(), clock=clock, housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def ingested(client: TestClient) -> float:
    registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value("heartbeats_ingested_total") or 0.0


def batch_of(org: str, clock: Any, count: int) -> dict[str, Any]:
    return {"heartbeats": [hb(f"vm-{n}", org, clock()) for n in range(count)]}


def test_a_body_over_the_limit_is_refused_with_413_naming_it_and_nothing_is_stored(
        small_limit, admin, clock):
    org = new_org(small_limit, admin)
    headers = org_headers(small_limit, admin, org)
    body = json.dumps(batch_of(org, clock, 1000))  # about 100 KB
    assert len(body) > LIMIT
    refused = small_limit.post("/v1/heartbeats", content=body,
                               headers={**headers, "Content-Type": "application/json"})
    assert refused.status_code == 413
    answer = refused.json()
    assert answer["error"] == "content_too_large"
    assert answer["errors"][0]["field"] == "body"
    assert "64 KiB" in answer["errors"][0]["reason"] and str(LIMIT) in answer["errors"][0]["reason"]
    assert ingested(small_limit) == 0
    # Just under the limit is served as usual.
    smaller = small_limit.post("/v1/heartbeats", json=batch_of(org, clock, 300), headers=headers)
    assert smaller.status_code == 200 and ingested(small_limit) == 300


def test_the_default_limit_is_8_mib(client, admin, clock):
    org = new_org(client, admin)
    headers = {**org_headers(client, admin, org), "Content-Type": "application/json"}
    refused = client.post("/v1/heartbeats", content=b" " * (8 * 1024 * 1024 + 1), headers=headers)
    assert refused.status_code == 413 and "8 MiB" in refused.json()["message"]


async def _call(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[
        list[dict[str, Any]], int]:
    sent: list[dict[str, Any]] = []
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if read > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[read - 1],
                "more_body": read < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    await app(scope, receive, send)
    return sent, read


async def _reads_everything(scope: Any, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"stored"})


def test_a_streamed_body_stops_being_read_at_the_chunk_that_crosses_the_limit():
    middleware = BodyLimitMiddleware(_reads_everything, max_bytes=2048)
    chunks = [b"x" * 1000] * 100
    sent, read = asyncio.run(_call(middleware, chunks, headers=[]))
    assert read == 3  # 1000, 2000, then 3000 > 2048: stop; the other 97 are never read
    assert sent[0]["status"] == 413 and b"stored" not in sent[-1]["body"]
    assert json.loads(sent[-1]["body"])["errors"][0]["field"] == "body"


def test_a_content_length_over_the_limit_is_refused_before_any_byte_is_read():
    middleware = BodyLimitMiddleware(_reads_everything, max_bytes=2048)
    sent, read = asyncio.run(_call(middleware, [b"x" * 10], headers=[(b"content-length",
                                                                       b"999999999")]))
    assert (read, sent[0]["status"]) == (0, 413)


def test_healthz_answers_while_several_large_bodies_are_parsed(client, admin, clock):
    org = new_org(client, admin)
    headers = {**org_headers(client, admin, org), "Content-Type": "application/json"}
    # 6 MiB each: allowed, parsed in a thread; over the batch's item limit, so answered 422.
    item = json.dumps(hb("vm-big", org, clock()))
    count = 6 * 1024 * 1024 // (len(item) + 1)
    big = ('{"heartbeats":[' + ",".join([item] * count) + "]}").encode()
    assert 5 * 1024 * 1024 < len(big) < 8 * 1024 * 1024

    async def scenario() -> tuple[list[int], list[int]]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://engine") as http:
            posts = [asyncio.create_task(http.post("/v1/heartbeats", content=big,
                                                   headers=headers)) for _ in range(4)]
            probes = []
            for _ in range(5):
                probes.append((await http.get("/healthz")).status_code)
                await asyncio.sleep(0)
            answered = [r.status_code for r in await asyncio.gather(*posts)]
            return probes, answered

    probes, answered = asyncio.run(scenario())
    assert probes == [200] * 5
    assert answered == [422] * 4, answered
    assert ingested(client) == 0
