"""Context and governance on decisions; notifications; config changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Decisions gain what enrichment and context rules add (the context rule and
its effect, the queue it replaced, the sources used and missing, the
notifications asked for, the versions of the governed inputs). The columns
are nullable, so adding them rewrites no row and the append-only triggers
stay in place; rows stored before this revision hash without them (see
`monitoring.store.canonical_content`).

`notifications` records each delivery attempt's outcome of a notification a
decision asked for; `config_changes` records who changed a rule set,
automation policy, SLA policy or threshold set, and why. Both are
append-only like decisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_REFUSE_FUNCTION = "switchboard_refuse_change"
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NEW_DECISION_COLUMNS = (
    ("context_effect", sa.String()),
    ("context_rule_id", sa.String()),
    ("proposed_queue", sa.String()),
    ("context_sources_answered", _JSON),
    ("context_sources_missing", _JSON),
    ("context_sources_used", _JSON),
    ("notify", _JSON),
    ("versions", _JSON),
)


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    for name, kind in NEW_DECISION_COLUMNS:
        op.add_column("decisions", sa.Column(name, kind), schema=schema)

    op.create_table(
        "notifications",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(), nullable=False),
        sa.Column("ticket_id", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("decision_id", "target", name="uq_notifications_once"),
        schema=schema,
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_notifications_ticket_id", "notifications", ["ticket_id"], schema=schema
    )
    op.create_table(
        "config_changes",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        # Per actor: a real record may follow the "unrecorded" one the
        # service makes for a version it found in force.
        sa.UniqueConstraint(
            "kind", "version", "changed_by", name="uq_config_changes_version"
        ),
        schema=schema,
        sqlite_autoincrement=True,
    )
    for table in ("notifications", "config_changes"):
        _refuse_changes(table, schema)


def downgrade() -> None:
    # Known limitation: rows stored since this revision hash their context
    # columns; dropping them makes `switchboard audit verify` report those
    # rows as changed. Downgrade only a store that is about to be rebuilt.
    schema = context.config.attributes.get("schema")
    for table in ("notifications", "config_changes"):
        if op.get_bind().dialect.name == "postgresql":
            qualified = _qualified(table, schema)
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {qualified}")
        else:
            for operation in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_{operation}")
        op.drop_table(table, schema=schema)
    for name, _ in NEW_DECISION_COLUMNS:
        op.drop_column("decisions", name, schema=schema)


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
