"""Cases, their events and SLA escalation steps.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

`cases` holds one row per ticket and changes as the ticket moves (status,
first response, resolution, a new decision). `case_events` and
`escalation_steps` are append-only like decisions: the database refuses
UPDATE and DELETE (and TRUNCATE on PostgreSQL), reusing the refusing
function that 0001 created on PostgreSQL. The UNIQUE (ticket_id, target,
level) constraint is what lets any number of escalation schedulers run:
each step is inserted once, whoever gets there first.

Event kinds and case statuses are checked in code, not by the database, so
a later revision can add one without rebuilding an append-only table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("case_events", "escalation_steps")
# Created by 0001 in the same schema; its message names the table it fired on.
_REFUSE_FUNCTION = "switchboard_refuse_change"
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    schema = context.config.attributes.get("schema")

    op.create_table(
        "cases",
        sa.Column("ticket_id", sa.String(), primary_key=True),
        sa.Column("ticket", _JSON, nullable=False),
        sa.Column("account_id", sa.String()),
        sa.Column("context", _JSON),
        sa.Column("classifier_result", _JSON),
        sa.Column("decision_id", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("priority", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("tier", sa.String()),
        sa.Column("context_sources_used", _JSON, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_response_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=schema,
    )
    op.create_index("ix_cases_account_id", "cases", ["account_id"], schema=schema)
    op.create_index("ix_cases_status", "cases", ["status"], schema=schema)
    op.create_index("ix_cases_opened_at", "cases", ["opened_at"], schema=schema)

    op.create_table(
        "case_events",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        schema=schema,
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_case_events_ticket_id", "case_events", ["ticket_id", "seq"], schema=schema
    )

    op.create_table(
        "escalation_steps",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("rota", sa.String()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision_id", sa.String(), nullable=False),
        sa.Column("sla_version", sa.String(), nullable=False),
        # Also the index for lookups by ticket: ticket_id leads it.
        sa.UniqueConstraint(
            "ticket_id", "target", "level", name="uq_escalation_steps_once"
        ),
        sa.CheckConstraint(
            "target IN ('first_response', 'resolution')",
            name="ck_escalation_steps_target",
        ),
        schema=schema,
        sqlite_autoincrement=True,
    )

    for table in APPEND_ONLY_TABLES:
        _refuse_changes(table, schema)


def downgrade() -> None:
    # As in 0001: dropping the tables discards the case history on purpose.
    schema = context.config.attributes.get("schema")
    for table in APPEND_ONLY_TABLES:
        if op.get_bind().dialect.name == "postgresql":
            qualified = _qualified(table, schema)
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {qualified}")
        else:
            for operation in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_{operation}")
        op.drop_table(table, schema=schema)
    op.drop_table("cases", schema=schema)


def _refuse_changes(table: str, schema: str | None) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only "
            f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {_qualified(table, schema)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION "
            f"{_qualified(_REFUSE_FUNCTION, schema)}()"
        )
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_refuse_{operation.lower()} "
            f"BEFORE {operation} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, "
            f"'{operation} on {table} refused: the table is append-only'); END"
        )


def _qualified(name: str, schema: str | None) -> str:
    preparer = op.get_bind().dialect.identifier_preparer
    quoted = preparer.quote(name)
    return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted
