"""The data servers: PostgreSQL and Redis started from installed binaries in a temporary folder
on free ports, and scratch databases on a server we are given. Nothing here touches the machine's
shared servers except to create and drop a database of our own on one named by the environment.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = (
    "PostgreSQL is needed for these tests: set TEST_DATABASE_URL to a reachable server, or "
    "install the server binaries (Debian/Ubuntu: apt-get install postgresql) so the tests can "
    "start a throwaway one. `make test` does this for you when it runs as root."
)


# Ports handed to test and bench servers come from below Linux's ephemeral range (32768 and up,
# where the OS picks ports for outgoing connections and for bind(0)): a port found free there can
# be taken by any outgoing connection on a busy machine before our server binds it. Picked at
# random, so parallel workers rarely try the same one, and never twice in one process.
PORT_RANGE = range(20_000, 32_000)
_handed_out: set[int] = set()


def free_port() -> int:
    for _ in range(200):
        port = random.choice(PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # a crowded range: let the OS choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # keep polling; report the last error on timeout
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")


def postgres_bindir() -> Path | None:
    override = os.environ.get("PG_BINDIR")
    if override and (Path(override) / "initdb").exists():
        return Path(override)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _demote_kwargs() -> dict[str, object]:
    """PostgreSQL refuses to run as root: run its binaries as `nobody` when we are root."""
    if os.geteuid() == 0:
        return {"user": "nobody", "group": "nogroup"}
    return {}


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster owned by this test run."""

    bindir: Path
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgtest-")))
    port: int = field(default_factory=free_port)

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> PostgresServer:
        os.chmod(self.base, 0o755)
        self.datadir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.base, "nobody", "nogroup")
            shutil.chown(self.datadir, "nobody", "nogroup")
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, **_demote_kwargs(),  # type: ignore[arg-type]
        )
        return self

    def start(self) -> PostgresServer:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", options,
             "-l", str(self.base / "server.log"), "-w", "-t", "60", "start"],
            check=True, capture_output=True, **_demote_kwargs(),  # type: ignore[arg-type]
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"],
            check=False, capture_output=True, **_demote_kwargs(),  # type: ignore[arg-type]
        )

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def start_throwaway_postgres() -> PostgresServer:
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError(INSTALL_HINT)
    return PostgresServer(bindir).init().start()


def reachable_postgres(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_libpq(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_scratch_database(server_url: str, prefix: str = "billing_test") -> str:
    """Create a database of our own on a server; returns its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(server_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated here, not user input
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin_url = parsed.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is needed: set TEST_REDIS_URL or apt-get install redis-server"
            )
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: tcp_open(self.port), timeout=10, what="redis to listen")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class RedisCluster:
    """A Redis Cluster of `nodes` primaries (no replicas) on free ports, each node with its own
    folder for its cluster state, created with `redis-cli --cluster create`. Its URL names the
    first node, as an operator would give one node of a managed cluster."""

    nodes: int = 3
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-cluster-")))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisCluster:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed: apt-get install "
                               "redis-server")
        self.ports = [free_port() for _ in range(self.nodes)]
        try:
            for port in self.ports:
                folder = self.base / str(port)
                folder.mkdir()
                self.processes.append(subprocess.Popen(
                    [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--cluster-enabled", "yes",
                     "--cluster-config-file", str(folder / "nodes.conf"), "--dir", str(folder),
                     # The bus on a free port of its own (not port + 10000, maybe taken).
                     "--cluster-port", str(free_port()), "--logfile", str(folder / "redis.log")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for port, process in zip(self.ports, self.processes, strict=True):
                wait_for(lambda port=port, process=process: self._listening(port, process),
                         timeout=30, what=f"redis node {port}")
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60)
            wait_for(self._ok, timeout=30, what="the redis cluster to agree on its slots")
        except BaseException:
            self.stop()
            raise
        return self

    def _listening(self, port: int, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            log = (self.base / str(port) / "redis.log")
            raise RuntimeError(f"redis node {port} exited: "
                               f"{log.read_text()[-2000:] if log.exists() else ''}")
        return tcp_open(port)

    def _ok(self) -> bool:
        cli = shutil.which("redis-cli") or "redis-cli"
        states = [subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True,
                                 text=True, timeout=5).stdout for port in self.ports]
        return all("cluster_state:ok" in state for state in states)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


def tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def postgres_server(*variables: str) -> Iterator[str]:
    """The URL of a PostgreSQL server to make scratch databases on: the first of the named
    environment variables that points at a reachable server, else a throwaway one of our own,
    destroyed on exit."""
    for name in variables:
        configured = os.environ.get(name)
        if configured and reachable_postgres(configured):
            yield configured
            return
    server = start_throwaway_postgres()
    try:
        yield server.url
    finally:
        server.destroy()


@contextmanager
def scratch_database(server_url: str, *, prefix: str = "billing_test",
                     setup: Callable[[str], object] | None = None) -> Iterator[str]:
    """A database of our own on a server (set up by `setup`, e.g. migrated), dropped on exit."""
    url = create_scratch_database(server_url, prefix=prefix)
    try:
        if setup is not None:
            setup(url)
        yield url
    finally:
        drop_database(url)
