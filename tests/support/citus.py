"""Would the billing tables distribute on Citus, and each statement stay on one shard?

    with captured_statements(engine) as seen:
        ... drive the engine ...
    assert shard_violations(seen) == []
    assert key_violations(connection) == []

`captured_statements` records every statement an SQLAlchemy engine sends (a `before_cursor_execute`
listener) with the store function that sent it (the nearest engine or alerts frame on the stack).
`shard_violations` parses each with sqlglot (PostgreSQL dialect) and keeps those that touch a
table meant to be distributed without naming its distribution column: an equality, `IN` or
`= ANY` on it, a join on it with a table distributed the same way, or an INSERT that writes it.
A statement sent from a function of `FLEET_WIDE` is a fleet-wide job, allowed to span shards;
docs/scaling.md lists each with the reason.

`key_violations` reads the PostgreSQL catalogue and names what Citus would refuse: a distributed
table without its distribution column (or with a nullable one), a primary key, unique constraint
or unique index without it, and a foreign key between distributed tables that does not match
the distribution columns (co-located rows are found by it), or that points at a table which is
neither distributed nor a reference table.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlalchemy import Connection, Engine, event, text
from sqlglot import exp

# table -> the column it would be distributed on (docs/scaling.md#past-one-postgresql)
DISTRIBUTED = {
    "usage_hours": "org_id",
    "daily_usage": "org_id",
    "period_usage": "org_id",
    "daily_counter_resets": "org_id",
    "invoices": "org_id",
    "credits": "org_id",
    "payment_attempts": "org_id",
    "refunds": "org_id",
    "meter_outbox": "org_id",
    "subscriptions": "org_id",
    "stripe_invoices": "org_id",
    "invoice_lines": "org_id",
    "heartbeat_refusals": "org_id",
    # Keyed by instance: an instance belongs to one org, found by its id on every heartbeat.
    "instances": "instance_id",
    "instance_throttle": "instance_id",
}

# Copied to every node: the tables every org shares (docs/scaling.md#past-one-postgresql).
REFERENCE = ("orgs", "api_keys", "closed_periods")

# (module, function) -> why it may touch every shard: a job over the whole fleet run by
# housekeeping or an operator, a support view across an org's instances, or a lookup by a Stripe
# id. None is on the ingest or lookup path. docs/scaling.md lists each.
FLEET_WIDE = {
    ("billing_engine/usage/store.py", "usage_by_org"): "budget gauges, each housekeeping round",
    ("billing_engine/usage/store.py", "orgs_past_thresholds"): "budget gauges, counted in SQL",
    ("billing_engine/usage/store.py", "newest_heartbeat"): "rollup-lag gauge",
    ("billing_engine/usage/store.py", "top_orgs"): "support's heaviest-orgs view",
    ("billing_engine/usage/store.py", "rebuild_rollups"): "repair: locks usage_hours",
    ("billing_engine/usage/partitions.py", "months"): "partition upkeep",
    ("billing_engine/usage/partitions.py", "ensure"): "partition upkeep",
    ("billing_engine/usage/partitions.py", "create_partitions"): "partition upkeep",
    ("billing_engine/usage/partitions.py", "storage_bytes"): "storage gauge",
    ("billing_engine/usage/partitions.py", "stats"): "retention: a retired month",
    ("billing_engine/usage/partitions.py", "copy_out"): "retention: a retired month",
    ("billing_engine/usage/partitions.py", "drop"): "retention: a retired month",
    ("billing_engine/throttling/store.py", "count_paused_still_seen"): "throttle gauge",
    ("billing_engine/invoicing/store.py", "close_batch"): "period close, batches of orgs",
    ("billing_engine/stripe/meters/store.py", "enqueue_closed_hours"): "meter flush",
    ("billing_engine/stripe/meters/store.py", "claim_due"): "meter flush",
    ("billing_engine/stripe/meters/store.py", "make_due"): "admin flush",
    ("billing_engine/stripe/meters/store.py", "requeue_failed"): "admin requeue",
    ("billing_engine/stripe/reconcile/store.py", "invoices_for_period"): "reconciliation",
    ("billing_engine/stripe/reconcile/store.py", "sent_minutes_by_org"): "reconciliation",
    ("billing_engine/stripe/reconcile/store.py", "invoices_starting_between"): "reconciliation",
    ("billing_engine/payments/store.py", "delete_before"): "payment retention",
    ("alerts/budget/store.py", "_note"): "alerts' budget round (one INSERT ... SELECT)",
    ("billing_engine/invoicing/store.py", "mark_period_closed"): "period close",
    ("billing_engine/stripe/meters/store.py", "over_reported_hours"): "meter flush",
    ("billing_engine/stripe/meters/store.py", "mark_rejected"): "meter error report",
    ("billing_engine/stripe/meters/store.py", "oldest"): "meter gauges",
    ("billing_engine/stripe/meters/store.py", "stats"): "meter gauges",
    ("billing_engine/stripe/reconcile/store.py", "_invoices"): "reconciliation",
    ("billing_engine/throttling/store.py", "reset_daily_counter"): "admin: an org's instances",
    ("billing_engine/usage/store.py", "org_instances"): "support: an org's instances",
    ("billing_engine/stripe/credits/store.py", "claim"): "credits to Stripe, housekeeping",
    ("billing_engine/stripe/credits/store.py", "counts"): "credit gauges",
    ("billing_engine/usage/store.py", "forget_refusals"): "refusal tally retention",
    ("billing_engine/stripe/meters/store.py", "by_identifiers"): "meter error report",
    ("billing_engine/stripe/meters/store.py", "mark_rejected_for_customer"): "meter error report",
    ("billing_engine/stripe/credits/store.py", "status_of"): "admin: a credit by its id",
    ("billing_engine/stripe/credits/store.py", "retry_failed"): "admin: a credit by its id",
    ("billing_engine/customers/store.py", "search_orgs"): "support search by a Stripe id",
    ("alerts/incidents/store.py", "refused_orgs"): "post-mortem: orgs refused in an incident",
    ("billing_engine/subscriptions/store.py", "held_at_another_org"):
        "a subscription's first event at an org: the state an earlier org kept",
    ("billing_engine/subscriptions/store.py", "forget_at_other_orgs"):
        "a subscription's first row at an org: the row an earlier org kept goes",
}

_SOURCE = re.compile(r"(billing_engine|alerts)/.+\.py$")
_PARAM = re.compile(r"%\((\w+)\)s|%s")


@dataclass(frozen=True)
class Statement:
    sql: str
    module: str
    function: str


@dataclass(frozen=True)
class Violation:
    statement: Statement
    table: str
    column: str

    def __str__(self) -> str:
        return (f"{self.statement.module}:{self.statement.function} reads {self.table} "
                f"without {self.column}: {' '.join(self.statement.sql.split())[:300]}")


def _caller() -> tuple[str, str]:
    frame: Any = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        match = _SOURCE.search(name)
        if match and "/db/database.py" not in name:
            # The method a closure (`work`, a lambda) was written in.
            owner = frame.f_code.co_qualname.split(".<locals>.")[0]
            return match.group(0), owner.split(".")[-1]
        frame = frame.f_back
    return "?", "?"


@contextmanager
def captured_statements(engine: Engine) -> Iterator[set[Statement]]:
    seen: set[Statement] = set()
    lock = threading.Lock()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        module, function = _caller()
        with lock:
            seen.add(Statement(statement, module, function))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _named(column: exp.Column, table: exp.Table, wanted: str) -> bool:
    if column.name != wanted:
        return False
    qualifier = column.table
    return not qualifier or qualifier in {table.name, table.alias_or_name}


def _pinned(tree: exp.Expression, column: exp.Column) -> bool:
    """Is `column` (qualified) compared with a parameter or a list somewhere in the statement?"""
    for condition in tree.find_all(exp.EQ, exp.In):
        this = condition.this
        if (isinstance(this, exp.Column) and this.name == column.name
                and this.table == column.table):
            if isinstance(condition, exp.In) or not isinstance(condition.expression, exp.Column):
                return True
    return False


def _constrains(tree: exp.Expression, table: exp.Table, column: str) -> bool:
    """Does the statement restrict `table` on `column`, or write it?"""
    for insert in tree.find_all(exp.Insert):
        schema = insert.this
        if isinstance(schema, exp.Schema) and isinstance(schema.this, exp.Table):
            if schema.this.name == table.name and column in [c.name for c in
                                                             schema.expressions]:
                return True
    for condition in tree.find_all(exp.EQ, exp.In):
        sides = [condition.this, condition.expression] if isinstance(condition, exp.EQ) else [
            condition.this]
        for side in sides:
            if not (isinstance(side, exp.Column) and _named(side, table, column)):
                continue
            other = condition.expression if side is condition.this else condition.this
            if isinstance(condition, exp.In) or not isinstance(other, exp.Column):
                return True
            # A join on the same column of a co-located table, or on a column pinned to a
            # value elsewhere (orgs.id = :org_id).
            if other.name == column or _pinned(tree, other):
                return True
    return False


def shard_violations(statements: set[Statement]) -> list[Violation]:
    found = []
    for statement in sorted(statements, key=lambda s: (s.module, s.function, s.sql)):
        if (statement.module, statement.function) in FLEET_WIDE:
            continue
        sql = _PARAM.sub(lambda m: f":{m.group(1) or 'p'}", statement.sql)
        try:
            tree = sqlglot.parse_one(sql, read="postgres")
        except sqlglot.errors.ParseError:
            if any(name in sql for name in DISTRIBUTED):
                found.append(Violation(statement, "?", "unparsed"))
            continue
        for table in tree.find_all(exp.Table):
            column = DISTRIBUTED.get(table.name)
            if column is None:
                continue
            if not _constrains(tree, table, column):
                found.append(Violation(statement, table.name, column))
                break
    return found


_UNIQUE_INDEXES = text("""
    SELECT t.relname AS table_name, i.relname AS index_name, x.indisprimary AS is_primary,
           ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                 ORDER BY k.n)::text[] AS columns
    FROM pg_index x
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_class i ON i.oid = x.indexrelid
    WHERE x.indisunique AND t.relnamespace = current_schema()::regnamespace
    ORDER BY 1, 2
""")

_FOREIGN_KEYS = text("""
    SELECT c.conname AS name, t.relname AS table_name, p.relname AS parent,
           ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                 ORDER BY k.n)::text[] AS columns,
           ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
                 ORDER BY k.n)::text[] AS parent_columns
    FROM pg_constraint c
    JOIN pg_class t ON t.oid = c.conrelid
    JOIN pg_class p ON p.oid = c.confrelid
    WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
    ORDER BY 2, 1
""")

_COLUMNS = text("""
    SELECT table_name, column_name, is_nullable = 'YES' AS nullable
    FROM information_schema.columns WHERE table_schema = current_schema()
""")


def key_violations(conn: Connection) -> list[str]:
    """What Citus would refuse in the schema `conn` sees, one sentence each; [] when the
    DISTRIBUTED tables can be distributed as they are."""
    found = []
    columns = {(r.table_name, r.column_name): r.nullable for r in conn.execute(_COLUMNS)}
    for table, column in sorted(DISTRIBUTED.items()):
        if (table, column) not in columns:
            found.append(f"{table} has no column {column}")
        elif columns[(table, column)]:
            found.append(f"{table}.{column} may be null")
    for row in conn.execute(_UNIQUE_INDEXES):
        column = DISTRIBUTED.get(row.table_name)
        if column is not None and column not in row.columns:
            kind = "primary key" if row.is_primary else "unique index"
            found.append(f"{row.table_name}: {kind} {row.index_name} ({', '.join(row.columns)})"
                         f" lacks {column}")
    for fk in conn.execute(_FOREIGN_KEYS):
        child, parent = DISTRIBUTED.get(fk.table_name), DISTRIBUTED.get(fk.parent)
        if child is None and parent is None:
            continue
        what = (f"{fk.table_name}: foreign key {fk.name} ({', '.join(fk.columns)}) -> "
                f"{fk.parent} ({', '.join(fk.parent_columns)})")
        if child is None:
            found.append(f"{what} points at a distributed table from one that is not")
        elif parent is None:
            if fk.parent not in REFERENCE:
                found.append(f"{what} points at a table neither distributed nor reference")
        elif (child not in fk.columns
              or fk.parent_columns[fk.columns.index(child)] != parent):
            found.append(f"{what} does not match {child} to {parent}")
    return found


def fleet_wide_jobs() -> dict[tuple[str, str], str]:
    return dict(FLEET_WIDE)
