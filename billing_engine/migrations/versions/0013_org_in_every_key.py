"""The org in every key of the per-org tables, so each can become a Citus table distributed on
`org_id` (docs/scaling.md#past-one-postgresql).

Citus wants the distribution column in every primary key and unique constraint of a distributed
table, and in every foreign key between two of them. So:

- `invoices`, `credits`, `payment_attempts`, `meter_outbox` and `subscriptions` are keyed on
  `(org_id, id)`, `refunds` on `(org_id, refund_key)`;
- `payment_attempts.event_id` is unique per org `(org_id, event_id)`, and
  `meter_outbox.identifier` too, as `(identifier, org_id)`: a Stripe error report names the
  identifier alone, and this order still finds it by the index;
- `invoice_lines` gains `org_id`, copied from its invoice, keyed `(org_id, invoice_id,
  position)`, with foreign keys `(org_id, invoice_id)` to invoices and `(org_id, credit_id)` to
  credits, so its rows sit on their invoice's shard.

SQLite is one file and is never distributed. It gets the same columns, unique constraints and
foreign keys (one set of table modules describes both backends), and the same primary keys,
except on the four tables whose `id` is SQLite's INTEGER PRIMARY KEY (`invoices`, `credits`,
`payment_attempts`, `meter_outbox`): SQLite numbers new rows only when `id` is the whole key,
so there it stays the key alone. That key is stricter, and refuses nothing the engine writes:
it never sets an id itself (PostgreSQL numbers them from one sequence per table). SQLite does
not check foreign keys here (the engine never turns `PRAGMA foreign_keys` on), so
`invoice_lines`' foreign keys to `(org_id, id)`, which SQLite has no unique index for, do no
harm.

On PostgreSQL each new key is an index built while its table is locked: on a large
`meter_outbox` run the upgrade when a few minutes of queued usage reports can wait.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Old key -> new key, per table.
KEYS = {
    "invoices": (["id"], ["org_id", "id"]),
    "credits": (["id"], ["org_id", "id"]),
    "payment_attempts": (["id"], ["org_id", "id"]),
    "meter_outbox": (["id"], ["org_id", "id"]),
    "subscriptions": (["id"], ["org_id", "id"]),
    "refunds": (["refund_key"], ["org_id", "refund_key"]),
    "invoice_lines": (["invoice_id", "position"], ["org_id", "invoice_id", "position"]),
}
# SQLite numbers these rows only while `id` is the whole key.
ROWID_KEYED = {"invoices", "credits", "payment_attempts", "meter_outbox"}
# (table, old name, old columns, new name, new columns)
UNIQUES = [
    ("payment_attempts", "payment_attempts_event_id_key", ["event_id"],
     "uq_payment_attempts_org_event", ["org_id", "event_id"]),
    ("meter_outbox", "uq_meter_outbox_identifier", ["identifier"],
     "uq_meter_outbox_identifier_org", ["identifier", "org_id"]),
]
# (name, columns, parent, parent columns): invoice_lines' foreign keys, before and after.
OLD_FKS = [
    ("invoice_lines_invoice_id_fkey", ["invoice_id"], "invoices", ["id"]),
    ("invoice_lines_credit_id_fkey", ["credit_id"], "credits", ["id"]),
]
NEW_FKS = [
    ("fk_invoice_lines_invoice", ["org_id", "invoice_id"], "invoices", ["org_id", "id"]),
    ("fk_invoice_lines_credit", ["org_id", "credit_id"], "credits", ["org_id", "id"]),
]
# Names SQLite's batch copies give the constraints it reflects without one.
SQLITE_NAMES = {
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    sqlite = _is_sqlite()
    with op.batch_alter_table("invoice_lines") as batch:
        batch.add_column(sa.Column("org_id", sa.String(64), nullable=True))
    # Before any key changes: invoices are still found by id alone.
    op.execute("UPDATE invoice_lines SET org_id = "
               "(SELECT i.org_id FROM invoices i WHERE i.id = invoice_lines.invoice_id)")
    if sqlite:
        _sqlite_upgrade()
        return
    op.alter_column("invoice_lines", "org_id", existing_type=sa.String(64), nullable=False)
    for name, _columns, _parent, _parent_columns in OLD_FKS:
        op.drop_constraint(name, "invoice_lines", type_="foreignkey")
    for table, (_old, new) in KEYS.items():
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, new)
    for table, old_name, _old, new_name, new in UNIQUES:
        op.drop_constraint(old_name, table, type_="unique")
        op.create_unique_constraint(new_name, table, new)
    for name, columns, parent, parent_columns in NEW_FKS:
        op.create_foreign_key(name, "invoice_lines", parent, columns, parent_columns)


def _sqlite_upgrade() -> None:
    for table, (_old, new) in KEYS.items():
        if table in ROWID_KEYED:
            continue
        with op.batch_alter_table(table, copy_from=_sqlite_keyed(table, new),
                                  recreate="always") as batch:
            if table == "invoice_lines":
                batch.alter_column("org_id", existing_type=sa.String(64), nullable=False)
                for _name, columns, parent, _parent_columns in OLD_FKS:
                    batch.drop_constraint(f"fk_invoice_lines_{columns[0]}_{parent}",
                                          type_="foreignkey")
                for name, columns, parent, parent_columns in NEW_FKS:
                    batch.create_foreign_key(name, parent, columns, parent_columns)
    for table, old_name, old, new_name, new in UNIQUES:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint(_sqlite_unique(table, old_name, old), type_="unique")
            batch.create_unique_constraint(new_name, new)


def _sqlite_unique(table: str, name: str, columns: list[str]) -> str:
    """An old unique constraint's name on SQLite: 0003 left payment_attempts' unnamed."""
    return name if table == "meter_outbox" else f"uq_{table}_{columns[0]}"


def _sqlite_keyed(name: str, key: list[str]) -> sa.Table:
    """The table as SQLite holds it, with `key` for its primary key, for a batch copy to start
    from: alembic's batch mode cannot replace the primary key of a table it reflects. Its
    unnamed constraints are named by SQLITE_NAMES, so the batch can drop them."""
    table = sa.Table(name, sa.MetaData(naming_convention=SQLITE_NAMES),
                     autoload_with=op.get_bind())
    for column in table.columns:
        column.primary_key = False
    table.append_constraint(sa.PrimaryKeyConstraint(*key, name=f"{name}_pkey"))
    return table


def downgrade() -> None:
    if _is_sqlite():
        _sqlite_downgrade()
        return
    for name, _columns, _parent, _parent_columns in NEW_FKS:
        op.drop_constraint(name, "invoice_lines", type_="foreignkey")
    for table, old_name, old, new_name, _new in UNIQUES:
        op.drop_constraint(new_name, table, type_="unique")
        op.create_unique_constraint(old_name, table, old)
    for table, (old, _new) in KEYS.items():
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, old)
    for name, columns, parent, parent_columns in OLD_FKS:
        op.create_foreign_key(name, "invoice_lines", parent, columns, parent_columns)
    op.drop_column("invoice_lines", "org_id")


def _sqlite_downgrade() -> None:
    for table, old_name, old, new_name, _new in UNIQUES:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint(new_name, type_="unique")
            batch.create_unique_constraint(_sqlite_unique(table, old_name, old), old)
    for table, (old, _new) in KEYS.items():
        if table in ROWID_KEYED:
            continue
        with op.batch_alter_table(table, copy_from=_sqlite_keyed(table, old),
                                  recreate="always") as batch:
            if table == "invoice_lines":
                for name, _columns, _parent, _parent_columns in NEW_FKS:
                    batch.drop_constraint(name, type_="foreignkey")
                for _name, columns, parent, parent_columns in OLD_FKS:
                    # The name an upgrade gives 0005's unnamed ones.
                    batch.create_foreign_key(f"fk_invoice_lines_{columns[0]}_{parent}",
                                             parent, columns, parent_columns)
                batch.drop_column("org_id")
