"""Decisions and state events, append-only.

Revision ID: 0001
Revises:
Create Date: 2026-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("decisions", "state_events")
_REFUSE_FUNCTION = "switchboard_refuse_change"

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    schema = context.config.attributes.get("schema")

    op.create_table(
        "decisions",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(), nullable=False),
        sa.Column("ticket_id", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("priority", sa.String(), nullable=False),
        sa.Column("escalation", sa.String(), nullable=False),
        sa.Column("escalation_reason", sa.Text()),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float()),
        sa.Column("top_queues", _JSON, nullable=False),
        sa.Column("model_name", sa.String()),
        sa.Column("model_version", sa.String()),
        sa.Column("rule_id", sa.String()),
        sa.Column("rule_set_version", sa.String(), nullable=False),
        sa.Column("fallback_reason", sa.String()),
        sa.Column("reasons", _JSON, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("text_hash", sa.String()),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("decision_id", name="uq_decisions_decision_id"),
        # Also the index for lookups by ticket: ticket_id leads it.
        sa.UniqueConstraint(
            "ticket_id", "request_id", name="uq_decisions_ticket_id_request_id"
        ),
        sa.CheckConstraint(
            "path IN ('http', 'batch', 'stream')", name="ck_decisions_path"
        ),
        schema=schema,
        # Never reuse a seq, even one whose row was removed by hand.
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_decisions_decided_at", "decisions", ["decided_at"], schema=schema
    )
    op.create_index(
        "ix_decisions_model_version", "decisions", ["model_version"], schema=schema
    )

    op.create_table(
        "state_events",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        schema=schema,
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_state_events_kind_at", "state_events", ["kind", "at"], schema=schema
    )
    op.create_index("ix_state_events_at", "state_events", ["at"], schema=schema)

    _create_append_only_triggers(schema)


def downgrade() -> None:
    # Dropping tables is not stopped by the triggers: an administrator running
    # a downgrade is deliberately discarding the audit log.
    schema = context.config.attributes.get("schema")
    _drop_append_only_triggers(schema)
    op.drop_table("state_events", schema=schema)
    op.drop_table("decisions", schema=schema)


def _create_append_only_triggers(schema: str | None) -> None:
    if op.get_bind().dialect.name == "postgresql":
        function = _qualified(_REFUSE_FUNCTION, schema)
        # restrict_violation is SQLSTATE class 23, so drivers raise it as an
        # IntegrityError, like SQLite's RAISE(ABORT).
        op.execute(
            f"""
            CREATE FUNCTION {function}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% on %.% refused: the table is append-only',
                    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        for table in APPEND_ONLY_TABLES:
            # Statement level, so TRUNCATE (which fires no row trigger) is
            # refused too.
            op.execute(
                f"CREATE TRIGGER {table}_append_only "
                f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {_qualified(table, schema)} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
        return

    for table in APPEND_ONLY_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_refuse_{operation.lower()} "
                f"BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, "
                f"'{operation} on {table} refused: the table is append-only'); END"
            )


def _drop_append_only_triggers(schema: str | None) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_append_only "
                f"ON {_qualified(table, schema)}"
            )
        op.execute(f"DROP FUNCTION IF EXISTS {_qualified(_REFUSE_FUNCTION, schema)}()")
        return

    for table in APPEND_ONLY_TABLES:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_{operation}")


def _qualified(name: str, schema: str | None) -> str:
    preparer = op.get_bind().dialect.identifier_preparer
    quoted = preparer.quote(name)
    return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted
