"""The ceiling any heartbeat API reaches on this machine: an endpoint that takes the same bodies
the same way (uvicorn, the engine's worker count, the bench's clients) and does nothing with
them but count their items and answer.

bench/__main__.py posts every ingest body here too, so each shape prints the engine's
heartbeats/s beside the raw COPY of the same heartbeats and beside this empty endpoint: what the
HTTP round trip alone costs before anything is parsed, checked, stored or decided.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from devstack.processes import ServiceProcess

Message = dict[str, Any]


async def app(scope: Message, receive: Any, send: Any) -> None:
    """Raw ASGI, no framework: the least a Python HTTP endpoint can do with a body."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = json.dumps({"accepted": body.count(b'"instance_id"')}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


@dataclass
class BareEndpoint(ServiceProcess):
    """`uvicorn bench.bare:app` with the engine's worker count."""

    name: ClassVar[str] = "bare endpoint"

    workers: int = 1

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "bench.bare:app", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.workers), "--no-access-log",
                "--log-level", "warning"]
