"""The engine's tables live on one MetaData; each concept's `tables` module adds its own.

Migrations create the tables and these modules describe them for the queries: a test compares
the two with alembic's `compare_metadata` on both backends, so they cannot drift apart.

Every key of a per-org table holds `org_id`, so the table can be distributed on it by Citus
(docs/scaling.md#past-one-postgresql). The modules declare the PostgreSQL keys; SQLite has the
same ones, except on the tables of SQLITE_ROWID_KEYED (migration 0013): there SQLite keeps `id`
alone, the only key it numbers rows by.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, MetaData

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Keyed (org_id, id) on PostgreSQL, (id) on SQLite: an INTEGER PRIMARY KEY is what makes SQLite
# number new rows, and it only does so when `id` is the whole key.
SQLITE_ROWID_KEYED = ("invoices", "credits", "payment_attempts", "meter_outbox")


def engine_metadata() -> MetaData:
    """The metadata with every table of the engine registered on it."""
    from billing_engine.access import tables as _access  # noqa: F401
    from billing_engine.audit import tables as _audit  # noqa: F401
    from billing_engine.customers import tables as _customers  # noqa: F401
    from billing_engine.invoicing import tables as _invoicing  # noqa: F401
    from billing_engine.operability import tables as _operability  # noqa: F401
    from billing_engine.payments import tables as _payments  # noqa: F401
    from billing_engine.stripe.meters import tables as _meters  # noqa: F401
    from billing_engine.stripe.reconcile import tables as _reconcile  # noqa: F401
    from billing_engine.stripe.webhooks import tables as _webhooks  # noqa: F401
    from billing_engine.subscriptions import tables as _subscriptions  # noqa: F401
    from billing_engine.throttling import tables as _throttling  # noqa: F401
    from billing_engine.usage import tables as _usage  # noqa: F401

    return metadata
