"""Leader election: only the replica holding a PostgreSQL advisory lock evaluates and sends.

The lock is taken with `pg_try_advisory_lock` on a connection of its own, outside the pool, that
stays open as long as we lead: a session-level advisory lock is held until the session ends. A
leader that dies (killed, crashed, host gone) loses its session; PostgreSQL then frees the lock
and a standby's next attempt (every LEADER_RETRY_SECONDS, 5 s by default) takes it. TCP
keepalives on both ends make a vanished host's session end within about 25 seconds.

Before each unit of work the leader checks its session with a `SELECT 1`: an error means the
session (and with it the lock) is gone, and the replica stops working until it wins the lock
again.

SQLite (embedded mode) has no advisory locks: the single process is always the leader.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from alerts.observability.metrics import AlertsMetrics

log = logging.getLogger("alerts.leader")

# One number for "the alerts evaluator" in pg_locks (classid 0, objid 8007001).
LEADER_LOCK_KEY = 8007001


def _libpq_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    from billing_core.sql import connectable_url

    plain, _args = connectable_url(url)
    return make_url(plain).set(drivername="postgresql").render_as_string(hide_password=False)


class LeaderElection:
    def __init__(self, database_url: str, *, metrics: AlertsMetrics,
                 lock_key: int = LEADER_LOCK_KEY) -> None:
        from sqlalchemy.engine import make_url

        self.metrics = metrics
        self.lock_key = lock_key
        self.embedded = make_url(database_url).get_backend_name() == "sqlite"
        self._url = "" if self.embedded else _libpq_url(database_url)
        self._conn: Any = None
        self._leader = self.embedded
        self._lock = threading.Lock()
        metrics.leader.set(1 if self._leader else 0)

    @property
    def is_leader(self) -> bool:
        return self._leader

    def try_lead(self) -> bool:
        """Check the lock if we hold it, try to take it if we do not. Returns whether we lead."""
        if self.embedded:
            return True
        with self._lock:
            if self._leader:
                if not self._alive():
                    self._lose("the leader's database session ended")
            if not self._leader:
                self._attempt()
            self.metrics.leader.set(1 if self._leader else 0)
            return self._leader

    def confirm(self) -> bool:
        """Right before work: do we still hold the lock? Cheap (one SELECT 1) when leading."""
        if self.embedded:
            return True
        with self._lock:
            if self._leader and not self._alive():
                self._lose("the leader's database session ended")
                self.metrics.leader.set(0)
            return self._leader

    def release(self) -> None:
        """Give the lock up (at shutdown) so a standby takes over at once."""
        if self.embedded:
            return
        with self._lock:
            if self._conn is not None:
                try:
                    if self._leader:
                        self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.lock_key,))
                except Exception:  # closing the session below frees it anyway
                    pass
                self._close()
            if self._leader:
                log.info("leadership released")
            self._leader = False
            self.metrics.leader.set(0)

    # -- internals ------------------------------------------------------------------------------

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(
            self._url, autocommit=True, connect_timeout=3, application_name="alerts-leader",
            keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
        )
        # The server notices a vanished client as fast as the client notices the server.
        conn.execute("SET tcp_keepalives_idle = 10")
        conn.execute("SET tcp_keepalives_interval = 5")
        conn.execute("SET tcp_keepalives_count = 3")
        conn.execute("SET statement_timeout = 5000")
        return conn

    def _attempt(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_key,)
                                     ).fetchone()
        except Exception as error:
            self._close()
            log.warning("cannot reach the database to take the leader lock",
                        extra={"reason": str(error)[:200]})
            return
        if row and row[0]:
            self._leader = True
            log.info("leadership acquired: this replica evaluates and sends",
                     extra={"lock_key": self.lock_key})

    def _alive(self) -> bool:
        try:
            self._conn.execute("SELECT 1").fetchone()
            return True
        except Exception:
            return False

    def _lose(self, why: str) -> None:
        self._leader = False
        self._close()
        log.error("leadership lost; standing by", extra={"reason": why})

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None
