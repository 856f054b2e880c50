"""The demo's scripted incident: an error burst and a latency spike, on a schedule or on demand.

Only `python -m billing_engine demo` (and so `make run`) installs it. A few minutes after start,
and then every half hour, for six minutes: half the API's reads answer 503 and every request
under /v1 is slowed by 400 ms, so the availability SLO burns fast enough to page, the latency
alerts fire, the page lands in the mail sink, the on-call escalation runs and the demo responder
runs an incident. Probes, /metrics, admin routes and Stripe deliveries are left alone, and
heartbeats are only slowed, never refused: the demo fleet's usage is still billed exactly. An
admin can start one at once from the console (Incidents page) or with `POST /admin/demo/fault`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from billing_core.clock import Clock
from billing_core.http import api_routes

FIRST_AFTER = timedelta(minutes=4)
EVERY = timedelta(minutes=30)
LASTS = timedelta(minutes=6)
# Half the reads fail: with the demo's mix (about four reads for five heartbeat batches) that
# spends the availability budget over 14.4 times too fast on both the 5 m and the 1 h window
# within five minutes, which is what pages.
ERROR_SHARE = 0.5
DELAY_SECONDS = 0.4
SPARED = ("/v1/heartbeats",)  # slowed, never refused: every demo minute is still billed


@dataclass(frozen=True)
class FaultWindow:
    starts: datetime
    ends: datetime
    why: str  # "scheduled" or who started it


def scheduled_window(started: datetime, now: datetime) -> FaultWindow:
    """The scheduled burst current at `now`, or the next one."""
    first = started + FIRST_AFTER
    if now < first:
        return FaultWindow(first, first + LASTS, "scheduled")
    index = (now - first) // EVERY
    starts = first + index * EVERY
    if now >= starts + LASTS:
        starts += EVERY
    return FaultWindow(starts, starts + LASTS, "scheduled")


class DemoFault:
    def __init__(self, clock: Clock, *, seed: int | None = None,
                 scheduled: bool = True) -> None:
        self.clock = clock
        self.started = clock()
        self.scheduled = scheduled
        self._manual: FaultWindow | None = None
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def trigger(self, *, minutes: float, by: str) -> FaultWindow:
        now = self.clock()
        with self._lock:
            self._manual = FaultWindow(now, now + timedelta(minutes=minutes), by)
            return self._manual

    def current(self) -> FaultWindow | None:
        """The fault window in force now, if any."""
        now = self.clock()
        with self._lock:
            if self._manual is not None and self._manual.starts <= now < self._manual.ends:
                return self._manual
        if self.scheduled:
            window = scheduled_window(self.started, now)
            if window.starts <= now < window.ends:
                return window
        return None

    def next_window(self) -> FaultWindow | None:
        now = self.clock()
        return scheduled_window(self.started, now) if self.scheduled else None

    def fails(self) -> bool:
        with self._lock:
            return self._random.random() < ERROR_SHARE


class DemoFaultMiddleware:
    """Plain ASGI: inside the metrics middleware, so the 503s and the delay are measured, under
    the route they hit (the route is matched here for that, as the router would)."""

    def __init__(self, app: ASGIApp, *, fault: DemoFault, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.fault = fault
        self.routes = list(api_routes(routes))  # the app's routes, nested routers included

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or not path.startswith("/v1/")
                or self.fault.current() is None):
            await self.app(scope, receive, send)
            return
        await asyncio.sleep(DELAY_SECONDS)
        if (scope.get("method") == "GET" and not path.startswith(SPARED)
                and self.fault.fails()):
            for route in self.routes:
                if route.matches(scope)[0] == Match.FULL:
                    scope["route"] = route  # what the metrics label the answer with
                    break
            body = json.dumps({"error": "service_unavailable", "message": "demo fault: the "
                               "scripted incident of the demo is running", "errors": []}).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", b"5"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
