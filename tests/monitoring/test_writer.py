"""The decision writer: batched, off the caller's thread, never losing a record."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from monitoring.store import DecisionRecord, DecisionStore, StoreError
from monitoring.writer import DecisionWriter

if TYPE_CHECKING:
    from conftest import Backend, RecordFactory


class GatedStore:
    """A real store whose appends from the writer thread wait for a gate.

    Stands in for a slow database: the background thread is held up while
    the caller's own thread (the synchronous fallback) writes straight away.
    """

    def __init__(self, store: DecisionStore) -> None:
        self.store = store
        self.gate = threading.Event()
        self.is_writer_waiting = threading.Event()
        self.batch_sizes: list[int] = []

    def append(self, records: Sequence[DecisionRecord]) -> int:
        if threading.current_thread().name == "decision-writer":
            self.is_writer_waiting.set()
            self.gate.wait(timeout=30)
        self.batch_sizes.append(len(records))
        return self.store.append(records)


@pytest.fixture
def sqlite_store(sqlite_backend: Backend) -> Iterator[DecisionStore]:
    store = sqlite_backend.open()
    yield store
    store.close()


def test_writer_delivers_everything_submitted_from_many_threads(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    writer = DecisionWriter(store, max_queue=500, batch_size=50)

    def submit_range(thread_number: int) -> None:
        first = thread_number * 250
        for number in range(first, first + 250, 5):
            writer.submit([make_record(n) for n in range(number, number + 5)])

    threads = [threading.Thread(target=submit_range, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    is_closed_clean = writer.close()

    counters = writer.counters
    assert is_closed_clean
    assert store.count() == 2000
    assert (counters.submitted, counters.written, counters.inserted) == (
        2000,
        2000,
        2000,
    )
    assert counters.pending == 0


def test_writer_batches_appends_up_to_the_batch_size(
    sqlite_store: DecisionStore, make_record: RecordFactory
) -> None:
    gated = GatedStore(sqlite_store)
    writer = DecisionWriter(gated, batch_size=40, flush_interval_s=5.0)

    writer.submit([make_record(number) for number in range(100)])
    gated.gate.set()
    writer.close()

    assert gated.batch_sizes == [40, 40, 20]
    assert sqlite_store.count() == 100


def test_writer_writes_a_partial_batch_after_the_flush_interval(
    sqlite_store: DecisionStore, make_record: RecordFactory
) -> None:
    writer = DecisionWriter(sqlite_store, batch_size=200, flush_interval_s=0.05)

    writer.submit([make_record(1), make_record(2), make_record(3)])

    assert _eventually(lambda: sqlite_store.count() == 3)
    writer.close()


def test_writer_counts_redelivered_records_as_written_not_inserted(
    sqlite_store: DecisionStore, make_record: RecordFactory
) -> None:
    writer = DecisionWriter(sqlite_store)

    writer.submit([make_record(1), make_record(2)])
    writer.flush()
    writer.submit([make_record(2), make_record(3)])
    writer.close()

    assert (writer.counters.written, writer.counters.inserted) == (4, 3)
    assert sqlite_store.count() == 3


def test_writer_keeps_records_and_retries_while_the_store_is_locked(
    sqlite_backend: Backend, make_record: RecordFactory
) -> None:
    store = sqlite_backend.open(busy_timeout_s=0.05, retry_attempts=2)
    writer = DecisionWriter(store, flush_interval_s=0.01, retry_max_wait_s=0.1)
    lock = _take_write_lock(sqlite_backend)

    writer.submit([make_record(number) for number in range(50)])

    assert _eventually(lambda: writer.counters.failures >= 2)
    assert not writer.flush(timeout_s=0.2)
    assert writer.counters.pending == 50
    assert store.count() == 0

    lock.rollback()
    lock.close()

    assert writer.flush(timeout_s=10)
    assert store.count() == 50
    assert writer.counters.written == 50
    writer.close()
    store.close()


def test_writer_keeps_records_while_the_store_engine_is_disposed(
    store: DecisionStore, make_record: RecordFactory
) -> None:
    writer = DecisionWriter(store, flush_interval_s=0.01, retry_max_wait_s=0.1)
    store.close()

    writer.submit([make_record(1), make_record(2)])

    assert _eventually(lambda: writer.counters.failures >= 1)
    assert writer.counters.pending == 2
    writer.close(timeout_s=0.2)
    assert writer.counters.pending == 2


def test_writer_logs_an_error_when_closed_with_records_unwritten(
    sqlite_backend: Backend,
    make_record: RecordFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = sqlite_backend.open(busy_timeout_s=0.05, retry_attempts=1)
    writer = DecisionWriter(store, flush_interval_s=0.01, retry_max_wait_s=0.05)
    lock = _take_write_lock(sqlite_backend)
    writer.submit([make_record(1)])

    with caplog.at_level(logging.ERROR, logger="monitoring.writer"):
        is_closed_clean = writer.close(timeout_s=0.3)

    lock.rollback()
    lock.close()
    assert not is_closed_clean
    unwritten = [
        entry
        for entry in caplog.records
        if entry.message == "decision writer closed with records unwritten"
    ]
    assert [entry.pending for entry in unwritten] == [1]  # type: ignore[attr-defined]
    store.close()


def test_full_queue_is_written_in_the_callers_thread_rather_than_dropped(
    sqlite_store: DecisionStore, make_record: RecordFactory
) -> None:
    gated = GatedStore(sqlite_store)
    writer = DecisionWriter(
        gated, max_queue=10, batch_size=10, flush_interval_s=0.0, submit_timeout_s=0.01
    )
    writer.submit([make_record(number) for number in range(10)])
    assert gated.is_writer_waiting.wait(timeout=10)
    writer.submit([make_record(number) for number in range(10, 20)])

    started = time.monotonic()
    writer.submit([make_record(20)])
    waited_s = time.monotonic() - started

    assert waited_s < 1.0
    assert writer.counters.sync_writes == 1
    assert sqlite_store.get("dec-00020") is not None
    gated.gate.set()
    assert writer.close()
    assert sqlite_store.count() == 21


def test_batch_larger_than_the_queue_is_written_directly(
    sqlite_store: DecisionStore, make_record: RecordFactory
) -> None:
    writer = DecisionWriter(sqlite_store, max_queue=5)

    writer.submit([make_record(number) for number in range(8)])

    assert writer.counters.sync_writes == 1
    assert sqlite_store.count() == 8
    writer.close()


def test_full_queue_and_failing_store_hold_records_over_the_bound(
    sqlite_backend: Backend,
    make_record: RecordFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = sqlite_backend.open(busy_timeout_s=0.05, retry_attempts=1)
    writer = DecisionWriter(
        store,
        max_queue=5,
        flush_interval_s=0.0,
        submit_timeout_s=0.01,
        retry_max_wait_s=1.0,
    )
    lock = _take_write_lock(sqlite_backend)
    writer.submit([make_record(number) for number in range(5)])
    # The first failure is followed by a 0.1 s pause with the five queued.
    assert _eventually(lambda: writer.counters.failures >= 1, poll_s=0.001)

    with caplog.at_level(logging.ERROR, logger="monitoring.writer"):
        writer.submit([make_record(number) for number in range(5, 8)])

    assert writer.counters.pending == 8
    assert writer.counters.sync_writes == 0
    assert "holding records over the queue bound" in caplog.messages[-1]
    lock.rollback()
    lock.close()
    assert writer.close()
    assert store.count() == 8
    store.close()


def test_submit_after_close_is_refused_loudly(
    sqlite_store: DecisionStore, make_record: RecordFactory
) -> None:
    writer = DecisionWriter(sqlite_store)
    writer.close()

    with pytest.raises(StoreError, match="closed"):
        writer.submit([make_record(1)])


def test_close_stops_the_background_thread(sqlite_store: DecisionStore) -> None:
    before = _writer_threads()

    with DecisionWriter(sqlite_store):
        assert _writer_threads() == before + 1

    assert _eventually(lambda: _writer_threads() == before)


def _writer_threads() -> int:
    return sum(thread.name == "decision-writer" for thread in threading.enumerate())


def _take_write_lock(backend: Backend) -> sqlite3.Connection:
    """Hold SQLite's write lock from another connection until rolled back."""
    path = Path(sa.make_url(backend.url).database or "")
    lock = sqlite3.connect(path, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    return lock


def _eventually(
    condition: Callable[[], bool], timeout_s: float = 10.0, poll_s: float = 0.01
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()
