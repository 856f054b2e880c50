"""A lean open-loop HTTP/1.1 load generator on asyncio streams.

Requests fall due at fixed times (rate x seconds); latency counts from when a request was due,
not from when a connection was free, so a slow server cannot hide its queueing (no coordinated
omission). Keep-alive connections are pooled; the client does almost nothing per request, so on
a small machine it takes little CPU from the server it measures.
"""

from __future__ import annotations

import asyncio
import time


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length:
            await self.reader.readexactly(length)
        return status


async def _run(
    host: str, port: int, paths: list[str], rate: float, seconds: float, connections: int,
    headers: list[dict[str, str]] | None = None,
) -> list[float]:
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(_Connection(*await asyncio.open_connection(host, port)))
    extra = headers or [{} for _ in paths]
    requests = [
        (f"GET {p} HTTP/1.1\r\nHost: {host}\r\n"
         + "".join(f"{name}: {value}\r\n" for name, value in h.items()) + "\r\n").encode()
        for p, h in zip(paths, extra, strict=True)
    ]
    latencies: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.1

    async def one(n: int, due: float) -> None:
        conn = await pool.get()
        try:
            status = await conn.get(requests[n % len(requests)])
        finally:
            pool.put_nowait(conn)
        latencies.append(loop.time() - due)
        if status != 200:
            errors.append(f"{paths[n % len(paths)]}: {status}")

    tasks = []
    total = int(rate * seconds)
    for n in range(total):
        due = begin + n / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().writer.close()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[:3]}")
    return latencies


def open_loop(
    base_url: str, paths: list[str], *, rate: float, seconds: float, connections: int = 16,
    headers: list[dict[str, str]] | None = None,
) -> list[float]:
    """Latencies in seconds of `rate * seconds` GETs spread evenly over `seconds`; `headers`,
    if given, holds each path's own headers (its credential)."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.perf_counter()
    result = asyncio.run(_run(host, int(port), paths, rate, seconds, connections, headers))
    assert time.perf_counter() - started >= seconds * 0.9
    return result
