"""Cases: the working record of each ticket while it is open.

The decision store's `decisions` table is the audit log and never changes. A
case is what the service needs to act on a ticket later: the normalised
ticket itself (to decide it again when its context changes, to replay it
under a proposed rule set), the context and classifier answer its latest
decision used, which context sources that decision rested on, its status
(open, waiting on the customer, resolved) and its SLA times. Cases change
as tickets move; every change is also appended to `case_events`.

`CaseStore` keeps cases on the decision store's database (migration 0004):
`cases`, one row per ticket; `case_events`, append-only, what happened to
it; and `escalation_steps`, append-only, each SLA escalation level reached,
at most once per ticket, target and level, however many schedulers run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from features.errors import FieldProblem, InvalidInputError
from monitoring.store import (
    _JSON,
    DecisionStore,
    StoreError,
    _UtcDateTime,
    insert_ignoring,
    metadata,
)

log = logging.getLogger(__name__)

CaseStatus = Literal["open", "waiting_on_customer", "resolved", "closed"]
CASE_STATUSES: tuple[str, ...] = get_args(CaseStatus)
OPEN_STATUSES: frozenset[str] = frozenset({"open", "waiting_on_customer"})
DEFAULT_PAUSE_STATUSES: frozenset[str] = frozenset({"waiting_on_customer"})

DecisionEventKind = Literal["opened", "decided", "rerouted"]
CaseEventKind = Literal[
    "opened", "decided", "rerouted", "status", "first_response", "resolved"
]
CASE_EVENT_KINDS: tuple[str, ...] = get_args(CaseEventKind)
# The targets of `monitoring.sla.SlaPolicy`; declared here because the store
# keeps escalation steps per target and sla.py imports this module.
SlaTarget = Literal["first_response", "resolution"]
SLA_TARGETS: tuple[SlaTarget, ...] = get_args(SlaTarget)

_DONE_STATUSES = frozenset(CASE_STATUSES) - OPEN_STATUSES
# Keys per IN list; far below SQLite's bound-parameter limit.
_KEY_CHUNK = 500

Pause = tuple[datetime, datetime | None]


class Case(BaseModel):
    """One ticket's case as the store keeps it."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: str
    ticket: dict[str, Any] = Field(
        description="`Ticket.model_dump(mode='json')` of the normalised ticket."
    )
    account_id: str | None = None
    context: dict[str, Any] | None = Field(
        default=None,
        description="`Context.model_dump(mode='json')` the latest decision used.",
    )
    classifier_result: dict[str, Any] | None = Field(
        default=None,
        description="The classifier's raw answer for the ticket (None: not run).",
    )
    decision_id: str
    queue: str
    priority: str
    mode: str
    tier: str | None = None
    context_sources_used: list[str] = Field(default_factory=list)
    status: CaseStatus = "open"
    opened_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class EscalationStep(BaseModel):
    """One escalation level a case's SLA clock reached.

    Attributes:
        rota: The on-call rota the step goes to; None: the queue's own team.
        due_at: When the target is due; None while the clock was paused.
        fraction: Share of the target elapsed when the step was recorded.
        at: When the step was recorded (the scheduler's clock).
        seq: The store's order of steps; None until recorded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket_id: str
    target: SlaTarget
    level: str
    rota: str | None = None
    reason: str
    due_at: datetime | None
    fraction: float
    at: datetime
    decision_id: str
    sla_version: str = Field(
        description="Version of the SLA policy (targets, calendars, path) applied."
    )
    seq: int | None = None


class UnknownCaseError(StoreError):
    """No case is stored for the ticket named."""


_NULLABLE_JSON = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# On the decision store's metadata, like its own tables: migration 0004 owns
# the DDL, these describe what it (and any later migration) creates.
cases_table = sa.Table(
    "cases",
    metadata,
    sa.Column("ticket_id", sa.String, primary_key=True),
    sa.Column("ticket", _JSON, nullable=False),
    sa.Column("account_id", sa.String),
    sa.Column("context", _NULLABLE_JSON),
    sa.Column("classifier_result", _NULLABLE_JSON),
    sa.Column("decision_id", sa.String, nullable=False),
    sa.Column("queue", sa.String, nullable=False),
    sa.Column("priority", sa.String, nullable=False),
    sa.Column("mode", sa.String, nullable=False),
    sa.Column("tier", sa.String),
    sa.Column("context_sources_used", _JSON, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("opened_at", _UtcDateTime, nullable=False),
    sa.Column("first_response_at", _UtcDateTime),
    sa.Column("resolved_at", _UtcDateTime),
    sa.Column("updated_at", _UtcDateTime, nullable=False),
)
case_events_table = sa.Table(
    "case_events",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("at", _UtcDateTime, nullable=False),
    sa.Column("payload", _JSON, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
)
escalation_steps_table = sa.Table(
    "escalation_steps",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String, nullable=False),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("level", sa.String, nullable=False),
    sa.Column("rota", sa.String),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("due_at", _UtcDateTime),
    sa.Column("fraction", sa.Float, nullable=False),
    sa.Column("at", _UtcDateTime, nullable=False),
    sa.Column("decision_id", sa.String, nullable=False),
    sa.Column("sla_version", sa.String, nullable=False),
    sa.UniqueConstraint("ticket_id", "target", "level"),
)

# What a new decision changes on a stored case; status and the SLA times
# belong to the ticket's life, not to the decision.
_DECISION_COLUMNS: tuple[str, ...] = (
    "ticket",
    "account_id",
    "context",
    "classifier_result",
    "decision_id",
    "queue",
    "priority",
    "mode",
    "tier",
    "context_sources_used",
    "updated_at",
)


class CaseStore:
    """Cases, their events and escalation steps, beside the decision store.

    Uses the `DecisionStore`'s engine, schema and retries; every call is one
    transaction, retried on transient errors, raising `StoreError` past the
    last attempt. A case row changes; its events and escalation steps are
    append-only (the database refuses UPDATE and DELETE on them).

    Known limitation: a case keeps one first-response time; reopening a
    resolved case clears `resolved_at` but not `first_response_at`, so a
    reopened case's first-response target stays met and only its resolution
    clock runs again.
    """

    def __init__(self, store: DecisionStore) -> None:
        self._store = store

    @property
    def store(self) -> DecisionStore:
        return self._store

    def upsert_decided(
        self,
        case: Case,
        *,
        kind: DecisionEventKind,
        cause: dict[str, Any] | None,
        actor: str,
    ) -> bool:
        """Store a case's latest decision, and the event saying why.

        The first write of a ticket stores the whole case and an "opened"
        event. Later writes change only the decision's fields (queue,
        priority, context, ...; never status or SLA times) and record `kind`,
        "decided" for a repeated "opened". A decision already stored for the
        case changes nothing, so a redelivered request is safe.

        Args:
            case: The case as of this decision; `updated_at` is the event time.
            kind: Why it was decided: "opened" (routed on arrival), "decided"
                (decided again), "rerouted" (decided again, other queue).
            cause: JSON details of the cause: ids and reasons, never ticket
                text.
            actor: Who or what decided (router, context event, a user).

        Returns:
            Whether anything was written.
        """
        if kind not in get_args(DecisionEventKind):
            raise ValueError(f"kind must be opened, decided or rerouted, got {kind!r}")
        row = case.model_dump(mode="python")

        def write() -> bool:
            with self._store.transaction(write=True) as conn:
                return self._upsert(conn, row, kind, cause, actor)

        is_written = self._store.run("upsert_case", write)
        log.debug(
            "case decision stored",
            extra={"ticket_id": case.ticket_id, "kind": kind, "written": is_written},
        )
        return is_written

    def upsert_decided_many(
        self,
        items: Sequence[tuple[Case, dict[str, Any] | None]],
        *,
        kind: DecisionEventKind,
        actor: str,
    ) -> list[bool]:
        """`upsert_decided` for many cases (each with its cause), one transaction.

        One commit instead of one per ticket: the router keeps the cases of
        every request it decided together. If that transaction fails, each
        case is written on its own, so one bad case loses only itself; a
        case that still fails is logged with its ticket id.

        Returns:
            Whether each case was written, in order.
        """
        if kind not in get_args(DecisionEventKind):
            raise ValueError(f"kind must be opened, decided or rerouted, got {kind!r}")
        rows = [(case.model_dump(mode="python"), cause) for case, cause in items]

        def write() -> list[bool]:
            with self._store.transaction(write=True) as conn:
                return [
                    self._upsert(conn, row, kind, cause, actor) for row, cause in rows
                ]

        try:
            return self._store.run("upsert_cases", write)
        except Exception as err:  # fall back to one transaction per case
            log.warning(
                "grouped case write failed, writing one by one",
                extra={"cases": len(rows), "error": type(err).__name__},
            )
        written = []
        for case, cause in items:
            try:
                written.append(
                    self.upsert_decided(case, kind=kind, cause=cause, actor=actor)
                )
            except Exception as err:  # one lost case must not lose the others
                log.error(
                    "case not recorded",
                    extra={"ticket_id": case.ticket_id, "error": type(err).__name__},
                )
                written.append(False)
        return written

    def get(self, ticket_id: str) -> Case | None:
        """The case of this ticket, or None."""
        cases = self._cases("get_case", cases_table.c.ticket_id == ticket_id)
        return cases[0] if cases else None

    def open_cases_for_account(self, account_id: str) -> list[Case]:
        """The account's open cases, oldest first."""
        column = cases_table.c
        return self._cases(
            "open_cases_for_account",
            column.account_id == account_id,
            column.status.in_(sorted(OPEN_STATUSES)),
        )

    def open_cases(self) -> list[Case]:
        """Every open case (open or waiting on the customer), oldest first."""
        return self._cases(
            "open_cases", cases_table.c.status.in_(sorted(OPEN_STATUSES))
        )

    def cases_since(self, since: datetime) -> list[Case]:
        """Cases opened at or after `since`, oldest first."""
        return self._cases("cases_since", cases_table.c.opened_at >= since)

    def set_status(
        self, ticket_id: str, status: CaseStatus, at: datetime, actor: str
    ) -> bool:
        """Move a case to `status` and record a "status" event.

        Resolving or closing sets `resolved_at` (if unset) to `at`; moving a
        resolved or closed case back to an open status clears it. Pauses are
        derived from these events (see `pauses`).

        Returns:
            False when the case already had that status (nothing recorded).

        Raises:
            InvalidInputError: not a case status.
            UnknownCaseError: no case for the ticket.
        """
        if status not in CASE_STATUSES:
            raise InvalidInputError(
                [
                    FieldProblem(
                        "status", f"unknown status {status!r}", ", ".join(CASE_STATUSES)
                    )
                ],
                subject="case status",
            )

        def change(current: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            values: dict[str, Any] = {"status": status}
            if status in _DONE_STATUSES and current["resolved_at"] is None:
                values["resolved_at"] = at
            if status in OPEN_STATUSES and current["status"] in _DONE_STATUSES:
                values["resolved_at"] = None
            return values, {"status": status, "previous": current["status"]}

        return self._change(
            "set_status",
            ticket_id,
            "status",
            at,
            actor,
            change,
            is_noop=lambda current: current["status"] == status,
        )

    def record_first_response(
        self, ticket_id: str, at: datetime, actor: str = "system"
    ) -> bool:
        """Record the ticket's first response; later ones change nothing.

        Returns:
            False when a first response was already recorded.

        Raises:
            UnknownCaseError: no case for the ticket.
        """
        return self._change(
            "record_first_response",
            ticket_id,
            "first_response",
            at,
            actor,
            lambda current: ({"first_response_at": at}, {}),
            is_noop=lambda current: current["first_response_at"] is not None,
        )

    def record_resolved(
        self, ticket_id: str, at: datetime, actor: str = "system"
    ) -> bool:
        """Resolve the case at `at` (status "resolved", `resolved_at`).

        Returns:
            False when the case was already resolved or closed.

        Raises:
            UnknownCaseError: no case for the ticket.
        """
        return self._change(
            "record_resolved",
            ticket_id,
            "resolved",
            at,
            actor,
            lambda current: (
                {"status": "resolved", "resolved_at": at},
                {"status": "resolved", "previous": current["status"]},
            ),
            is_noop=lambda current: current["status"] in _DONE_STATUSES,
        )

    def events(self, ticket_id: str) -> list[dict[str, Any]]:
        """The case's events, oldest first: seq, ticket_id, kind, at, payload, actor."""
        statement = (
            sa.select(case_events_table)
            .where(case_events_table.c.ticket_id == ticket_id)
            .order_by(case_events_table.c.seq)
        )
        return self._rows("case_events", statement)

    def pauses(
        self, ticket_id: str, statuses: Collection[str] = DEFAULT_PAUSE_STATUSES
    ) -> list[Pause]:
        """When the case's clocks stood still: (start, end or None if still).

        Derived from the status each event set, in time order: a pause runs
        from entering one of `statuses` to leaving them.
        """
        return self.pauses_for([ticket_id], statuses).get(ticket_id, [])

    def pauses_for(
        self,
        ticket_ids: Sequence[str],
        statuses: Collection[str] = DEFAULT_PAUSE_STATUSES,
    ) -> dict[str, list[Pause]]:
        """`pauses` of many cases at once, by ticket id (absent: never paused)."""
        column = case_events_table.c
        changes: dict[str, list[tuple[datetime, int, str]]] = {}
        for chunk in _chunks(ticket_ids):
            statement = sa.select(
                column.ticket_id, column.seq, column.at, column.payload
            ).where(column.ticket_id.in_(chunk))
            for row in self._rows("pauses", statement):
                status = row["payload"].get("status")
                if status is not None:
                    changes.setdefault(row["ticket_id"], []).append(
                        (row["at"], row["seq"], status)
                    )
        return {
            ticket_id: pauses
            for ticket_id, events in changes.items()
            if (pauses := _pauses(sorted(events), frozenset(statuses)))
        }

    def record_escalation(self, step: EscalationStep) -> bool:
        """Record an escalation step unless its level was recorded already.

        The UNIQUE (ticket_id, target, level) constraint decides, with an
        insert that skips conflicts: of any number of schedulers recording
        the same step at once, exactly one gets True.

        Returns:
            Whether this call recorded it.
        """
        row = step.model_dump(mode="python", exclude={"seq"})
        table = escalation_steps_table
        keys = ["ticket_id", "target", "level"]
        statement = (
            insert_ignoring(self._store.dialect_name, table, keys)
            .values(**row)
            .returning(table.c.seq)
        )

        def write() -> bool:
            with self._store.transaction(write=True) as conn:
                return conn.execute(statement).first() is not None

        return self._store.run("record_escalation", write)

    def escalations(self, ticket_id: str) -> list[EscalationStep]:
        """The case's escalation steps in the order they were recorded."""
        table = escalation_steps_table
        statement = (
            sa.select(table).where(table.c.ticket_id == ticket_id).order_by(table.c.seq)
        )
        return [EscalationStep(**row) for row in self._rows("escalations", statement)]

    def escalated_levels(self, ticket_ids: Sequence[str]) -> set[tuple[str, str, str]]:
        """(ticket_id, target, level) of every step recorded for these tickets."""
        column = escalation_steps_table.c
        levels: set[tuple[str, str, str]] = set()
        for chunk in _chunks(ticket_ids):
            statement = sa.select(column.ticket_id, column.target, column.level).where(
                column.ticket_id.in_(chunk)
            )
            levels.update(
                (row["ticket_id"], row["target"], row["level"])
                for row in self._rows("escalated_levels", statement)
            )
        return levels

    def _upsert(
        self,
        conn: Connection,
        row: dict[str, Any],
        kind: str,
        cause: dict[str, Any] | None,
        actor: str,
    ) -> bool:
        column = cases_table.c
        payload = {
            "decision_id": row["decision_id"],
            "queue": row["queue"],
            "priority": row["priority"],
            "mode": row["mode"],
            "cause": cause,
        }
        inserted = conn.execute(
            insert_ignoring(self._store.dialect_name, cases_table, ["ticket_id"])
            .values(**row)
            .returning(column.ticket_id)
        ).first()
        if inserted is not None:
            payload["status"] = row["status"]
            _append_event(
                conn, row["ticket_id"], "opened", row["updated_at"], payload, actor
            )
            return True

        # Locked so two writers of one ticket cannot both read the old
        # decision (SQLite: the write transaction already is the lock).
        current = conn.execute(
            sa.select(column.decision_id, column.queue, column.priority)
            .where(column.ticket_id == row["ticket_id"])
            .with_for_update()
        ).one()
        if current.decision_id == row["decision_id"]:
            return False
        conn.execute(
            sa.update(cases_table)
            .where(column.ticket_id == row["ticket_id"])
            .values({name: row[name] for name in _DECISION_COLUMNS})
        )
        payload.update(
            previous_decision_id=current.decision_id,
            previous_queue=current.queue,
            previous_priority=current.priority,
        )
        recorded_kind = "decided" if kind == "opened" else kind
        _append_event(
            conn, row["ticket_id"], recorded_kind, row["updated_at"], payload, actor
        )
        return True

    def _change(
        self,
        operation: str,
        ticket_id: str,
        kind: CaseEventKind,
        at: datetime,
        actor: str,
        change: Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]],
        *,
        is_noop: Callable[[dict[str, Any]], bool],
    ) -> bool:
        column = cases_table.c

        def write() -> bool:
            with self._store.transaction(write=True) as conn:
                found = (
                    conn.execute(
                        sa.select(cases_table)
                        .where(column.ticket_id == ticket_id)
                        .with_for_update()
                    )
                    .mappings()
                    .first()
                )
                if found is None:
                    raise UnknownCaseError(
                        f"no case for ticket {ticket_id!r} in {self._store.url}; "
                        "its decision must be stored (upsert_decided) first",
                        url=self._store.url,
                    )
                current = dict(found)
                if is_noop(current):
                    return False
                values, payload = change(current)
                values["updated_at"] = max(current["updated_at"], at)
                conn.execute(
                    sa.update(cases_table)
                    .where(column.ticket_id == ticket_id)
                    .values(values)
                )
                _append_event(conn, ticket_id, kind, at, payload, actor)
                return True

        is_changed = self._store.run(operation, write)
        log.debug(
            "case changed",
            extra={"ticket_id": ticket_id, "kind": kind, "changed": is_changed},
        )
        return is_changed

    def _cases(self, operation: str, *conditions: Any) -> list[Case]:
        column = cases_table.c
        statement = (
            sa.select(cases_table)
            .where(*conditions)
            .order_by(column.opened_at, column.ticket_id)
        )
        return [Case(**row) for row in self._rows(operation, statement)]

    def _rows(self, operation: str, statement: sa.Select[Any]) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._store.transaction(write=False) as conn:
                return [dict(row) for row in conn.execute(statement).mappings()]

        return self._store.run(operation, read)


def _append_event(
    conn: Connection,
    ticket_id: str,
    kind: str,
    at: datetime,
    payload: dict[str, Any],
    actor: str,
) -> None:
    conn.execute(
        sa.insert(case_events_table).values(
            ticket_id=ticket_id, kind=kind, at=at, payload=payload, actor=actor
        )
    )


def _pauses(
    changes: list[tuple[datetime, int, str]], statuses: frozenset[str]
) -> list[Pause]:
    pauses: list[Pause] = []
    started: datetime | None = None
    for at, _seq, status in changes:
        if status in statuses and started is None:
            started = at
        elif status not in statuses and started is not None:
            pauses.append((started, at))
            started = None
    if started is not None:
        pauses.append((started, None))
    return pauses


def _chunks(keys: Sequence[str]) -> list[list[str]]:
    unique = sorted(set(keys))
    return [
        unique[start : start + _KEY_CHUNK]
        for start in range(0, len(unique), _KEY_CHUNK)
    ]
