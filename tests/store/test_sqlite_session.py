"""An embedded (SQLite) database is in write-ahead-log mode from its first migration, so the
engine and the alerts process of `make run` start on it side by side: a process that opens it
while another is writing does not need the file to itself."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy import text

from billing_core.sql import create_sql_engine
from billing_engine.db import migrate


def test_the_first_migration_leaves_the_file_in_wal_mode(tmp_path: Path):
    path = tmp_path / "billing.db"
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_connection_opens_and_reads_while_another_process_holds_the_write_lock(
    tmp_path: Path,
):
    path = tmp_path / "billing.db"
    migrate(f"sqlite:///{path}")
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("INSERT INTO orgs (id, name, billing_email, plan, created_at, updated_at)"
                     " VALUES ('org_w', 'W', 'w@example.com', 'team', '2026-12-07',"
                     " '2026-12-07')")
        holding.set()
        release.wait(60)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        engine = create_sql_engine(f"sqlite:///{path}", pool_size=1, application_name="t")
        with engine.connect() as conn:  # its session setup needs no lock of its own
            seen = conn.execute(text("SELECT count(*) FROM orgs")).scalar_one()
        engine.dispose()
        assert seen == 0  # the uncommitted row is not visible yet
    finally:
        release.set()
        thread.join(60)
