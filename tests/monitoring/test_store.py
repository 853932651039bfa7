"""The decision store: an append-only audit log on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from monitoring.store import (
    DECISION_FIELDS,
    DecisionRecord,
    DecisionStore,
    StoreError,
    open_store,
)
from serving.decision import Decision, QueueScore

if TYPE_CHECKING:
    from conftest import Backend, RecordFactory

BASE_TIME = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_migration_creates_every_table_at_head(
    store: DecisionStore, backend: Backend
) -> None:
    inspector = sa.inspect(store.engine)
    tables = set(inspector.get_table_names(schema=backend.schema))

    assert {
        "decisions",
        "state_events",
        "feedback",
        "cases",
        "case_events",
        "escalation_steps",
        "notifications",
        "config_changes",
        "alembic_version",
    } <= tables
    with store.engine.connect() as conn:
        version = conn.exec_driver_sql(
            f"SELECT version_num FROM {backend.table('alembic_version')}"
        ).scalar_one()
    assert version == "0005"


def test_migration_run_again_changes_nothing(
    store: DecisionStore, backend: Backend, make_record: RecordFactory
) -> None:
    store.append([make_record(1)])

    store.migrate()
    store.migrate()
    reopened = backend.open()

    assert reopened.count() == 1
    assert reopened.get("dec-00001") is not None
    reopened.close()


def test_appended_decision_reads_back_every_field(store: DecisionStore) -> None:
    paris = timezone(timedelta(hours=1))
    decision = Decision(
        decision_id="dec-full",
        ticket_id="T-full",
        queue="security",
        priority="p1",
        escalation="incident_commander",
        escalation_reason="sev-1 alert",
        mode="override",
        confidence=0.4375,
        top_queues=[
            QueueScore(queue="security", probability=0.4375),
            QueueScore(queue="platform_operations", probability=0.3125),
        ],
        model_name="switchboard-router",
        model_version="12",
        rule_id="override.security_incident",
        rule_set_version="2026.11",
        fallback_reason="low_confidence",
        reasons=["override rule matched", "model below threshold"],
        latency_ms=3.25,
        decided_at=datetime(2026, 12, 1, 10, 30, 15, 123456, tzinfo=paris),
    )
    record = DecisionRecord.from_decision(
        decision, "req-full", "alert", "stream", text="Disk full on db-1"
    )

    assert store.append([record]) == 1
    row = store.get("dec-full")

    assert row is not None
    stored = Decision.model_validate({name: row[name] for name in DECISION_FIELDS})
    assert stored == decision
    assert row["decided_at"].utcoffset() == timedelta(0)
    assert row["top_queues"] == [
        {"queue": "security", "probability": 0.4375},
        {"queue": "platform_operations", "probability": 0.3125},
    ]
    assert (row["request_id"], row["channel"], row["path"]) == (
        "req-full",
        "alert",
        "stream",
    )
    assert row["text_hash"] == hashlib.sha256(b"Disk full on db-1").hexdigest()
    assert row["stored_at"].tzinfo is not None
    assert "Disk full on db-1" not in repr(row)


def test_decision_dumped_as_json_is_stored_like_the_model(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    decision = Decision(**_decision_fields(5))
    record = DecisionRecord.from_decision(
        decision.model_dump(mode="json"), "req-00005", "chat", "batch"
    )

    store.append([record])
    row = store.get("dec-00005")

    assert row is not None
    assert row["decided_at"] == decision.decided_at
    assert row["text_hash"] is None


def test_redelivered_request_is_ignored_and_counted_as_not_inserted(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    first = make_record(1)
    redelivered = make_record(99, ticket_id="T-00001", request_id="req-00001")

    assert store.append([first]) == 1
    assert store.append([first]) == 0
    assert store.append([redelivered]) == 0

    assert store.count() == 1
    assert store.get("dec-00099") is None


def test_same_ticket_with_another_request_is_a_second_decision(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    first = make_record(1, ticket_id="T-7", request_id="req-a")
    second = make_record(2, ticket_id="T-7", request_id="req-b")

    assert store.append([first, second]) == 2

    assert [row["decision_id"] for row in store.for_ticket("T-7")] == [
        "dec-00001",
        "dec-00002",
    ]
    assert store.has("T-7", "req-b")
    assert not store.has("T-7", "req-c")


def test_reused_decision_id_is_ignored(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    store.append([make_record(1)])

    assert store.append([make_record(1, request_id="req-other")]) == 0
    assert store.count() == 1


def test_duplicates_inside_one_batch_are_stored_once(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    batch = [make_record(1), make_record(2), make_record(1), make_record(3)]

    assert store.append(batch) == 3
    assert store.count() == 3


def test_appending_nothing_inserts_nothing(store: DecisionStore) -> None:
    assert store.append([]) == 0


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        pytest.param("decisions", "UPDATE {table} SET queue = 'x'", id="update"),
        pytest.param("decisions", "DELETE FROM {table}", id="delete"),
        pytest.param(
            "state_events", "UPDATE {table} SET kind = 'x'", id="update-events"
        ),
        pytest.param("state_events", "DELETE FROM {table}", id="delete-events"),
    ],
)
def test_database_refuses_to_change_stored_rows(
    store: DecisionStore,
    backend: Backend,
    make_record: RecordFactory,
    table: str,
    statement: str,
) -> None:
    store.append([make_record(1)])
    store.append_event("drift_detected", {"score": 0.4})

    with pytest.raises(sa.exc.IntegrityError, match="append-only"):  # noqa: SIM117
        with store.engine.begin() as conn:
            conn.exec_driver_sql(statement.format(table=backend.table(table)))

    assert store.get("dec-00001")["queue"] == "billing"  # type: ignore[index]
    assert len(store.events()) == 1


@pytest.mark.integration
def test_postgres_refuses_truncate(
    postgres_backend: Backend, make_record: RecordFactory
) -> None:
    store = postgres_backend.open()
    store.append([make_record(1)])

    with pytest.raises(sa.exc.IntegrityError, match="append-only"):  # noqa: SIM117
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {postgres_backend.table('decisions')}")

    assert store.count() == 1
    store.close()


def test_iter_decisions_follows_append_order_within_the_time_range(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    # Appended out of time order, so seq order and decided_at order differ.
    numbers = [5, 1, 4, 2, 3, 6]
    for number in numbers:
        store.append([make_record(number)])
    since = make_record(2).decision["decided_at"]
    until = make_record(5).decision["decided_at"]

    everything = [row["decision_id"] for row in store.iter_decisions(batch_size=4)]
    in_range = [
        row["decision_id"]
        for row in store.iter_decisions(since=since, until=until, batch_size=1)
    ]

    assert everything == [f"dec-{number:05d}" for number in numbers]
    assert in_range == ["dec-00004", "dec-00002", "dec-00003"]


def test_iter_decisions_accepts_any_timezone_for_the_range(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    store.append([make_record(number) for number in range(1, 4)])
    new_york = timezone(timedelta(hours=-5))
    since = make_record(2).decision["decided_at"].astimezone(new_york)

    rows = list(store.iter_decisions(since=since))

    assert [row["decision_id"] for row in rows] == ["dec-00002", "dec-00003"]


def test_state_events_read_back_by_kind_and_time(backend: Backend) -> None:
    now = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    store = backend.open(clock=lambda: now[0])

    first = store.append_event("drift_detected", {"score": 0.41, "features": ["a"]})
    now[0] += timedelta(minutes=5)
    store.append_event("model_swapped", {"model_version": "8"})
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    store.append_event("drift_cleared", {"score": 0.05}, at=at)

    assert [event["kind"] for event in store.events()] == [
        "drift_detected",
        "model_swapped",
        "drift_cleared",
    ]
    drift = store.events(kind="drift_detected")
    assert drift == [
        {
            "seq": first,
            "at": datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
            "kind": "drift_detected",
            "payload": {"score": 0.41, "features": ["a"]},
        }
    ]
    since = datetime(2026, 12, 1, 8, 1, tzinfo=UTC)
    assert [event["kind"] for event in store.events(since=since)] == [
        "model_swapped",
        "drift_cleared",
    ]
    store.close()


def test_record_refuses_a_field_the_store_has_no_column_for() -> None:
    fields = {**_decision_fields(1), "sentiment": "angry"}

    with pytest.raises(ValueError, match="sentiment"):
        DecisionRecord.from_decision(fields, "req-1", "email", "http")


def test_record_refuses_decided_at_without_timezone() -> None:
    fields = {**_decision_fields(1), "decided_at": "2026-12-01T09:30:00"}

    with pytest.raises(ValueError, match="timezone"):
        DecisionRecord.from_decision(fields, "req-1", "email", "http")


def test_record_fills_fields_left_out_with_the_decision_defaults() -> None:
    fields = {**_decision_fields(1), "escalation": None}

    record = DecisionRecord.from_decision(fields, "req-1", "email", "http")

    assert record.decision["escalation"] == "none"
    assert record.decision["latency_ms"] == 0.0
    assert record.decision["top_queues"] == []


def test_record_refuses_a_number_where_the_store_keeps_text() -> None:
    fields = {**_decision_fields(1), "model_version": 7}

    with pytest.raises(ValueError, match="model_version must be a string"):
        DecisionRecord.from_decision(fields, "req-1", "email", "http")


def test_record_refuses_an_unknown_path() -> None:
    with pytest.raises(ValueError, match="path"):
        DecisionRecord.from_decision(_decision_fields(1), "req-1", "email", "ftp")  # type: ignore[arg-type]


def test_sqlite_store_writes_ahead_so_readers_do_not_block_writers(
    sqlite_backend: Backend,
) -> None:
    store = sqlite_backend.open()

    with store.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()

    assert mode == "wal"
    store.close()


def test_settings_open_the_sqlite_store_in_the_state_folder(settings: Any) -> None:
    store = open_store(settings)

    assert store.url == f"sqlite:///{settings.home_dir / 'decisions.db'}"
    assert (settings.home_dir / "decisions.db").exists()
    store.close()


def test_sqlite_write_lock_held_briefly_is_waited_out(
    sqlite_backend: Backend, make_record: RecordFactory
) -> None:
    store = sqlite_backend.open(busy_timeout_s=0.05, retry_attempts=20)
    release = _hold_write_lock(_sqlite_path(sqlite_backend), hold_s=0.4)

    inserted = store.append([make_record(1)])

    release.join()
    assert inserted == 1
    store.close()


def test_sqlite_write_lock_held_too_long_raises_store_error(
    sqlite_backend: Backend, make_record: RecordFactory
) -> None:
    store = sqlite_backend.open(busy_timeout_s=0.05, retry_attempts=2)
    lock = sqlite3.connect(_sqlite_path(sqlite_backend))
    lock.execute("BEGIN EXCLUSIVE")

    with pytest.raises(StoreError, match="after 2 attempts: database is locked"):
        store.append([make_record(1)])

    lock.rollback()
    lock.close()
    assert store.append([make_record(1)]) == 1
    store.close()


def test_unreachable_database_error_names_the_url_without_password() -> None:
    url = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test"

    with pytest.raises(StoreError) as raised:
        DecisionStore(url, retry_attempts=2, retry_max_wait_s=0.01)

    message = str(raised.value)
    assert "s3cret" not in message
    assert "postgresql+psycopg://postgres:***@127.0.0.1:1/test" in message
    assert "reachable" in message


def test_unsupported_database_is_refused_with_the_supported_ones() -> None:
    with pytest.raises(StoreError, match="only SQLite and PostgreSQL"):
        DecisionStore("mysql://root@localhost/decisions")


def test_closed_store_refuses_further_use(store: DecisionStore) -> None:
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.count()


@pytest.mark.integration
def test_postgres_store_reconnects_after_its_connections_are_killed(
    postgres_backend: Backend,
    postgres_engine: sa.Engine,
    make_record: RecordFactory,
) -> None:
    name = f"sb-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_backend.url}?application_name={name}"
    store = DecisionStore(url, schema=postgres_backend.schema)
    store.append([make_record(1)])

    with postgres_engine.begin() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": name},
        ).scalar_one()

    assert killed >= 1
    assert store.append([make_record(2)]) == 1
    assert store.count() == 2
    store.close()


def test_two_processes_appending_overlapping_records_store_each_once(
    sqlite_backend: Backend,
) -> None:
    context = multiprocessing.get_context("spawn")
    # Released once both children are up, so they also open (and migrate) the
    # fresh file at the same moment.
    start = context.Barrier(2)
    results = context.Queue()
    children = [
        context.Process(
            target=_append_range,
            args=(sqlite_backend.url, first, last, start, results),
        )
        for first, last in [(0, 400), (200, 600)]
    ]

    for child in children:
        child.start()
    inserted = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)

    assert [child.exitcode for child in children] == [0, 0]
    store = sqlite_backend.open()
    ids = [row["decision_id"] for row in store.iter_decisions()]
    assert sum(inserted) == 600
    assert len(ids) == 600
    assert set(ids) == {f"dec-{number:05d}" for number in range(600)}
    store.close()


def _append_range(url: str, first: int, last: int, start: Any, results: Any) -> None:
    """Runs in a child process: append [first, last) in small batches."""
    start.wait(timeout=60)
    store = DecisionStore(url, retry_attempts=20)
    inserted = 0
    for low in range(first, last, 5):
        batch = [
            DecisionRecord.from_decision(
                _decision_fields(number), f"req-{number:05d}", "email", "stream"
            )
            for number in range(low, min(low + 5, last))
        ]
        inserted += store.append(batch)
        # Like a consumer routing its next message: gives the other process
        # a turn at the write lock, so the two really interleave.
        time.sleep(0.002)
    store.close()
    results.put(inserted)


def _decision_fields(number: int) -> dict[str, Any]:
    decided_at = BASE_TIME + timedelta(seconds=number)
    return {
        "decision_id": f"dec-{number:05d}",
        "ticket_id": f"T-{number:05d}",
        "queue": "billing",
        "priority": "p3",
        "mode": "rules",
        "rule_set_version": "2026.11",
        "fallback_reason": "no_model",
        "decided_at": decided_at.isoformat(),
    }


def _sqlite_path(backend: Backend) -> Path:
    return Path(sa.make_url(backend.url).database or "")


def _hold_write_lock(path: Path, *, hold_s: float) -> threading.Thread:
    """Take SQLite's write lock from another connection; release it later."""
    is_locked = threading.Event()

    def hold() -> None:
        lock = sqlite3.connect(path)
        lock.execute("BEGIN EXCLUSIVE")
        is_locked.set()
        time.sleep(hold_s)
        lock.rollback()
        lock.close()

    thread = threading.Thread(target=hold)
    thread.start()
    is_locked.wait()
    return thread
