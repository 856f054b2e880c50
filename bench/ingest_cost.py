"""Where a heartbeat batch's time goes: the engine's CPU and PostgreSQL's CPU per 1,000-heartbeat
body, in the two shapes of bench/scale.py, with no HTTP and no other client in the way.

    python -m bench.ingest_cost [backfill|stream ...]

The engine's own services run in this process, one body at a time, as the heartbeat route calls
them (parse, ingest, throttle decisions, answer). Engine CPU is this process's CPU time; server
CPU is read per statement from the backend's /proc/<pid>/schedstat, so the server must run on
this machine (a throwaway one unless BENCH_DATABASE_URL names another). CPU time is what a
shared 2-core machine gives out, so these figures move far less with its load than throughput
does; `python -m bench --only scale --sizes 0` gives the throughput beside raw COPY.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import event

from bench.__main__ import ingest_bodies, ingest_rows
from billing_engine.db import migrate
from billing_engine.settings import Settings
from billing_engine.usage.schemas import HeartbeatBatch, ingest_json
from billing_engine.wiring import Services, build_services
from devstack.servers import postgres_server, scratch_database

WARM_UP = 5


def bodies_of(url: str, shape: str) -> list[bytes]:
    """The bench's bodies of one shape, in the order it sends them; their orgs made."""
    rows = ingest_rows(shape, "c", datetime.now(UTC))
    return [body for _org, body in ingest_bodies(url, rows, shape=shape)]


class ServerCpu:
    """Server CPU seconds per statement (its first 60 characters), read around each one."""

    def __init__(self, services: Services) -> None:
        self.seconds: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        engine = services.database.engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    @staticmethod
    def _backend_ns(conn: Any) -> int:
        pid = conn.info.get("backend_pid")
        if pid is None:
            pid = conn.info["backend_pid"] = conn.connection.dbapi_connection.info.backend_pid
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0])

    def _before(self, conn: Any, *_args: Any) -> None:
        conn.info["cpu_ns"] = self._backend_ns(conn)

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        key = " ".join(statement.split())[:60]
        self.seconds[key] += (self._backend_ns(conn) - conn.info["cpu_ns"]) / 1e9
        self.count[key] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.count.clear()


def measure(url: str, shape: str) -> None:
    bodies = bodies_of(url, shape)
    settings = Settings.from_env({"DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    services = build_services(settings, pool_size=2)
    server = ServerCpu(services)
    stages: dict[str, list[float]] = {"parse": [], "ingest": [], "decide": [], "answer": []}

    def one(body: bytes) -> int:
        t0 = time.thread_time()
        batch = HeartbeatBatch.model_validate_json(body)
        t1 = time.thread_time()
        result = services.usage.ingest(batch.heartbeats)
        t2 = time.thread_time()
        rejected = {index for index, _ in result.rejections}
        decisions = services.throttling.decide_batch(batch.heartbeats, rejected)
        t3 = time.thread_time()
        JSONResponse(ingest_json(result, decisions))
        t4 = time.thread_time()
        for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[stage].append(seconds)
        return result.accepted

    try:
        for body in bodies[:WARM_UP]:
            one(body)
        for values in stages.values():
            values.clear()
        server.reset()
        started = time.thread_time()
        accepted = sum(one(body) for body in bodies[WARM_UP:])
        engine_ms = (time.thread_time() - started) / (len(bodies) - WARM_UP) * 1000
    finally:
        services.dispose()
    n = len(bodies) - WARM_UP
    server_ms = sum(server.seconds.values()) / n * 1000
    print(f"{shape}: {n} bodies of 1,000 heartbeats ({accepted:,} minutes new); per body: "
          f"engine CPU {engine_ms:.1f} ms, server CPU {server_ms:.1f} ms")
    print("  engine, median ms: " + ", ".join(
        f"{stage} {statistics.median(values) * 1000:.2f}" for stage, values in stages.items()))
    for key, seconds in server.seconds.most_common(8):
        print(f"  server {seconds / n * 1000:6.2f} ms x{server.count[key] / n:.0f}  {key}")


def main() -> int:
    shapes = sys.argv[1:] or ["backfill", "stream"]
    with postgres_server("BENCH_DATABASE_URL") as server_url:
        for shape in shapes:
            with scratch_database(server_url, prefix="billing_cost", setup=migrate) as url:
                measure(url, shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
