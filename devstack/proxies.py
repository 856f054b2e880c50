"""What stands in front of our processes in production, run for real from Debian's packages:
HAProxy balancing engine replicas, and PgBouncer pooling connections to PostgreSQL in
transaction mode. Each is a `ServiceProcess` (its own session, log file, readiness check),
configured by a file written into a temporary folder of its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sqlalchemy.engine import make_url

from devstack.processes import ServiceProcess


def system_binary(name: str) -> str:
    """A program from a Debian package; /usr/sbin is not on every user's PATH."""
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                   else None)
    if found is None:
        raise RuntimeError(f"{name} is needed: apt-get install {name} (make test does this)")
    return found


def _private_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)  # PgBouncer drops to `nobody` and must read its files
    return path


@dataclass
class HAProxy(ServiceProcess):
    """HAProxy in HTTP mode, round robin over `backends` (ports on 127.0.0.1), each checked on
    `/ready` every 500 ms and taken out after two failures. A request whose connection to a
    backend fails is sent to another (`retry-on conn-failure`, `option redispatch`); one whose
    backend dies after taking it is answered 502, and the client retries, as a fleet does."""

    name: ClassVar[str] = "haproxy"
    ready_path: ClassVar[str] = ""

    backends: Sequence[int] = ()
    directory: Path = field(default_factory=lambda: _private_dir("haproxy-"))

    @property
    def config_path(self) -> Path:
        return self.directory / "haproxy.cfg"

    def config(self) -> str:
        servers = "\n".join(
            f"    server engine{n} 127.0.0.1:{port} check" for n, port in enumerate(self.backends)
        )
        return f"""global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend engine
    bind 127.0.0.1:{self.port}
    default_backend engines

backend engines
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
{servers}
"""

    def prepare(self) -> None:
        self.config_path.write_text(self.config())

    def argv(self) -> list[str]:
        return [system_binary("haproxy"), "-db", "-f", str(self.config_path)]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class PgBouncer(ServiceProcess):
    """PgBouncer in transaction pooling mode in front of the PostgreSQL server of
    `server_url`: any database, as that URL's user, trusted (like the throwaway servers).
    At most `pool_size` server connections per database, whatever the clients open."""

    name: ClassVar[str] = "pgbouncer"
    ready_path: ClassVar[str] = ""

    server_url: str = ""
    pool_size: int = 10
    directory: Path = field(default_factory=lambda: _private_dir("pgbouncer-"))

    def database_url(self, database: str) -> str:
        """A URL of `database` through this PgBouncer, marked for transaction pooling."""
        server = make_url(self.server_url)
        through = server.set(host="127.0.0.1", port=self.port, database=database,
                             query={"pgbouncer": "true"})
        return through.render_as_string(hide_password=False)

    @property
    def config_path(self) -> Path:
        return self.directory / "pgbouncer.ini"

    def prepare(self) -> None:
        server = make_url(self.server_url)
        user = server.username or "postgres"
        (self.directory / "users.txt").write_text(f'"{user}" ""\n')
        self.config_path.write_text(f"""[databases]
* = host={server.host or "127.0.0.1"} port={server.port or 5432} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.directory / "users.txt"}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
""")
        for path in self.directory.iterdir():
            os.chmod(path, 0o644)

    def argv(self) -> list[str]:
        argv = [system_binary("pgbouncer")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            argv += ["-u", "nobody"]
        return [*argv, str(self.config_path)]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)
