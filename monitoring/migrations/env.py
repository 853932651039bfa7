"""Alembic environment of the decision store.

Run only from code: `monitoring.store.DecisionStore.migrate()` opens the
transaction, takes the migration lock and passes the connection (and the
PostgreSQL schema, if any) in `config.attributes`. There is no alembic.ini.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "decision store migrations run through DecisionStore.migrate(), which "
        "passes the connection; offline (--sql) mode is not supported"
    )

context.configure(
    connection=connection,
    version_table_schema=config.attributes.get("schema"),
)
# The caller's transaction is already open, so this joins it: the whole
# upgrade commits or rolls back as one.
with context.begin_transaction():
    context.run_migrations()
