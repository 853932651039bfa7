"""Governance records beside the decisions: notifications and config changes.

Both tables are append-only (migration 0005 installs the same refusing
triggers as on decisions). A notification row is the outcome of delivering
one notification a decision asked for; a config change row says who brought
a version of a rule set, automation policy, SLA policy or threshold set into
force, and why. Every decision names the versions it used (its `versions`
field), so a reviewer joins the two to see who is accountable for a route.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from monitoring.store import DecisionStore, _UtcDateTime, insert_ignoring, metadata

log = logging.getLogger(__name__)

ConfigKind = Literal["rules", "automation", "sla", "thresholds", "connectors"]
CONFIG_KINDS: tuple[str, ...] = get_args(ConfigKind)
NotificationStatus = Literal["delivered", "failed", "not_configured"]
# Who a change is put down to when the service finds a version in force that
# nobody recorded (a file edited in place, a first start).
UNRECORDED_ACTOR = "unrecorded"

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

notifications_table = sa.Table(
    "notifications",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("decision_id", sa.String, nullable=False),
    sa.Column("ticket_id", sa.String, nullable=False),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("at", _UtcDateTime, nullable=False),
    sa.UniqueConstraint("decision_id", "target"),
)
config_changes_table = sa.Table(
    "config_changes",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("changed_by", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", _UtcDateTime, nullable=False),
    sa.UniqueConstraint("kind", "version", "changed_by"),
)


class GovernanceLog:
    """Reads and appends notification outcomes and config changes."""

    def __init__(self, store: DecisionStore) -> None:
        self._store = store

    def record_notification(
        self,
        *,
        decision_id: str,
        ticket_id: str,
        target: str,
        status: NotificationStatus,
        attempts: int,
        error: str | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Record one notification's outcome; False if it was already recorded."""
        row = {
            "decision_id": decision_id,
            "ticket_id": ticket_id,
            "target": target,
            "status": status,
            "attempts": attempts,
            "error": error,
            "at": at or datetime.now(UTC),
        }
        keys = ["decision_id", "target"]
        return self._insert_once("record_notification", notifications_table, row, keys)

    def notifications(self, ticket_id: str | None = None) -> list[dict[str, Any]]:
        statement = sa.select(notifications_table).order_by(notifications_table.c.seq)
        if ticket_id is not None:
            statement = statement.where(notifications_table.c.ticket_id == ticket_id)
        return self._store._select("notifications", statement)

    def record_config_change(
        self,
        *,
        kind: ConfigKind,
        version: str,
        source: str,
        changed_by: str,
        reason: str,
        at: datetime | None = None,
    ) -> bool:
        """Record who brought a config version into force and why.

        Returns:
            False when someone already recorded that version of that kind:
            the first record of a version is the one that counts. A record
            put down to "unrecorded" (see `ensure_recorded`) does not count,
            so the real author can still be recorded after the service
            started with the version.

        Raises:
            ValueError: an unknown kind, or an empty actor or reason.
        """
        if kind not in CONFIG_KINDS:
            raise ValueError(
                f"kind must be one of {', '.join(CONFIG_KINDS)}, got {kind!r}"
            )
        missing = [
            name
            for name, value in (
                ("who made it (--by)", changed_by),
                ("why (--why)", reason),
            )
            if not value.strip()
        ]
        if missing:
            raise ValueError(f"a config change needs {' and '.join(missing)}")
        row = {
            "kind": kind,
            "version": version,
            "source": source,
            "changed_by": changed_by.strip(),
            "reason": reason.strip(),
            "at": at or datetime.now(UTC),
        }
        if changed_by.strip() != UNRECORDED_ACTOR and any(
            change["version"] == version and change["changed_by"] != UNRECORDED_ACTOR
            for change in self.config_changes(kind)
        ):
            return False
        keys = ["kind", "version", "changed_by"]
        inserted = self._insert_once(
            "record_config_change", config_changes_table, row, keys
        )
        if inserted:
            log.info(
                "config change recorded",
                extra={"kind": kind, "version": version, "changed_by": changed_by},
            )
        return inserted

    def config_changes(self, kind: str | None = None) -> list[dict[str, Any]]:
        column = config_changes_table.c
        statement = sa.select(config_changes_table).order_by(column.seq)
        if kind is not None:
            statement = statement.where(column.kind == kind)
        return self._store._select("config_changes", statement)

    def ensure_recorded(self, versions: Mapping[ConfigKind, tuple[str, str]]) -> None:
        """At start-up: record each version in force that nobody recorded.

        Args:
            versions: kind -> (version, source) of what the service loaded.
        """
        known = {(row["kind"], row["version"]) for row in self.config_changes()}
        for kind, (version, source) in versions.items():
            if (kind, version) in known:
                continue
            log.warning(
                "config version in force was never recorded; record changes with "
                "`switchboard config record`",
                extra={"kind": kind, "version": version, "source": source},
            )
            self.record_config_change(
                kind=kind,
                version=version,
                source=source,
                changed_by=UNRECORDED_ACTOR,
                reason="found in force at service start with no recorded change",
            )

    def _insert_once(
        self,
        operation: str,
        table: sa.Table,
        row: dict[str, Any],
        keys: list[str],
    ) -> bool:
        statement = insert_ignoring(self._store.dialect_name, table, keys)

        def insert() -> bool:
            with self._store.transaction(write=True) as conn:
                return bool(conn.execute(statement, row).rowcount)

        return self._store.run(operation, insert)
