"""Feedback: what happened to a ticket after Switchboard routed it.

A helpdesk reports outcomes as feedback events: the queue the ticket finally
ended in (a reassignment when it differs from the decision), an agent's
override with who and why, and when the ticket was opened, first answered,
escalated and resolved. A ticket may get many events over its life; each one
carries only what changed, and `fold_feedback` merges them, the latest value
of each field winning. Events are validated into `FeedbackEvent` against the
taxonomy, so an unknown queue is refused at the door with the queues allowed.

`read_feedback_file` reads a bulk export (CSV, JSONL or parquet) into valid
events and rejects that name their row and every invalid field.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.errors import DataError, FieldProblem, InvalidInputError
from features.schema import problems_from_errors
from features.taxonomy import Taxonomy

log = logging.getLogger(__name__)

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 320
MAX_REASON_CHARS = 2_000
# Events per POST /v1/feedback and per store call; a bulk file is stored in
# chunks of this size.
MAX_EVENTS_PER_CALL = 1_000
# Fields whose values `fold_feedback` merges; the override's who and why
# travel together, so a later override replaces both.
OUTCOME_FIELDS: tuple[str, ...] = (
    "decision_id",
    "final_queue",
    "priority",
    "source_system",
    "opened_at",
    "first_response_at",
    "escalated_at",
    "resolved_at",
)
_CONSISTENCY_ERROR = "feedback_consistency"
# Each of these, when given with opened_at in one event, must not precede it.
_AFTER_OPEN = ("first_response_at", "escalated_at", "resolved_at")


class FeedbackEvent(BaseModel):
    """One report of what happened to a routed ticket.

    Only `feedback_id`, `ticket_id` and one outcome are required. Validate
    with `parse_feedback` (or pass the taxonomy as validation context) so
    that queue and priority names are checked against it.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    feedback_id: str = Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="Unique per event; resending the same id stores it once.",
    )
    ticket_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    decision_id: str | None = Field(
        default=None,
        max_length=MAX_ID_CHARS,
        description=(
            "The decision this is about, kept for reviewers; metrics judge a "
            "ticket by its first decision."
        ),
    )
    final_queue: str | None = Field(
        default=None, description="The queue the ticket ended in (a taxonomy id)."
    )
    priority: str | None = Field(
        default=None, description="The priority the ticket ended with (P1..P9)."
    )
    override_by: str | None = Field(
        default=None,
        max_length=MAX_NAME_CHARS,
        description="The agent who overrode the routing; needs override_reason.",
    )
    override_reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    source_system: str | None = Field(
        default=None,
        max_length=MAX_ID_CHARS,
        description="Where the ticket came from, e.g. the alert source.",
    )
    opened_at: datetime | None = Field(
        default=None, description="When the ticket was opened, where known."
    )
    first_response_at: datetime | None = None
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    occurred_at: datetime | None = Field(
        default=None,
        description="When this happened; orders the events (default: stored time).",
    )

    @field_validator("final_queue")
    @classmethod
    def _check_queue(cls, value: str | None, info: ValidationInfo) -> str | None:
        taxonomy = _taxonomy(info)
        if value is not None and taxonomy and value not in taxonomy.queue_ids:
            raise ValueError(f"unknown queue {value[:64]!r}")
        return value

    @field_validator("priority")
    @classmethod
    def _check_priority(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        value = value.upper()
        taxonomy = _taxonomy(info)
        if taxonomy and value not in taxonomy.priority_ids:
            raise ValueError(f"unknown priority {value[:16]!r}")
        return value

    @field_validator(
        "opened_at", "first_response_at", "escalated_at", "resolved_at", "occurred_at"
    )
    @classmethod
    def _assume_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    @model_validator(mode="after")
    def _check_consistency(self) -> FeedbackEvent:
        problems = _consistency_problems(self)
        if problems:
            # Carried in the error's context so each problem keeps its field.
            summary = "; ".join(f"{field}: {message}" for field, message in problems)
            raise PydanticCustomError(
                _CONSISTENCY_ERROR,
                "{summary}",
                {"summary": summary, "problems": problems},
            )
        return self

    @property
    def has_outcome(self) -> bool:
        return any(getattr(self, name) is not None for name in OUTCOME_FIELDS) or (
            self.override_by is not None
        )


@dataclass(frozen=True)
class Outcome:
    """A ticket's feedback merged: the latest value of each field.

    Attributes:
        ticket_id: The ticket.
        events: How many feedback events went into it.
        decision_id: The decision named by the latest event that named one.
        final_queue: Where the ticket ended, None if no event said.
        override_by, override_reason: The latest override, if any.
        last_event_at: occurred_at of the newest event.
    """

    ticket_id: str
    events: int
    decision_id: str | None = None
    final_queue: str | None = None
    priority: str | None = None
    source_system: str | None = None
    opened_at: datetime | None = None
    first_response_at: datetime | None = None
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    override_by: str | None = None
    override_reason: str | None = None
    last_event_at: datetime | None = None

    @property
    def is_overridden(self) -> bool:
        return self.override_by is not None


@dataclass
class FeedbackImport:
    """What a bulk file gave: valid events and the rows refused, with why."""

    events: list[FeedbackEvent] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.events) + len(self.rejects)


@dataclass(frozen=True)
class Reject:
    """One row of a bulk file that could not be used."""

    row: int
    problems: list[FieldProblem]

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "problems": [
                {"field": p.field, "message": p.message, "limit": p.limit}
                for p in self.problems
            ],
        }


def parse_feedback(data: Any, taxonomy: Taxonomy) -> FeedbackEvent:
    """Validate one mapping into a `FeedbackEvent`, reporting every bad field.

    Raises:
        InvalidInputError: listing each invalid field, with the allowed queues
            or priorities, or the length limit, where one applies.
    """
    if not isinstance(data, Mapping):
        problem = FieldProblem(
            "event", f"expected an object, got {type(data).__name__}"
        )
        raise InvalidInputError([problem], subject="feedback")
    try:
        return FeedbackEvent.model_validate(data, context={"taxonomy": taxonomy})
    except ValidationError as err:
        problems = feedback_problems(err, taxonomy)
        raise InvalidInputError(problems, subject="feedback") from err


def parse_feedback_batch(
    items: Sequence[Any], taxonomy: Taxonomy
) -> list[FeedbackEvent]:
    """Validate many events; one bad event fails all, every problem listed.

    Fields are named by position, e.g. ``events.2.final_queue``.

    Raises:
        InvalidInputError: any event is invalid, or there are too many.
    """
    if len(items) > MAX_EVENTS_PER_CALL:
        problem = FieldProblem(
            "events", f"{len(items)} events in one call", f"{MAX_EVENTS_PER_CALL}"
        )
        raise InvalidInputError([problem], subject="feedback")
    if not items:
        problem = FieldProblem("events", "no feedback events given", "at least 1")
        raise InvalidInputError([problem], subject="feedback")

    events: list[FeedbackEvent] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        try:
            events.append(parse_feedback(item, taxonomy))
        except InvalidInputError as err:
            problems.extend(
                FieldProblem(f"events.{index}.{p.field}", p.message, p.limit)
                for p in err.problems
            )
    if problems:
        raise InvalidInputError(problems, subject="feedback")
    return events


def feedback_problems(err: ValidationError, taxonomy: Taxonomy) -> list[FieldProblem]:
    """Pydantic's errors as field problems, with the taxonomy's ids as limits."""
    problems: list[FieldProblem] = []
    field_errors = []
    for item in err.errors():
        if item["type"] == _CONSISTENCY_ERROR:
            pairs = item.get("ctx", {}).get("problems", [])
            problems.extend(FieldProblem(name, message) for name, message in pairs)
        else:
            field_errors.append(item)
    for problem in problems_from_errors(field_errors):
        if problem.message.startswith("unknown queue"):
            problem = FieldProblem(
                problem.field, problem.message, ", ".join(taxonomy.queue_ids)
            )
        elif problem.message.startswith("unknown priority"):
            problem = FieldProblem(
                problem.field, problem.message, ", ".join(taxonomy.priority_ids)
            )
        elif problem.message.startswith("Extra inputs"):
            problem = FieldProblem(problem.field, "unknown field")
        problems.append(problem)
    return problems


def fold_feedback(rows: Iterable[Mapping[str, Any]]) -> dict[str, Outcome]:
    """Merge stored feedback rows into one `Outcome` per ticket.

    Events are applied in occurred_at order (ties by seq, the order stored),
    and each field takes the latest non-empty value, so an event that sets
    only resolved_at leaves the final queue an earlier event set.
    """
    by_ticket: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_ticket.setdefault(str(row["ticket_id"]), []).append(row)

    outcomes = {}
    for ticket_id, events in by_ticket.items():
        events.sort(key=lambda row: (row["occurred_at"], row.get("seq") or 0))
        values: dict[str, Any] = {}
        for event in events:
            for name in OUTCOME_FIELDS:
                if event.get(name) is not None:
                    values[name] = event[name]
            if event.get("override_by") is not None:
                values["override_by"] = event["override_by"]
                values["override_reason"] = event.get("override_reason")
        outcomes[ticket_id] = Outcome(
            ticket_id=ticket_id,
            events=len(events),
            last_event_at=events[-1]["occurred_at"],
            **values,
        )
    return outcomes


def read_feedback_file(path: Path | str, taxonomy: Taxonomy) -> FeedbackImport:
    """Read a CSV, JSONL or parquet file of feedback events.

    Column names are the `FeedbackEvent` field names; empty cells count as
    absent. Rows are numbered from 1 (the CSV header is not a row).

    Raises:
        DataError: the file is missing, unreadable or of an unknown format.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    result = FeedbackImport()
    for number, row in _rows(path):
        if isinstance(row, FieldProblem):
            result.rejects.append(Reject(number, [row]))
            continue
        try:
            result.events.append(parse_feedback(row, taxonomy))
        except InvalidInputError as err:
            result.rejects.append(Reject(number, err.problems))
    log.info(
        "feedback file read",
        extra={"rows": result.rows, "rejects": len(result.rejects)},
    )
    return result


def _consistency_problems(event: FeedbackEvent) -> list[tuple[str, str]]:
    problems = []
    if event.override_by is not None and event.override_reason is None:
        problems.append(("override_reason", "required with override_by"))
    if event.override_reason is not None and event.override_by is None:
        problems.append(("override_by", "required with override_reason"))
    if event.override_by is not None and event.final_queue is None:
        problems.append(("final_queue", "required with an override"))
    if event.opened_at is not None:
        for name in _AFTER_OPEN:
            moment = getattr(event, name)
            if moment is not None and moment < event.opened_at:
                problems.append((name, "earlier than opened_at"))
    if not event.has_outcome:
        problems.append(
            (
                "event",
                "nothing to record: give final_queue, an override, priority, "
                "source_system or a time",
            )
        )
    return problems


def _taxonomy(info: ValidationInfo) -> Taxonomy | None:
    context = info.context or {}
    return context.get("taxonomy")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | FieldProblem]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            yield from _csv_rows(path)
        elif suffix in (".jsonl", ".ndjson"):
            yield from _jsonl_rows(path)
        elif suffix in (".parquet", ".pq"):
            yield from _parquet_rows(path)
        else:
            raise DataError(
                f"{path}: unknown format {suffix!r}; use .csv, .jsonl or .parquet"
            )
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as {suffix}: {err}") from err


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | FieldProblem]]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=1):
            if None in row:  # more cells than header names
                yield number, FieldProblem("row", "more cells than columns")
                continue
            yield number, {k: v for k, v in row.items() if v not in ("", None)}


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | FieldProblem]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                yield number, FieldProblem("row", "not valid JSON")
                continue
            if not isinstance(value, dict):
                yield number, FieldProblem("row", "expected a JSON object")
                continue
            yield number, {k: v for k, v in value.items() if v is not None}


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | FieldProblem]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for number, row in enumerate(table.to_pylist(), start=1):
        yield number, {k: v for k, v in row.items() if not _is_missing(v)}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
