"""The hash chain over the decision store, and the verifier that walks it.

Tampering is done the way someone with database access would: drop the
append-only triggers with raw SQL, then edit, delete or insert rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.schema import CreateSchema

from monitoring.audit import AuditReport, verify_chain
from monitoring.store import (
    CHAIN_GENESIS,
    CONTEXT_FIELDS,
    HASHED_COLUMNS,
    MIGRATIONS_PATH,
    DecisionRecord,
    DecisionStore,
    canonical_content,
    chain_hash,
    decisions_table,
)

if TYPE_CHECKING:
    from conftest import Backend, RecordFactory

BASE_TIME = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def five_rows(store: DecisionStore, make_record: RecordFactory) -> DecisionStore:
    """A store holding dec-00001 .. dec-00005 at seq 1 .. 5."""
    store.append([make_record(1), make_record(2)])
    store.append([make_record(3), make_record(4), make_record(5)])
    return store


def test_untouched_chain_verifies(store: DecisionStore, backend: Backend) -> None:
    paris = timezone(timedelta(hours=1))
    store.append([_full_record(1, decided_at=BASE_TIME.astimezone(paris))])
    store.append([_full_record(number) for number in range(2, 40)])
    store.append([_full_record(40, has_text=False)])

    report = verify_chain(store, batch_size=7)
    rows = list(store.iter_decisions())

    assert report.ok, report.problems
    assert (report.rows_checked, report.unchained_rows) == (40, 0)
    assert [row["seq"] for row in rows] == list(range(1, 41))
    assert rows[0]["prev_hash"] == CHAIN_GENESIS
    assert all(
        later["prev_hash"] == earlier["record_hash"]
        for earlier, later in pairwise(rows)
    )
    assert (report.head_seq, report.head_hash) == (40, rows[-1]["record_hash"])


def test_record_hash_is_sha256_of_prev_hash_then_canonical_json() -> None:
    row = {
        "seq": 7,
        "decision_id": "dec-7",
        "ticket_id": "T-7",
        "queue": "billing",
        "priority": "p2",
        "escalation": "none",
        "escalation_reason": None,
        "mode": "auto",
        "confidence": 0.1 + 0.2,
        "top_queues": [{"queue": "billing", "probability": 0.75}],
        "model_name": "switchboard-router",
        "model_version": "7",
        "rule_id": None,
        "rule_set_version": "2026.11",
        "fallback_reason": None,
        "reasons": ["facturé deux fois"],
        "latency_ms": 12.0,
        "decided_at": datetime(
            2026, 12, 1, 10, 30, tzinfo=timezone(timedelta(hours=1))
        ),
        "request_id": "req-7",
        "channel": "email",
        "path": "http",
        "text_hash": None,
        "stored_at": datetime(2026, 12, 1, 9, 30, 5, 250, tzinfo=UTC),
        # Not content: left out of the canonical text.
        "prev_hash": "a" * 64,
        "record_hash": "b" * 64,
    }
    expected = (
        '{"channel":"email","confidence":0.30000000000000004,'
        '"decided_at":"2026-12-01T09:30:00.000000+00:00","decision_id":"dec-7",'
        '"escalation":"none","escalation_reason":null,"fallback_reason":null,'
        '"latency_ms":12.0,"mode":"auto","model_name":"switchboard-router",'
        '"model_version":"7","path":"http","priority":"p2","queue":"billing",'
        '"reasons":["factur\\u00e9 deux fois"],"request_id":"req-7","rule_id":null,'
        '"rule_set_version":"2026.11","seq":7,'
        '"stored_at":"2026-12-01T09:30:05.000250+00:00","text_hash":null,'
        '"ticket_id":"T-7","top_queues":[{"probability":0.75,"queue":"billing"}]}'
    )

    assert canonical_content(row) == expected
    prev_hash = "c" * 64
    digest = hashlib.sha256((prev_hash + expected).encode("utf-8")).hexdigest()
    assert chain_hash(prev_hash, row) == digest


def test_every_column_but_the_chain_columns_is_hashed() -> None:
    columns = set(decisions_table.c.keys())

    assert columns - {"prev_hash", "record_hash"} == set(HASHED_COLUMNS)


def test_changed_queue_is_caught_and_names_the_row(
    five_rows: DecisionStore, backend: Backend
) -> None:
    with _tampering(five_rows, backend) as conn:
        conn.exec_driver_sql(
            f"UPDATE {backend.table('decisions')} SET queue = 'legal' "
            "WHERE decision_id = 'dec-00003'"
        )

    report = verify_chain(five_rows)

    assert not report.ok
    assert _found(report) == [("changed", 3, "dec-00003")]
    assert "edited" in report.problems[0].detail


def test_deleted_row_is_caught_at_the_row_after_it(
    five_rows: DecisionStore, backend: Backend
) -> None:
    with _tampering(five_rows, backend) as conn:
        conn.exec_driver_sql(f"DELETE FROM {backend.table('decisions')} WHERE seq = 3")

    report = verify_chain(five_rows)

    assert _found(report) == [("removed", 4, "dec-00004")]
    assert "seq 3 missing" in report.problems[0].detail


def test_deleted_row_is_caught_by_the_seq_gap_even_if_the_next_is_relinked(
    five_rows: DecisionStore, backend: Backend
) -> None:
    # Remove seq 3, and make seq 4 link to seq 2 with a recomputed hash; the
    # rows after it go too, so the only trace left is the hole in seq.
    rows = {row["seq"]: row for row in five_rows.iter_decisions()}
    relinked = {**rows[4], "prev_hash": rows[2]["record_hash"]}
    relinked["record_hash"] = chain_hash(relinked["prev_hash"], relinked)
    with _tampering(five_rows, backend) as conn:
        conn.exec_driver_sql(f"DELETE FROM {backend.table('decisions')} WHERE seq >= 3")
        conn.execute(sa.insert(decisions_table), [relinked])

    report = verify_chain(five_rows)

    assert _found(report) == [("removed", 4, "dec-00004")]


def test_row_rewritten_with_a_recomputed_hash_breaks_the_next_link(
    five_rows: DecisionStore, backend: Backend
) -> None:
    original = five_rows.get("dec-00003")
    assert original is not None
    rewritten = {**original, "queue": "legal"}
    rewritten["record_hash"] = chain_hash(rewritten["prev_hash"], rewritten)
    with _tampering(five_rows, backend) as conn:
        conn.exec_driver_sql(f"DELETE FROM {backend.table('decisions')} WHERE seq = 3")
        conn.execute(sa.insert(decisions_table), [rewritten])

    report = verify_chain(five_rows)

    assert _found(report) == [("removed", 4, "dec-00004")]
    assert "seq 3 was rewritten" in report.problems[0].detail


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param("made-up", id="made-up-hash"),
        pytest.param("unlinked", id="recomputed-hash-linked-to-genesis"),
        pytest.param("skips-back", id="recomputed-hash-linked-to-an-older-row"),
        pytest.param("linked", id="recomputed-hash-linked-to-its-predecessor"),
    ],
)
def test_forged_row_between_two_others_is_caught(
    five_rows: DecisionStore, backend: Backend, forgery: str
) -> None:
    rows = {row["seq"]: row for row in five_rows.iter_decisions()}
    prev_hash = {
        "made-up": "f" * 64,
        "unlinked": CHAIN_GENESIS,
        "skips-back": rows[1]["record_hash"],
        "linked": rows[2]["record_hash"],
    }[forgery]
    forged = {
        **rows[2],
        "seq": 3,
        "decision_id": "dec-forged",
        "ticket_id": "T-forged",
        "request_id": "req-forged",
        "queue": "legal",
        "prev_hash": prev_hash,
    }
    forged["record_hash"] = (
        "e" * 64 if forgery == "made-up" else chain_hash(prev_hash, forged)
    )

    with _tampering(five_rows, backend, drop_prev_hash_index=True) as conn:
        _make_room_at(conn, backend, seq=3)
        conn.execute(sa.insert(decisions_table), [forged])
    report = verify_chain(five_rows)

    found = _found(report)
    assert ("inserted", 3, "dec-forged") in found
    assert [problem for problem in found if problem[0] in ("inserted", "removed")] == [
        ("inserted", 3, "dec-forged")
    ]
    # The genuine rows it pushed along are reported as moved, not as edited.
    moved = [problem for problem in report.problems if problem.seq > 3]
    assert [problem.seq for problem in moved] == [4, 5, 6]
    assert all(problem.detail.startswith("moved") for problem in moved)


def test_duplicate_append_leaves_the_chain_as_it_was(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    store.append([make_record(1), make_record(2), make_record(3)])
    before = _chain(store)

    assert store.append([make_record(1), make_record(2), make_record(3)]) == 0
    assert _chain(store) == before

    batch = [make_record(2), make_record(4), make_record(4), make_record(5)]
    assert store.append(batch) == 2
    after = _chain(store)
    assert after[:3] == before
    assert [(seq, decision_id) for seq, decision_id, _, _ in after[3:]] == [
        (4, "dec-00004"),
        (5, "dec-00005"),
    ]
    assert after[3][2] == before[-1][3]
    assert verify_chain(store).ok


def test_redelivered_request_under_a_new_decision_id_is_not_chained(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    store.append([make_record(1)])
    redelivered = make_record(99, ticket_id="T-00001", request_id="req-00001")

    assert store.append([redelivered, make_record(2)]) == 1

    assert [seq for seq, *_ in _chain(store)] == [1, 2]
    assert verify_chain(store).ok


def test_database_refuses_a_new_row_without_hashes(
    store: DecisionStore, backend: Backend, make_record: RecordFactory
) -> None:
    store.append([make_record(1)])
    row = {**_stored(store, "dec-00001"), "seq": 2, "decision_id": "dec-x"}
    row |= {"request_id": "req-x", "prev_hash": None, "record_hash": None}

    with pytest.raises(sa.exc.IntegrityError):  # noqa: SIM117
        with _raw_connection(store, backend) as conn:
            conn.execute(sa.insert(decisions_table), [row])

    assert store.count() == 1


def test_database_refuses_a_second_row_linking_to_the_same_row(
    store: DecisionStore, backend: Backend, make_record: RecordFactory
) -> None:
    store.append([make_record(1), make_record(2)])
    second = _stored(store, "dec-00002")
    fork = {**second, "seq": 3, "decision_id": "dec-fork", "request_id": "req-fork"}
    fork["record_hash"] = chain_hash(fork["prev_hash"], fork)

    with pytest.raises(sa.exc.IntegrityError):  # noqa: SIM117
        with _raw_connection(store, backend) as conn:
            conn.execute(sa.insert(decisions_table), [fork])

    assert verify_chain(store).ok


def test_rows_stored_before_the_chain_are_counted_not_reported(
    backend: Backend, make_record: RecordFactory
) -> None:
    engine = sa.create_engine(backend.url)
    with engine.begin() as conn:
        if backend.schema is not None:
            conn.execute(CreateSchema(backend.schema))
        command.upgrade(_alembic_config(conn, backend.schema), "0001")
        legacy = {**_row_values(make_record(1)), "seq": 1}
        legacy_table = sa.Table(
            "decisions",
            sa.MetaData(),
            *(sa.Column(name, column.type) for name, column in _v1_columns()),
            schema=backend.schema,
        )
        conn.execute(sa.insert(legacy_table), [legacy])
    engine.dispose()

    store = backend.open()
    store.append([make_record(2), make_record(3)])
    report = verify_chain(store)
    rows = list(store.iter_decisions())

    assert report.ok, report.problems
    assert (report.rows_checked, report.unchained_rows) == (3, 1)
    assert rows[0]["record_hash"] is None
    assert rows[1]["prev_hash"] == CHAIN_GENESIS
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):  # noqa: SIM117
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM {backend.table('decisions')}")
    store.close()


def test_rows_chained_before_the_context_columns_still_verify(
    backend: Backend, make_record: RecordFactory
) -> None:
    engine = sa.create_engine(backend.url)
    with engine.begin() as conn:
        if backend.schema is not None:
            conn.execute(CreateSchema(backend.schema))
        command.upgrade(_alembic_config(conn, backend.schema), "0004")
        row = {**_row_values(make_record(1)), "seq": 1}
        row["prev_hash"] = CHAIN_GENESIS
        row["record_hash"] = chain_hash(CHAIN_GENESIS, row)
        chained_table = sa.Table(
            "decisions",
            sa.MetaData(),
            *(sa.Column(name, column.type) for name, column in _v1_columns()),
            sa.Column("prev_hash", sa.Text),
            sa.Column("record_hash", sa.Text),
            schema=backend.schema,
        )
        conn.execute(sa.insert(chained_table), [row])
    engine.dispose()

    store = backend.open()
    store.append([make_record(2)])
    report = verify_chain(store)
    rows = list(store.iter_decisions())

    assert report.ok, report.problems
    assert (report.rows_checked, report.unchained_rows) == (2, 0)
    assert rows[0]["context_sources_used"] is None
    assert rows[1]["context_sources_used"] == []
    store.close()


def test_downgrade_to_0001_removes_the_chain_columns(
    store: DecisionStore, backend: Backend, make_record: RecordFactory
) -> None:
    store.append([make_record(1)])

    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn, backend.schema), "0001")

    columns = {
        column["name"]
        for column in sa.inspect(store.engine).get_columns(
            "decisions", schema=backend.schema
        )
    }
    assert not {"prev_hash", "record_hash"} & columns
    assert "queue" in columns


def test_two_processes_appending_to_one_sqlite_file_build_one_chain(
    sqlite_backend: Backend,
) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    # Overlapping ranges: each process also meets the other's rows as
    # duplicates, which must not advance the chain.
    children = [
        context.Process(
            target=_append_range,
            args=(sqlite_backend.url, first, last, start, results),
        )
        for first, last in [(0, 300), (150, 450)]
    ]

    for child in children:
        child.start()
    inserted = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)

    assert [child.exitcode for child in children] == [0, 0]
    assert sum(inserted) == 450
    store = sqlite_backend.open()
    report = verify_chain(store)
    assert report.ok, report.problems
    assert (report.rows_checked, report.head_seq) == (450, 450)
    store.close()


@pytest.mark.integration
def test_concurrent_postgres_writers_build_one_chain(
    postgres_backend: Backend, make_record: RecordFactory
) -> None:
    stores = [postgres_backend.open() for _ in range(4)]
    start = threading.Barrier(len(stores))

    def append_range(store: DecisionStore, first: int) -> None:
        start.wait(timeout=30)
        for low in range(first, first + 200, 8):
            store.append([make_record(n) for n in range(low, low + 8)])

    # Writers 0/1 and 2/3 overlap by half, so duplicates race too.
    threads = [
        threading.Thread(target=append_range, args=(store, first))
        for store, first in zip(stores, [0, 100, 400, 500], strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    report = verify_chain(stores[0])
    assert report.ok, report.problems
    assert (report.rows_checked, report.head_seq) == (600, 600)
    for store in stores:
        store.close()


def test_report_serialises_to_json_with_each_problem(
    five_rows: DecisionStore, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with _tampering(five_rows, backend) as conn:
        conn.exec_driver_sql(
            f"UPDATE {backend.table('decisions')} SET latency_ms = 1.0 WHERE seq = 2"
        )

    with caplog.at_level(logging.WARNING, logger="monitoring.audit"):
        report = verify_chain(five_rows)
    exported = json.loads(json.dumps(report.to_dict()))

    assert exported["ok"] is False
    assert exported["rows_checked"] == 5
    assert exported["head_seq"] == 5
    assert [(p["kind"], p["seq"], p["decision_id"]) for p in exported["problems"]] == [
        ("changed", 2, "dec-00002")
    ]
    warnings = [r for r in caplog.records if r.name == "monitoring.audit"]
    assert [r.message for r in warnings] == ["decision chain does not verify"]
    assert warnings[0].first_seq == 2  # type: ignore[attr-defined]


def test_empty_store_verifies_with_no_head(store: DecisionStore) -> None:
    report = verify_chain(store)

    assert report == AuditReport(
        rows_checked=0, unchained_rows=0, head_seq=None, head_hash=None
    )
    assert report.to_dict()["ok"] is True


def _found(report: AuditReport) -> list[tuple[str, int, str]]:
    return [(p.kind, p.seq, p.decision_id) for p in report.problems]


def _chain(store: DecisionStore) -> list[tuple[int, str, str, str]]:
    return [
        (row["seq"], row["decision_id"], row["prev_hash"], row["record_hash"])
        for row in store.iter_decisions()
    ]


def _stored(store: DecisionStore, decision_id: str) -> dict[str, Any]:
    row = store.get(decision_id)
    assert row is not None
    return row


@contextmanager
def _raw_connection(store: DecisionStore, backend: Backend) -> Iterator[sa.Connection]:
    """A transaction straight on the database, around `DecisionStore`."""
    with store.engine.connect() as conn:
        if backend.schema is not None:
            schemas = {None: backend.schema}
            conn = conn.execution_options(schema_translate_map=schemas)
        with conn.begin():
            yield conn


@contextmanager
def _tampering(
    store: DecisionStore, backend: Backend, *, drop_prev_hash_index: bool = False
) -> Iterator[sa.Connection]:
    """What an attacker with database access does first: drop the guards."""
    table = backend.table("decisions")
    with _raw_connection(store, backend) as conn:
        if backend.name == "postgresql":
            conn.exec_driver_sql(f"DROP TRIGGER decisions_append_only ON {table}")
        else:
            conn.exec_driver_sql("DROP TRIGGER decisions_refuse_update")
            conn.exec_driver_sql("DROP TRIGGER decisions_refuse_delete")
        if drop_prev_hash_index:
            index = backend.table("uq_decisions_prev_hash")
            conn.exec_driver_sql(f"DROP INDEX {index}")
        yield conn


def _make_room_at(conn: sa.Connection, backend: Backend, *, seq: int) -> None:
    """Shift the rows from `seq` on up by one; in two steps, as seq is unique."""
    table = backend.table("decisions")
    conn.exec_driver_sql(f"UPDATE {table} SET seq = -seq WHERE seq >= {seq}")
    conn.exec_driver_sql(f"UPDATE {table} SET seq = 1 - seq WHERE seq < 0")


def _alembic_config(connection: sa.Connection, schema: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def _v1_columns() -> list[tuple[str, sa.Column[Any]]]:
    """The decisions columns as migration 0001 created them."""
    later = {"prev_hash", "record_hash", *CONTEXT_FIELDS}
    return [(c.name, c) for c in decisions_table.columns if c.name not in later]


def _row_values(record: DecisionRecord) -> dict[str, Any]:
    decision = {
        name: value
        for name, value in record.decision.items()
        if name not in CONTEXT_FIELDS
    }
    return {
        **decision,
        "request_id": record.request_id,
        "channel": record.channel,
        "path": record.path,
        "text_hash": record.text_hash,
        "stored_at": BASE_TIME,
    }


def _full_record(
    number: int, *, decided_at: datetime | None = None, has_text: bool = True
) -> DecisionRecord:
    """A decision using every field, with values that are easy to mangle."""
    fields = {
        "decision_id": f"dec-{number:05d}",
        "ticket_id": f"T-{number:05d}",
        "queue": "security",
        "priority": "p1",
        "escalation": "incident_commander",
        "escalation_reason": "sev-1 alert — «disk full»",
        "mode": "override",
        "confidence": 0.1 + 0.2,
        "top_queues": [
            {"queue": "security", "probability": 1 / 3},
            {"queue": "platform_operations", "probability": 1e-7},
        ],
        "model_name": "switchboard-router",
        "model_version": "12",
        "rule_id": "override.security_incident",
        "rule_set_version": "2026.11",
        "fallback_reason": "low_confidence",
        "reasons": ["override rule matched", "naïve ☃ reason"],
        "latency_ms": 3.25 * number,
        "decided_at": decided_at or BASE_TIME + timedelta(microseconds=number * 7),
    }
    text = f"ticket {number}" if has_text else None
    return DecisionRecord.from_decision(
        fields, f"req-{number}", "alert", "stream", text
    )


def _append_range(url: str, first: int, last: int, start: Any, results: Any) -> None:
    """Runs in a child process: append [first, last) in small batches."""
    start.wait(timeout=60)
    store = DecisionStore(url, retry_attempts=20)
    inserted = 0
    for low in range(first, last, 6):
        batch = [
            DecisionRecord.from_decision(
                {
                    "decision_id": f"dec-{number:05d}",
                    "ticket_id": f"T-{number:05d}",
                    "queue": "billing",
                    "priority": "p3",
                    "mode": "rules",
                    "rule_set_version": "2026.11",
                    "decided_at": (BASE_TIME + timedelta(seconds=number)).isoformat(),
                },
                f"req-{number:05d}",
                "email",
                "stream",
            )
            for number in range(low, min(low + 6, last))
        ]
        inserted += store.append(batch)
        # Gives the other process a turn at the write lock.
        time.sleep(0.002)
    store.close()
    results.put(inserted)


def test_audit_verify_command_reports_an_intact_chain(tmp_path):
    import json

    from typer.testing import CliRunner

    from serving.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["audit", "verify", "--json"], env={"SWITCHBOARD_HOME": str(tmp_path)}
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
