"""The decision store: an append-only audit log of every routing decision.

Governance reviewers read it later to see why each ticket went where it went,
so nothing in it is ever changed: there is no update or delete API, and the
migration installs triggers that make the database itself refuse UPDATE,
DELETE (and, on PostgreSQL, TRUNCATE).

Those triggers stop mistakes, not someone who can drop them, so the rows also
form a hash chain: each row stores the `record_hash` of the row before it as
its `prev_hash`, and its own `record_hash` covers that link plus its content
(see `chain_hash`). Changing, removing or slipping in a row breaks the chain
where it happened; `monitoring.audit.verify_chain` walks it and says where.

One SQLAlchemy engine per store: a SQLite file in the state folder by default
(WAL, busy timeout, so several stream consumers can write), PostgreSQL via
``postgresql+psycopg://`` in production. The schema is created or migrated
with Alembic, run from code, when the store opens.

This module never imports ``serving``: decisions come in as mappings (what
``Decision.model_dump(mode="json")`` returns) or as any object with a
``model_dump`` method, and go out as plain dicts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, get_args

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.schema import CreateSchema
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from features.errors import SwitchboardError
from features.settings import Settings

log = logging.getLogger(__name__)

RoutingPath = Literal["http", "batch", "stream"]
ROUTING_PATHS: tuple[str, ...] = get_args(RoutingPath)

# Added by migration 0005. Rows stored before it hold NULL in them, and a
# NULL column is left out of the hashed content, so their hashes still hold.
CONTEXT_FIELDS: tuple[str, ...] = (
    "context_effect",
    "context_rule_id",
    "proposed_queue",
    "context_sources_answered",
    "context_sources_missing",
    "context_sources_used",
    "notify",
    "versions",
)
# Every field of `serving.decision.Decision`, in its order. A mapping with a
# key outside this list is refused, so a field added to `Decision` fails loudly
# here (and gets a migration) instead of silently missing from the audit log.
DECISION_FIELDS: tuple[str, ...] = (
    "decision_id",
    "ticket_id",
    "queue",
    "priority",
    "escalation",
    "escalation_reason",
    "mode",
    "confidence",
    "top_queues",
    "model_name",
    "model_version",
    "rule_id",
    "rule_set_version",
    "fallback_reason",
    "reasons",
    *CONTEXT_FIELDS,
    "latency_ms",
    "decided_at",
)
_JSON_LIST_FIELDS = (
    "context_sources_answered",
    "context_sources_missing",
    "context_sources_used",
    "notify",
)
_REQUIRED_FIELDS = frozenset(
    {
        "decision_id",
        "ticket_id",
        "queue",
        "priority",
        "mode",
        "rule_set_version",
        "decided_at",
    }
)
_FIELD_DEFAULTS: dict[str, Any] = {
    "escalation": "none",
    "escalation_reason": None,
    "confidence": None,
    "model_name": None,
    "model_version": None,
    "rule_id": None,
    "fallback_reason": None,
    "latency_ms": 0.0,
    "context_effect": None,
    "context_rule_id": None,
    "proposed_queue": None,
}

_TEXT_FIELDS = (
    "decision_id",
    "ticket_id",
    "queue",
    "priority",
    "escalation",
    "escalation_reason",
    "mode",
    "model_name",
    "model_version",
    "rule_id",
    "rule_set_version",
    "fallback_reason",
    "context_effect",
    "context_rule_id",
    "proposed_queue",
)

# The prev_hash of the first chained row, which has no predecessor.
CHAIN_GENESIS = "0" * 64
# What record_hash covers besides prev_hash: every column but the two chain
# columns. seq is in it, so moving a row to another position is a change;
# stored_at too, since reviewers read it. A column added to the table needs a
# decision here (and a new hash format for the rows hashed without it).
HASHED_COLUMNS: tuple[str, ...] = (
    "seq",
    *DECISION_FIELDS,
    "request_id",
    "channel",
    "path",
    "text_hash",
    "stored_at",
)

# Columns of a feedback event as the caller gives them (see
# `monitoring.feedback.FeedbackEvent`); the store adds seq, submitted_by and
# stored_at.
FEEDBACK_FIELDS: tuple[str, ...] = (
    "feedback_id",
    "ticket_id",
    "decision_id",
    "final_queue",
    "priority",
    "override_by",
    "override_reason",
    "source_system",
    "opened_at",
    "first_response_at",
    "escalated_at",
    "resolved_at",
    "occurred_at",
)
FEEDBACK_TIMES: tuple[str, ...] = (
    "opened_at",
    "first_response_at",
    "escalated_at",
    "resolved_at",
    "occurred_at",
)

MIGRATIONS_PATH = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same in every process that
# migrates the same PostgreSQL database.
_MIGRATION_LOCK_KEY = 7_311_958_402
# First half of the two-key advisory lock that serialises chain extension on
# PostgreSQL; the second half is a hash of the schema-qualified table name,
# so stores in different schemas of one database do not wait for each other.
_CHAIN_LOCK_NAMESPACE = 1_936_482_665
# Keys per IN list when looking for rows already stored; far below SQLite's
# bound-parameter limit whatever the batch size.
_KEY_CHUNK = 500
_SQLITE_BEGIN_OPTION = "switchboard_sqlite_begin"

T = TypeVar("T")


class StoreError(SwitchboardError):
    """The decision store could not be opened, read or written."""

    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(message)


class SupportsModelDump(Protocol):
    """A pydantic model such as `serving.decision.Decision`."""

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


class DecisionSink(Protocol):
    """Anything decision records can be appended to; `DecisionStore` is one."""

    def append(self, records: Sequence[DecisionRecord]) -> int: ...


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as the store keeps it, with where and how it was routed.

    The decision is checked and normalised when the record is built, so a bad
    record fails in the caller, not later in a background writer.

    Attributes:
        decision: The `Decision` fields: decided_at a timezone-aware datetime
            in UTC, top_queues a list of {"queue", "probability"} dicts.
        request_id: The routing request, stream message or batch row key; a
            ticket has at most one decision per request id, so a redelivered
            request is stored once.
        channel: The ticket's channel (email, chat, portal, alert, api).
        path: How the ticket arrived: "http", "batch" or "stream".
        text_hash: sha256 hex digest of the ticket text, or None. The text
            itself is never stored.
    """

    decision: dict[str, Any]
    request_id: str
    channel: str
    path: RoutingPath
    text_hash: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "decision", _normalize_decision(self.decision))
        object.__setattr__(self, "channel", str(self.channel))
        if not self.request_id:
            raise ValueError("request_id must not be empty")
        if self.path not in ROUTING_PATHS:
            raise ValueError(
                f"path must be one of {', '.join(ROUTING_PATHS)}, got {self.path!r}"
            )

    @classmethod
    def from_decision(
        cls,
        decision: Mapping[str, Any] | SupportsModelDump,
        request_id: str,
        channel: str,
        path: RoutingPath,
        text: str | None = None,
    ) -> DecisionRecord:
        """Build a record from a `Decision` (or its dump), hashing the text."""
        if not isinstance(decision, Mapping):
            decision = decision.model_dump(mode="json")
        text_hash = hash_text(text) if text is not None else None
        return cls(dict(decision), request_id, channel, path, text_hash)

    @property
    def decision_id(self) -> str:
        return str(self.decision["decision_id"])

    @property
    def ticket_id(self) -> str:
        return str(self.decision["ticket_id"])


def hash_text(text: str) -> str:
    """sha256 hex digest of a ticket's text, the only trace of it stored."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """The record_hash a stored row must have, given the hash it links to.

    sha256 hex digest of the UTF-8 bytes of `prev_hash` followed directly by
    `canonical_content(row)`. `prev_hash` is the previous row's record_hash,
    or `CHAIN_GENESIS` for the first chained row.
    """
    payload = prev_hash + canonical_content(row)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def canonical_content(row: Mapping[str, Any]) -> str:
    """The `HASHED_COLUMNS` of a row as one canonical JSON text.

    An object with sorted keys, no whitespace and only ASCII (other
    characters as \\u escapes); datetimes as UTC ISO 8601 with microseconds
    (``2026-12-01T09:30:00.000000+00:00``); floats as Python's `repr`
    (shortest text that reads back to the same double), non-finite ones as
    NaN / Infinity; JSON columns (top_queues, reasons) nested as they are.
    The same row read back from SQLite or PostgreSQL gives the same text.

    The `CONTEXT_FIELDS` are left out when NULL: rows stored before they
    existed hash as they did then.

    Raises:
        KeyError: the row lacks one of `HASHED_COLUMNS` (`CONTEXT_FIELDS` may
            be absent).
        ValueError: a datetime without a timezone.
    """
    content = {
        name: row[name]
        for name in HASHED_COLUMNS
        if name not in CONTEXT_FIELDS or row.get(name) is not None
    }
    return json.dumps(
        content,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=_canonical_datetime,
    )


class _UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware datetimes in, UTC datetimes out, on every backend.

    SQLite has no timezone type and SQLAlchemy drops tzinfo when it writes
    there, so values are converted to UTC first; their fixed-width text then
    also sorts in time order.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("datetimes in the decision store need a timezone")
        in_utc = value.astimezone(UTC)
        return in_utc.replace(tzinfo=None) if dialect.name == "sqlite" else in_utc

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The tables as the store queries them. The migrations own the DDL; these
# must describe what the latest migration creates. `monitoring.cases` adds
# its tables (migration 0004) to this metadata.
metadata = sa.MetaData()
decisions_table = sa.Table(
    "decisions",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("decision_id", sa.String, nullable=False, unique=True),
    sa.Column("ticket_id", sa.String, nullable=False),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("queue", sa.String, nullable=False),
    sa.Column("priority", sa.String, nullable=False),
    sa.Column("escalation", sa.String, nullable=False),
    sa.Column("escalation_reason", sa.Text),
    sa.Column("mode", sa.String, nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("top_queues", _JSON, nullable=False),
    sa.Column("model_name", sa.String),
    sa.Column("model_version", sa.String),
    sa.Column("rule_id", sa.String),
    sa.Column("rule_set_version", sa.String, nullable=False),
    sa.Column("fallback_reason", sa.String),
    sa.Column("reasons", _JSON, nullable=False),
    sa.Column("context_effect", sa.String),
    sa.Column("context_rule_id", sa.String),
    sa.Column("proposed_queue", sa.String),
    sa.Column("context_sources_answered", _JSON),
    sa.Column("context_sources_missing", _JSON),
    sa.Column("context_sources_used", _JSON),
    sa.Column("notify", _JSON),
    sa.Column("versions", _JSON),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("decided_at", _UtcDateTime, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("text_hash", sa.String),
    sa.Column("stored_at", _UtcDateTime, nullable=False),
    # NULL only in rows stored before migration 0002; the database refuses
    # NULL in new rows.
    sa.Column("prev_hash", sa.Text, unique=True),
    sa.Column("record_hash", sa.Text),
    sa.UniqueConstraint("ticket_id", "request_id"),
)
state_events_table = sa.Table(
    "state_events",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("at", _UtcDateTime, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("payload", _JSON, nullable=False),
)

feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("feedback_id", sa.String, nullable=False, unique=True),
    sa.Column("ticket_id", sa.String, nullable=False),
    sa.Column("decision_id", sa.String),
    sa.Column("final_queue", sa.String),
    sa.Column("priority", sa.String),
    sa.Column("override_by", sa.String),
    sa.Column("override_reason", sa.Text),
    sa.Column("source_system", sa.String),
    sa.Column("opened_at", _UtcDateTime),
    sa.Column("first_response_at", _UtcDateTime),
    sa.Column("escalated_at", _UtcDateTime),
    sa.Column("resolved_at", _UtcDateTime),
    sa.Column("occurred_at", _UtcDateTime, nullable=False),
    sa.Column("submitted_by", sa.String, nullable=False),
    sa.Column("stored_at", _UtcDateTime, nullable=False),
)


class DecisionStore:
    """Append-only audit log of decisions, plus a log of service-state events.

    Opening a store creates or migrates its schema. Every call runs in its own
    transaction and is retried on transient errors (PostgreSQL restarting,
    SQLite "database is locked") with exponential backoff; past the last
    attempt it raises `StoreError`. Safe to share between threads.

    Appends extend the hash chain one writer at a time (SQLite's write lock,
    a PostgreSQL advisory lock), so `seq` has no gaps and rows become visible
    in seq order: tailing by seq misses nothing.

    Known limitation: SQLite writers take turns at one file lock, and SQLite
    does not queue them fairly, so one busy process can make another wait
    (up to `busy_timeout_s`, then a retry); past a few writers, use
    PostgreSQL. An in-memory SQLite URL gives each thread its own empty
    database, so it does not work with `DecisionWriter`.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        busy_timeout_s: float = 5.0,
        retry_attempts: int = 5,
        retry_max_wait_s: float = 2.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Open the store at `url` and bring its schema to the latest migration.

        Args:
            url: SQLAlchemy URL: ``sqlite:///path/decisions.db`` or
                ``postgresql+psycopg://user@host/db``.
            schema: PostgreSQL schema to keep the tables in, created if
                missing; None for the connection's default schema.
            busy_timeout_s: How long one SQLite statement waits for another
                process's write lock (also the PostgreSQL connect timeout).
            retry_attempts: Attempts per operation before `StoreError`.
            retry_max_wait_s: Longest backoff between two attempts.
            clock: Source of `stored_at`; UTC now by default.

        Raises:
            StoreError: the URL is unusable, or the database stayed
                unreachable through every attempt.
        """
        self._url = url
        self._safe_url = _redact(url)
        self._schema = schema
        self._retry_attempts = retry_attempts
        self._retry_max_wait_s = retry_max_wait_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._is_closed = False
        self._engine = self._create_engine(busy_timeout_s)
        try:
            self.migrate()
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        """The store's URL with any password masked."""
        return self._safe_url

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect_name(self) -> str:
        return self._engine.dialect.name

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest migration; idempotent.

        Concurrent openers are serialised (SQLite write lock, PostgreSQL
        advisory lock), so several processes may start at once.
        """
        self._run("migrate", self._upgrade_schema)

    def append(self, records: Sequence[DecisionRecord]) -> int:
        """Insert decisions in one transaction, skipping ones already stored.

        A record whose (ticket_id, request_id) or decision_id is already in the
        store, or earlier in `records`, is ignored: redelivering a request is
        safe and leaves the hash chain as it was. Inserted rows get the next
        seqs and are chained after the newest row, while holding the chain
        lock, so concurrent appenders from any number of processes still
        build one line.

        Returns:
            How many records were actually inserted.
        """
        if not records:
            return 0
        stored_at = self._clock()
        rows = [_record_row(record, stored_at) for record in records]

        def insert() -> int:
            with self._transaction(write=True) as conn:
                return self._extend_chain(conn, rows)

        inserted = self._run("append", insert)
        log.debug(
            "decisions appended",
            extra={"records": len(records), "inserted": inserted},
        )
        return inserted

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """The stored decision with this id, or None."""
        statement = sa.select(decisions_table).where(
            decisions_table.c.decision_id == decision_id
        )
        rows = self._select("get", statement)
        return rows[0] if rows else None

    def for_ticket(self, ticket_id: str) -> list[dict[str, Any]]:
        """Every decision stored for a ticket, oldest first."""
        statement = (
            sa.select(decisions_table)
            .where(decisions_table.c.ticket_id == ticket_id)
            .order_by(decisions_table.c.seq)
        )
        return self._select("for_ticket", statement)

    def has(self, ticket_id: str, request_id: str) -> bool:
        """Whether this routing request of this ticket already has a decision."""
        statement = sa.select(decisions_table.c.seq).where(
            decisions_table.c.ticket_id == ticket_id,
            decisions_table.c.request_id == request_id,
        )
        return bool(self._select("has", statement))

    def count(self) -> int:
        """How many decisions are stored."""
        statement = sa.select(sa.func.count()).select_from(decisions_table)

        def read() -> int:
            with self._transaction(write=False) as conn:
                return int(conn.execute(statement).scalar_one())

        return self._run("count", read)

    def iter_decisions(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Stored decisions in append order, optionally within a time range.

        Args:
            since: Only decisions with decided_at at or after this time.
            until: Only decisions with decided_at before this time.
            batch_size: Rows per query; each page is its own short read, so
                iterating slowly never holds a lock or a transaction open.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        column = decisions_table.c
        conditions = []
        if since is not None:
            conditions.append(column.decided_at >= since)
        if until is not None:
            conditions.append(column.decided_at < until)

        last_seq = 0
        while True:
            statement = (
                sa.select(decisions_table)
                .where(column.seq > last_seq, *conditions)
                .order_by(column.seq)
                .limit(batch_size)
            )
            page = self._select("iter_decisions", statement)
            yield from page
            if len(page) < batch_size:
                return
            last_seq = page[-1]["seq"]

    def append_event(
        self, kind: str, payload: Mapping[str, Any], at: datetime | None = None
    ) -> int:
        """Record one service-state event (drift switch, model swap, summary).

        Args:
            kind: What happened, e.g. "drift_detected"; events are read by it.
            payload: JSON-serialisable details.
            at: When it happened; the store's clock by default.

        Returns:
            The event's seq.
        """
        if not kind:
            raise ValueError("kind must not be empty")
        row = {"at": at or self._clock(), "kind": kind, "payload": dict(payload)}
        statement = sa.insert(state_events_table).returning(state_events_table.c.seq)

        def insert() -> int:
            with self._transaction(write=True) as conn:
                return int(conn.execute(statement, row).scalar_one())

        return self._run("append_event", insert)

    def events(
        self, kind: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """State events in append order, of one kind and from a time if given."""
        column = state_events_table.c
        statement = sa.select(state_events_table).order_by(column.seq)
        if kind is not None:
            statement = statement.where(column.kind == kind)
        if since is not None:
            statement = statement.where(column.at >= since)
        return self._select("events", statement)

    def append_feedback(
        self,
        events: Sequence[Mapping[str, Any] | SupportsModelDump],
        submitted_by: str,
    ) -> list[str]:
        """Insert feedback events in one transaction, once per feedback id.

        An event whose feedback_id is already stored, or earlier in `events`,
        is skipped, so resending a batch is safe. Feedback is append-only like
        decisions: a correction is a new event, and readers take the latest
        value of each field (see `monitoring.feedback.fold_feedback`).

        Args:
            events: `FeedbackEvent`s or mappings with keys from
                `FEEDBACK_FIELDS`; occurred_at defaults to the store's clock.
            submitted_by: Who sent them (an API key's name, a CLI user).

        Returns:
            The feedback ids actually inserted, in the order given.
        """
        if not events:
            return []
        stored_at = self._clock()
        rows = []
        seen: set[str] = set()
        for event in events:
            row = _normalize_feedback(event, stored_at)
            if row["feedback_id"] in seen:
                continue
            seen.add(row["feedback_id"])
            rows.append({**row, "submitted_by": submitted_by, "stored_at": stored_at})

        def insert() -> list[str]:
            # ON CONFLICT rather than a look-up first: two clients sending the
            # same event at once must not make either fail.
            statement = insert_ignoring(
                self.dialect_name, feedback_table, ["feedback_id"]
            ).returning(feedback_table.c.feedback_id)
            with self._transaction(write=True) as conn:
                inserted = set(conn.execute(statement, rows).scalars())
            return [
                row["feedback_id"] for row in rows if row["feedback_id"] in inserted
            ]

        inserted = self._run("append_feedback", insert)
        log.debug(
            "feedback appended",
            extra={"events": len(events), "inserted": len(inserted)},
        )
        return inserted

    def iter_feedback(
        self,
        *,
        ticket_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Stored feedback events in append order.

        Args:
            ticket_ids: Only events about these tickets.
            since: Only events that occurred at or after this time.
            until: Only events that occurred before this time.
            batch_size: Rows per query, each page its own short read.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        column = feedback_table.c
        conditions = []
        if since is not None:
            conditions.append(column.occurred_at >= since)
        if until is not None:
            conditions.append(column.occurred_at < until)
        if ticket_ids is not None:
            for start in range(0, len(ticket_ids), _KEY_CHUNK):
                chunk = list(ticket_ids[start : start + _KEY_CHUNK])
                yield from self._feedback_pages(
                    [*conditions, column.ticket_id.in_(chunk)], batch_size
                )
            return
        yield from self._feedback_pages(conditions, batch_size)

    def feedback_for_ticket(self, ticket_id: str) -> list[dict[str, Any]]:
        """Every feedback event stored for a ticket, oldest first."""
        return list(self.iter_feedback(ticket_ids=[ticket_id]))

    def run(self, operation: str, work: Callable[[], T]) -> T:
        """Run `work` with this store's retries, for stores on the same database.

        Transient errors are retried as for the store's own calls; past the
        last attempt, or on any other database error, it raises `StoreError`
        naming `operation`. `work` must be safe to run again from the start,
        such as one `transaction` that rolls back when it fails.
        """
        return self._run(operation, work)

    def transaction(self, *, write: bool) -> AbstractContextManager[Connection]:
        """A connection in one transaction on this store's schema.

        Args:
            write: Take the write lock up front (SQLite's BEGIN IMMEDIATE).
        """
        return self._transaction(write=write)

    def close(self) -> None:
        """Release every pooled connection; the store cannot be used after."""
        self._is_closed = True
        self._engine.dispose()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DecisionStore({self._safe_url!r}, schema={self._schema!r})"

    def _create_engine(self, busy_timeout_s: float) -> Engine:
        try:
            parsed = make_url(self._url)
        except ArgumentError as err:
            raise StoreError(
                f"decision store URL {self._url!r} is not a SQLAlchemy URL; set "
                "SWITCHBOARD_DATABASE_URL to e.g. sqlite:///path/decisions.db",
                url=self._safe_url,
            ) from err

        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(
                f"decision store {self._safe_url} uses {backend}; only SQLite "
                "and PostgreSQL (postgresql+psycopg://) are supported",
                url=self._safe_url,
            )
        if backend == "sqlite" and self._schema is not None:
            raise StoreError(
                f"schema {self._schema!r} given for SQLite store "
                f"{self._safe_url}; schemas apply to PostgreSQL only",
                url=self._safe_url,
            )

        try:
            if backend == "sqlite":
                return _create_sqlite_engine(parsed, busy_timeout_s)
            return sa.create_engine(
                self._url,
                pool_pre_ping=True,
                connect_args={"connect_timeout": max(1, round(busy_timeout_s))},
            )
        except ImportError as err:
            raise StoreError(
                f"no database driver for {self._safe_url}: {err}; use "
                "postgresql+psycopg:// for PostgreSQL (psycopg 3 is installed)",
                url=self._safe_url,
            ) from err

    def _upgrade_schema(self) -> None:
        with self._transaction(write=True, translate_schema=False) as conn:
            if self.dialect_name == "postgresql":
                # Held to the end of the transaction: a second process opening
                # the store waits here, then finds the schema at head.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": _MIGRATION_LOCK_KEY},
                )
                if self._schema is not None:
                    conn.execute(CreateSchema(self._schema, if_not_exists=True))
            command.upgrade(_alembic_config(conn, self._schema), "head")

    @contextmanager
    def _transaction(
        self, *, write: bool, translate_schema: bool = True
    ) -> Iterator[Connection]:
        if self._is_closed:
            raise StoreError(
                f"decision store {self._safe_url} is closed; open a new DecisionStore",
                url=self._safe_url,
            )
        with self._engine.connect() as conn:
            options: dict[str, Any] = {}
            if write:
                # Take SQLite's write lock up front: a deferred transaction
                # that upgrades later can fail at once instead of waiting.
                options[_SQLITE_BEGIN_OPTION] = "IMMEDIATE"
            if translate_schema and self._schema is not None:
                options["schema_translate_map"] = {None: self._schema}
            conn.execution_options(**options)
            with conn.begin():
                yield conn

    def _extend_chain(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        self._lock_chain(conn)
        new_rows = _skip_stored(conn, rows)
        if not new_rows:
            return 0

        head_seq, prev_hash = _chain_head(conn)
        chained = []
        for seq, row in enumerate(new_rows, start=head_seq + 1):
            linked = {**row, "seq": seq, "prev_hash": prev_hash}
            prev_hash = linked["record_hash"] = chain_hash(prev_hash, linked)
            chained.append(linked)

        # No ON CONFLICT: under the lock nothing can have taken these keys
        # since _skip_stored; if something did, failing beats a broken chain.
        conn.execute(sa.insert(decisions_table), chained)
        return len(chained)

    def _lock_chain(self, conn: Connection) -> None:
        # SQLite: BEGIN IMMEDIATE already made this the only writer.
        if self.dialect_name != "postgresql":
            return
        # Released at commit or rollback, after the new head is visible.
        conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(:namespace, hashtext("
                "coalesce(CAST(:schema AS text), current_schema()) || '.decisions'))"
            ),
            {"namespace": _CHAIN_LOCK_NAMESPACE, "schema": self._schema},
        )

    def _feedback_pages(
        self, conditions: list[Any], batch_size: int
    ) -> Iterator[dict[str, Any]]:
        column = feedback_table.c
        last_seq = 0
        while True:
            statement = (
                sa.select(feedback_table)
                .where(column.seq > last_seq, *conditions)
                .order_by(column.seq)
                .limit(batch_size)
            )
            page = self._select("iter_feedback", statement)
            yield from page
            if len(page) < batch_size:
                return
            last_seq = page[-1]["seq"]

    def _select(
        self, operation: str, statement: sa.Select[Any]
    ) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._transaction(write=False) as conn:
                return [dict(row) for row in conn.execute(statement).mappings()]

        return self._run(operation, read)

    def _run(self, operation: str, work: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self._retry_attempts),
            # Jitter keeps processes that failed together from retrying in step.
            wait=wait_exponential(multiplier=0.05, max=self._retry_max_wait_s)
            + wait_random(0, 0.05),
            retry=retry_if_exception(_is_transient),
            before_sleep=self._log_retry(operation),
            reraise=True,
        )
        try:
            return retrying(work)
        except SQLAlchemyError as err:
            raise self._store_error(operation, err) from err

    def _log_retry(self, operation: str) -> Callable[[RetryCallState], None]:
        def log_attempt(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "decision store unavailable, retrying",
                extra={
                    "operation": operation,
                    "attempt": state.attempt_number,
                    "url": self._safe_url,
                    "error": type(error).__name__,
                },
            )

        return log_attempt

    def _store_error(self, operation: str, err: SQLAlchemyError) -> StoreError:
        detail = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        if _is_transient(err):
            next_step = (
                "check that the database is up and reachable (for SQLite, "
                "that no other process holds a long write lock); nothing was "
                "written by this call, so it is safe to retry"
            )
            attempts = f" after {self._retry_attempts} attempts"
        else:
            next_step = (
                "check SWITCHBOARD_DATABASE_URL and that the schema was "
                "migrated by this version of Switchboard"
            )
            attempts = ""
        return StoreError(
            f"decision store {self._safe_url}: {operation} failed{attempts}: "
            f"{detail}; {next_step}",
            url=self._safe_url,
        )


def open_store(settings: Settings, *, schema: str | None = None) -> DecisionStore:
    """The decision store these settings point at, migrated and ready."""
    return DecisionStore(
        settings.resolved_database_url(), schema=schema or settings.database_schema
    )


def _normalize_decision(decision: Mapping[str, Any]) -> dict[str, Any]:
    # Checked here, in the caller, because a record the database refuses
    # would otherwise block a background writer's queue behind it.
    unknown = sorted(set(decision) - set(DECISION_FIELDS))
    if unknown:
        raise ValueError(
            f"decision has fields the store has no column for: {', '.join(unknown)}"
            "; add a migration before adding fields to Decision"
        )
    missing = sorted(name for name in _REQUIRED_FIELDS if decision.get(name) is None)
    if missing:
        raise ValueError(f"decision is missing required fields: {', '.join(missing)}")

    given = {name: value for name, value in decision.items() if value is not None}
    values = {**_FIELD_DEFAULTS, **given}
    for name in _TEXT_FIELDS:
        if values[name] is not None and not isinstance(values[name], str):
            kind = type(values[name]).__name__
            raise ValueError(f"decision field {name} must be a string, got {kind}")
    for name in ("confidence", "latency_ms"):
        if values[name] is not None:
            values[name] = _as_number(name, values[name])
    values["decided_at"] = _as_utc(values["decided_at"])
    values["top_queues"] = [dict(score) for score in values.get("top_queues") or []]
    values["reasons"] = [str(reason) for reason in values.get("reasons") or []]
    for name in _JSON_LIST_FIELDS:
        values[name] = [str(item) for item in values.get(name) or []]
    versions = values.get("versions") or {}
    values["versions"] = {str(kind): str(v) for kind, v in dict(versions).items()}
    return {name: values[name] for name in DECISION_FIELDS}


def _normalize_feedback(
    event: Mapping[str, Any] | SupportsModelDump, default_time: datetime
) -> dict[str, Any]:
    values = (
        dict(event) if isinstance(event, Mapping) else event.model_dump(mode="python")
    )
    unknown = sorted(set(values) - set(FEEDBACK_FIELDS))
    if unknown:
        raise ValueError(
            f"feedback has fields the store has no column for: {', '.join(unknown)}"
        )
    for name in ("feedback_id", "ticket_id"):
        if not values.get(name):
            raise ValueError(f"feedback is missing required field {name}")
    row: dict[str, Any] = {name: values.get(name) for name in FEEDBACK_FIELDS}
    for name in FEEDBACK_TIMES:
        if row[name] is not None:
            row[name] = _feedback_time(name, row[name])
    row["occurred_at"] = row["occurred_at"] or default_time
    return row


def insert_ignoring(dialect_name: str, table: sa.Table, keys: list[str]) -> Any:
    """INSERT into `table` that skips rows whose `keys` are already taken.

    ON CONFLICT rather than a look-up first: two writers inserting the same
    row at once must not make either fail.
    """
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=keys)


def _feedback_time(name: str, value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise ValueError(f"feedback {name} needs a timezone (use UTC), got {value!r}")
    return moment.astimezone(UTC)


def _as_number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"decision field {name} must be a number, got {value!r}"
        ) from err


def _as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise ValueError(f"decided_at needs a timezone (use UTC), got {value!r}")
    return moment.astimezone(UTC)


def _record_row(record: DecisionRecord, stored_at: datetime) -> dict[str, Any]:
    return {
        **record.decision,
        "request_id": record.request_id,
        "channel": record.channel,
        "path": record.path,
        "text_hash": record.text_hash,
        "stored_at": stored_at,
    }


def _skip_stored(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows an INSERT ... ON CONFLICT DO NOTHING would insert, in order."""
    column = decisions_table.c
    taken_ids: set[str] = set()
    taken_requests: set[tuple[str, str]] = set()
    for start in range(0, len(rows), _KEY_CHUNK):
        chunk = rows[start : start + _KEY_CHUNK]
        statement = sa.select(
            column.decision_id, column.ticket_id, column.request_id
        ).where(
            sa.or_(
                column.decision_id.in_({row["decision_id"] for row in chunk}),
                column.ticket_id.in_({row["ticket_id"] for row in chunk}),
            )
        )
        for decision_id, ticket_id, request_id in conn.execute(statement):
            taken_ids.add(decision_id)
            taken_requests.add((ticket_id, request_id))

    new_rows = []
    for row in rows:
        request = (row["ticket_id"], row["request_id"])
        if row["decision_id"] in taken_ids or request in taken_requests:
            continue
        taken_ids.add(row["decision_id"])
        taken_requests.add(request)
        new_rows.append(row)
    return new_rows


def _chain_head(conn: Connection) -> tuple[int, str]:
    """The newest row's seq and record_hash, as the next row links to them."""
    column = decisions_table.c
    statement = (
        sa.select(column.seq, column.record_hash).order_by(column.seq.desc()).limit(1)
    )
    head = conn.execute(statement).first()
    if head is None:
        return 0, CHAIN_GENESIS
    # A row from before migration 0002 has no hash: the chain starts afresh.
    return int(head.seq), head.record_hash or CHAIN_GENESIS


def _canonical_datetime(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"cannot hash a {type(value).__name__} in a decision row")
    if value.tzinfo is None:
        raise ValueError(f"datetimes in the decision store need a timezone: {value}")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _create_sqlite_engine(url: sa.URL, busy_timeout_s: float) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s})

    # pysqlite's own transaction handling defers BEGIN and cannot take the
    # write lock up front; SQLAlchemy's documented recipe is to switch it off
    # and emit BEGIN ourselves.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the one writer; it persists in the file.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _alembic_config(connection: Connection, schema: str | None) -> Config:
    config = Config()
    # Config values go through configparser interpolation: escape any %.
    config.set_main_option("script_location", str(MIGRATIONS_PATH).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def _is_transient(err: BaseException) -> bool:
    if isinstance(err, DBAPIError) and err.connection_invalidated:
        return True
    if not isinstance(err, OperationalError):
        return False
    if isinstance(err.orig, sqlite3.Error):
        # Other SQLite operational errors (no such table, read-only file,
        # disk full) will not clear by waiting a second.
        message = str(err.orig).lower()
        return "locked" in message or "busy" in message
    # psycopg raises OperationalError for connection-level failures: refused,
    # terminated by a restart, timed out.
    return True
