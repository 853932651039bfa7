"""Hash chain over decisions: prev_hash and record_hash.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-02

Adding nullable columns rewrites no row, so the append-only triggers stay in
place throughout. Rows stored before this revision keep NULL in both columns;
the database refuses a NULL in either for every row inserted after it (a
NOT VALID check on PostgreSQL, a BEFORE INSERT trigger on SQLite). A unique
index on prev_hash means two rows can never claim the same predecessor, so a
writer that somehow skipped the chain lock fails instead of forking the chain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CHECK_NAME = "ck_decisions_chained"
_SQLITE_TRIGGER = "decisions_require_chain"
_PREV_HASH_INDEX = "uq_decisions_prev_hash"


def upgrade() -> None:
    schema = context.config.attributes.get("schema")

    op.add_column("decisions", sa.Column("prev_hash", sa.Text()), schema=schema)
    op.add_column("decisions", sa.Column("record_hash", sa.Text()), schema=schema)
    op.create_index(
        _PREV_HASH_INDEX, "decisions", ["prev_hash"], unique=True, schema=schema
    )

    if op.get_bind().dialect.name == "postgresql":
        # NOT VALID: checked for every new row, never for the rows already
        # there, and adding it scans nothing.
        op.execute(
            f"ALTER TABLE {_qualified('decisions', schema)} "
            f"ADD CONSTRAINT {_CHECK_NAME} "
            "CHECK (prev_hash IS NOT NULL AND record_hash IS NOT NULL) NOT VALID"
        )
        return

    # SQLite cannot add a constraint to an existing table without copying it,
    # which the append-only triggers would refuse; a trigger does the same job.
    op.execute(
        f"CREATE TRIGGER {_SQLITE_TRIGGER} BEFORE INSERT ON decisions "
        "WHEN NEW.prev_hash IS NULL OR NEW.record_hash IS NULL "
        "BEGIN SELECT RAISE(ABORT, "
        "'INSERT on decisions refused: prev_hash and record_hash are required'); "
        "END"
    )


def downgrade() -> None:
    schema = context.config.attributes.get("schema")

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE {_qualified('decisions', schema)} "
            f"DROP CONSTRAINT IF EXISTS {_CHECK_NAME}"
        )
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {_SQLITE_TRIGGER}")
    op.drop_index(_PREV_HASH_INDEX, table_name="decisions", schema=schema)
    op.drop_column("decisions", "record_hash", schema=schema)
    op.drop_column("decisions", "prev_hash", schema=schema)


def _qualified(name: str, schema: str | None) -> str:
    preparer = op.get_bind().dialect.identifier_preparer
    quoted = preparer.quote(name)
    return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted
