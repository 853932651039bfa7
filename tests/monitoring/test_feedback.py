"""Feedback events: validation, the append-only table, folding and bulk files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command

from features.errors import DataError, InvalidInputError
from features.taxonomy import Taxonomy, load_taxonomy
from monitoring.feedback import (
    MAX_REASON_CHARS,
    FeedbackEvent,
    fold_feedback,
    parse_feedback,
    parse_feedback_batch,
    read_feedback_file,
)
from monitoring.store import DecisionStore, _alembic_config

if TYPE_CHECKING:
    from conftest import Backend, RecordFactory

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def _event(number: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "feedback_id": f"fb-{number}",
        "ticket_id": f"T-{number}",
        "final_queue": "billing_invoicing",
        **fields,
    }


def _problems(err: pytest.ExceptionInfo[InvalidInputError]) -> dict[str, str | None]:
    return {problem.field: problem.limit for problem in err.value.problems}


# --- validation -----------------------------------------------------------


def test_valid_event_keeps_every_field_and_assumes_utc(taxonomy: Taxonomy) -> None:
    event = parse_feedback(
        _event(
            decision_id="dec-1",
            priority="p2",
            override_by="ana",
            override_reason="customer is in dunning",
            source_system="alertmanager",
            opened_at="2026-12-01T08:00:00",
            first_response_at="2026-12-01T09:20:00+01:00",
            escalated_at="2026-12-01T09:30:00Z",
            resolved_at="2026-12-01T12:00:00Z",
            occurred_at="2026-12-01T12:00:00Z",
        ),
        taxonomy,
    )

    assert event.priority == "P2"
    assert event.opened_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert event.first_response_at == datetime(2026, 12, 1, 8, 20, tzinfo=UTC)
    assert event.override_by == "ana"


def test_unknown_queue_is_refused_with_the_taxonomy_queues_as_limit(
    taxonomy: Taxonomy,
) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_feedback(_event(final_queue="billing"), taxonomy)

    limits = _problems(err)
    assert set(limits) == {"final_queue"}
    assert "billing_invoicing" in str(limits["final_queue"])
    assert "general_support" in str(limits["final_queue"])


def test_every_invalid_field_is_listed_with_its_limit(taxonomy: Taxonomy) -> None:
    data = _event(
        feedback_id="f" * 200,
        final_queue="nowhere",
        priority="P8",
        override_reason="x",
        resolved_at="yesterday-ish",
        colour="blue",
    )

    with pytest.raises(InvalidInputError) as err:
        parse_feedback(data, taxonomy)

    limits = _problems(err)
    assert set(limits) == {
        "feedback_id",
        "final_queue",
        "priority",
        "resolved_at",
        "colour",
    }
    assert limits["feedback_id"] == "128 characters"
    assert limits["priority"] == "P1, P2, P3, P4"
    assert "invalid feedback" in str(err.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"override_by": "ana"}, {"override_reason"}, id="override-without-reason"
        ),
        pytest.param(
            {"override_reason": "wrong team"}, {"override_by"}, id="reason-without-who"
        ),
        pytest.param(
            {"final_queue": None, "override_by": "ana", "override_reason": "r"},
            {"final_queue"},
            id="override-without-queue",
        ),
        pytest.param(
            {
                "opened_at": "2026-12-01T10:00:00Z",
                "first_response_at": "2026-12-01T09:00:00Z",
                "resolved_at": "2026-12-01T09:30:00Z",
            },
            {"first_response_at", "resolved_at"},
            id="times-before-open",
        ),
        pytest.param({"final_queue": None}, {"event"}, id="nothing-to-record"),
    ],
)
def test_inconsistent_events_name_each_field(
    taxonomy: Taxonomy, fields: dict[str, Any], expected: set[str]
) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_feedback(_event(**fields), taxonomy)

    assert set(_problems(err)) == expected


def test_override_reason_over_its_limit_names_the_limit(taxonomy: Taxonomy) -> None:
    data = _event(override_by="ana", override_reason="r" * (MAX_REASON_CHARS + 1))

    with pytest.raises(InvalidInputError) as err:
        parse_feedback(data, taxonomy)

    assert _problems(err) == {"override_reason": f"{MAX_REASON_CHARS} characters"}


def test_batch_errors_name_the_event_position(taxonomy: Taxonomy) -> None:
    items = [_event(1), _event(2, final_queue="nope"), "not an object"]

    with pytest.raises(InvalidInputError) as err:
        parse_feedback_batch(items, taxonomy)

    assert set(_problems(err)) == {"events.1.final_queue", "events.2.event"}


# --- the feedback table ---------------------------------------------------


def test_migration_reaches_0003_with_an_empty_feedback_table(
    store: DecisionStore, backend: Backend
) -> None:
    tables = set(sa.inspect(store.engine).get_table_names(schema=backend.schema))

    assert "feedback" in tables
    with store.engine.connect() as conn:
        version = conn.exec_driver_sql(
            f"SELECT version_num FROM {backend.table('alembic_version')}"
        ).scalar_one()
    assert version == "0005"
    assert list(store.iter_feedback()) == []


def test_upgrade_from_0002_keeps_decisions_and_adds_feedback(
    backend: Backend, make_record: RecordFactory
) -> None:
    _migrate_to(backend, "0002")
    engine = _raw_engine(backend)
    tables = sa.inspect(engine).get_table_names(schema=backend.schema)
    engine.dispose()
    assert "decisions" in tables
    assert "feedback" not in tables

    store = backend.open()  # upgrades 0002 -> 0003
    store.append([make_record(1)])
    store.append_feedback([_event(1)], submitted_by="test")

    assert store.count() == 1
    assert [row["feedback_id"] for row in store.iter_feedback()] == ["fb-1"]
    store.close()


def test_downgrade_to_0002_drops_only_the_feedback_table(
    store: DecisionStore, backend: Backend, make_record: RecordFactory
) -> None:
    store.append([make_record(1)])
    store.append_feedback([_event(1)], submitted_by="test")

    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn, backend.schema), "0002")

    tables = set(sa.inspect(store.engine).get_table_names(schema=backend.schema))
    assert "feedback" not in tables
    assert store.count() == 1


def test_appended_feedback_reads_back_with_sender_and_times(
    store: DecisionStore, taxonomy: Taxonomy
) -> None:
    event = parse_feedback(
        _event(
            1,
            override_by="ana",
            override_reason="in dunning",
            opened_at="2026-12-01T08:00:00Z",
            first_response_at="2026-12-01T08:30:00Z",
            occurred_at="2026-12-01T09:00:00Z",
        ),
        taxonomy,
    )

    assert store.append_feedback([event], submitted_by="helpdesk") == ["fb-1"]

    [row] = store.feedback_for_ticket("T-1")
    assert row["submitted_by"] == "helpdesk"
    assert row["override_reason"] == "in dunning"
    assert row["opened_at"] == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert row["first_response_at"].tzinfo is not None
    assert row["occurred_at"] == AT
    assert row["stored_at"].tzinfo is not None


def test_feedback_is_stored_once_per_feedback_id(store: DecisionStore) -> None:
    first = store.append_feedback([_event(1), _event(2), _event(1)], "test")
    again = store.append_feedback(
        [_event(2, final_queue="security"), _event(3)], "test"
    )

    assert first == ["fb-1", "fb-2"]
    assert again == ["fb-3"]
    rows = list(store.iter_feedback())
    assert [row["feedback_id"] for row in rows] == ["fb-1", "fb-2", "fb-3"]
    assert rows[1]["final_queue"] == "billing_invoicing"


def test_missing_occurred_at_takes_the_store_clock(backend: Backend) -> None:
    store = backend.open(clock=lambda: AT)

    store.append_feedback([_event(1)], "test")

    assert next(store.iter_feedback())["occurred_at"] == AT
    store.close()


def test_feedback_can_be_read_by_ticket_and_time(store: DecisionStore) -> None:
    for number in range(1, 5):
        occurred = (AT + timedelta(hours=number)).isoformat()
        store.append_feedback([_event(number, occurred_at=occurred)], "test")

    in_range = store.iter_feedback(
        since=AT + timedelta(hours=2), until=AT + timedelta(hours=4)
    )
    for_tickets = store.iter_feedback(ticket_ids=["T-1", "T-4"], batch_size=1)

    assert [row["feedback_id"] for row in in_range] == ["fb-2", "fb-3"]
    assert [row["feedback_id"] for row in for_tickets] == ["fb-1", "fb-4"]


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE {table} SET final_queue = 'security'", id="update"),
        pytest.param("DELETE FROM {table}", id="delete"),
    ],
)
def test_database_refuses_to_change_stored_feedback(
    store: DecisionStore, backend: Backend, statement: str
) -> None:
    store.append_feedback([_event(1)], "test")

    with pytest.raises(sa.exc.IntegrityError, match="append-only"):  # noqa: SIM117
        with store.engine.begin() as conn:
            conn.exec_driver_sql(statement.format(table=backend.table("feedback")))

    assert next(store.iter_feedback())["final_queue"] == "billing_invoicing"


@pytest.mark.integration
def test_postgres_refuses_to_truncate_feedback(postgres_backend: Backend) -> None:
    store = postgres_backend.open()
    store.append_feedback([_event(1)], "test")

    with pytest.raises(sa.exc.IntegrityError, match="append-only"):  # noqa: SIM117
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {postgres_backend.table('feedback')}")

    assert len(list(store.iter_feedback())) == 1
    store.close()


def test_feedback_with_a_field_the_table_lacks_is_refused(store: DecisionStore) -> None:
    with pytest.raises(ValueError, match="colour"):
        store.append_feedback([{**_event(1), "colour": "blue"}], "test")


# --- folding --------------------------------------------------------------


def test_fold_takes_the_latest_value_of_each_field_by_occurrence() -> None:
    rows = [
        _row(2, 10, final_queue="revenue_operations", override_by="ana",
             override_reason="in dunning"),
        _row(1, 9, final_queue="collections", escalated_at=AT),
        _row(3, 11, resolved_at=AT + timedelta(hours=3)),
        _row(4, 8, ticket_id="T-other", final_queue="security"),
    ]  # fmt: skip

    outcomes = fold_feedback(rows)

    outcome = outcomes["T-1"]
    assert outcome.events == 3
    assert outcome.final_queue == "revenue_operations"  # stored first, happened last
    assert outcome.escalated_at == AT
    assert outcome.resolved_at == AT + timedelta(hours=3)
    assert (outcome.override_by, outcome.override_reason) == ("ana", "in dunning")
    assert outcome.last_event_at == AT + timedelta(hours=11)
    assert outcomes["T-other"].final_queue == "security"


def test_fold_breaks_equal_times_by_store_order() -> None:
    rows = [_row(2, 1, final_queue="security"), _row(1, 1, final_queue="collections")]

    assert fold_feedback(rows)["T-1"].final_queue == "security"


def _row(seq: int, hour: int, ticket_id: str = "T-1", **fields: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "ticket_id": ticket_id,
        "occurred_at": AT + timedelta(hours=hour),
        **fields,
    }


# --- bulk files -----------------------------------------------------------


def test_csv_import_keeps_valid_rows_and_rejects_the_rest(
    tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = tmp_path / "feedback.csv"
    path.write_text(
        "feedback_id,ticket_id,final_queue,override_by,override_reason,resolved_at\n"
        "fb-1,T-1,security,,,2026-12-01T12:00:00Z\n"
        "fb-2,T-2,nowhere,,,\n"
        "fb-3,T-3,collections,ana,,\n"
        "fb-4,T-4,,,,2026-12-01T12:00:00Z\n"
    )

    result = read_feedback_file(path, taxonomy)

    assert [event.feedback_id for event in result.events] == ["fb-1", "fb-4"]
    assert [(r.row, [p.field for p in r.problems]) for r in result.rejects] == [
        (2, ["final_queue"]),
        (3, ["override_reason"]),
    ]
    assert result.rows == 4


def test_jsonl_import_reports_lines_that_are_not_json(
    tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = tmp_path / "feedback.jsonl"
    lines = [
        json.dumps(_event(1)),
        "{broken",
        "",
        json.dumps([1]),
        json.dumps(_event(2)),
    ]
    path.write_text("\n".join(lines) + "\n")

    result = read_feedback_file(path, taxonomy)

    assert [event.ticket_id for event in result.events] == ["T-1", "T-2"]
    assert [(r.row, r.problems[0].message) for r in result.rejects] == [
        (2, "not valid JSON"),
        (4, "expected a JSON object"),
    ]


def test_parquet_import_reads_timestamps_and_skips_missing_cells(
    tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = tmp_path / "feedback.parquet"
    pd.DataFrame(
        {
            "feedback_id": ["fb-1", "fb-2"],
            "ticket_id": ["T-1", "T-2"],
            "final_queue": ["security", None],
            "resolved_at": [pd.NaT, pd.Timestamp("2026-12-01T12:00:00Z")],
        }
    ).to_parquet(path)

    result = read_feedback_file(path, taxonomy)

    assert not result.rejects
    assert result.events[0].resolved_at is None
    assert result.events[1].resolved_at == datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_unknown_file_format_is_a_data_error(
    tmp_path: Path, taxonomy: Taxonomy
) -> None:
    path = tmp_path / "feedback.xlsx"
    path.write_text("x")

    with pytest.raises(DataError, match=r"\.csv, \.jsonl or \.parquet"):
        read_feedback_file(path, taxonomy)


def test_feedback_event_alone_validates_without_a_taxonomy() -> None:
    event = FeedbackEvent.model_validate(_event(final_queue="any_queue"))

    assert event.final_queue == "any_queue"


def _migrate_to(backend: Backend, revision: str) -> None:
    engine = _raw_engine(backend)
    with engine.begin() as conn:
        if backend.schema:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{backend.schema}"')
        command.upgrade(_alembic_config(conn, backend.schema), revision)
    engine.dispose()


def _raw_engine(backend: Backend) -> sa.Engine:
    return sa.create_engine(backend.url)
