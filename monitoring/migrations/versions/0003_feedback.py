"""Feedback: what happened to a ticket after routing, append-only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-03-02

One row per feedback event; a ticket may have many, and readers fold them
(the latest value of each field wins). `feedback_id` is unique, so a client
resending an event stores it once. Like decisions, the table refuses UPDATE
and DELETE (and TRUNCATE on PostgreSQL), reusing the refusing function that
0001 created on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "feedback"
# Created by 0001 in the same schema; its message names the table it fired on.
_REFUSE_FUNCTION = "switchboard_refuse_change"
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    schema = context.config.attributes.get("schema")

    op.create_table(
        TABLE,
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("feedback_id", sa.String(), nullable=False),
        sa.Column("ticket_id", sa.String(), nullable=False),
        sa.Column("decision_id", sa.String()),
        sa.Column("final_queue", sa.String()),
        sa.Column("priority", sa.String()),
        sa.Column("override_by", sa.String()),
        sa.Column("override_reason", sa.Text()),
        sa.Column("source_system", sa.String()),
        sa.Column("opened_at", sa.DateTime(timezone=True)),
        sa.Column("first_response_at", sa.DateTime(timezone=True)),
        sa.Column("escalated_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("feedback_id", name="uq_feedback_feedback_id"),
        schema=schema,
        sqlite_autoincrement=True,
    )
    op.create_index("ix_feedback_ticket_id", TABLE, ["ticket_id"], schema=schema)
    op.create_index("ix_feedback_occurred_at", TABLE, ["occurred_at"], schema=schema)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only "
            f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {_qualified(TABLE, schema)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION "
            f"{_qualified(_REFUSE_FUNCTION, schema)}()"
        )
        return

    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_refuse_{operation.lower()} "
            f"BEFORE {operation} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, "
            f"'{operation} on {TABLE} refused: the table is append-only'); END"
        )


def downgrade() -> None:
    # As in 0001: dropping the table discards feedback on purpose.
    schema = context.config.attributes.get("schema")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {_qualified(TABLE, schema)}"
        )
    else:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_refuse_{operation}")
    op.drop_table(TABLE, schema=schema)


def _qualified(name: str, schema: str | None) -> str:
    preparer = op.get_bind().dialect.identifier_preparer
    quoted = preparer.quote(name)
    return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted
