"""Writes decisions to the store off the caller's critical path.

Routing a ticket must not wait for a database commit, so callers `submit`
records to a `DecisionWriter`, which batches them into `DecisionStore.append`
on one background thread. A decision is never dropped: when the queue is full
the caller writes synchronously instead, and when the store fails the records
stay queued and are retried until it recovers.

Nothing is registered at import or construction: the process that owns the
writer decides whether to call `close()` from atexit or a SIGTERM handler.
The thread is a daemon so a forgotten `close()` cannot hang interpreter exit;
records still queued at that point are lost, which is why `close()` matters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from monitoring.store import DecisionRecord, DecisionSink, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterCounters:
    """What a writer has done so far.

    Attributes:
        submitted: Records handed to `submit`.
        written: Records the store acknowledged (new or already stored).
        inserted: Of those, records that were new to the store.
        pending: Records queued or being written right now.
        failures: Store appends that raised (each retried later).
        sync_writes: Submits written in the caller's thread because the
            queue was full.
    """

    submitted: int
    written: int
    inserted: int
    pending: int
    failures: int
    sync_writes: int


class DecisionWriter:
    """A bounded queue of decision records drained by one background thread.

    Records reach the store in batches of up to `batch_size`, at the latest
    `flush_interval_s` after the first of them was submitted. Safe to call
    from many threads.

    Known limitation: records written synchronously (queue full) can reach
    the store before records queued earlier, so `seq` order is store order,
    not submit order, under back-pressure.
    """

    def __init__(
        self,
        store: DecisionSink,
        *,
        max_queue: int = 10_000,
        batch_size: int = 200,
        flush_interval_s: float = 0.2,
        submit_timeout_s: float = 0.05,
        retry_max_wait_s: float = 5.0,
    ) -> None:
        """Start the background thread.

        Args:
            store: Where records go; usually a `DecisionStore`.
            max_queue: Records held before `submit` applies back-pressure.
            batch_size: Most records per `store.append` call.
            flush_interval_s: Longest a queued record waits for its batch to
                fill before it is written anyway.
            submit_timeout_s: Longest `submit` waits for room in a full queue
                before writing in the caller's thread.
            retry_max_wait_s: Longest pause between retries of a failing store.
        """
        if max_queue < 1 or batch_size < 1:
            raise ValueError(
                f"max_queue and batch_size must be at least 1, got {max_queue} "
                f"and {batch_size}"
            )
        self._store = store
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._submit_timeout_s = submit_timeout_s
        self._retry_max_wait_s = retry_max_wait_s

        self._changed = threading.Condition()
        self._queue: deque[DecisionRecord] = deque()
        self._in_flight = 0
        self._flush_waiters = 0
        self._is_stopping = False
        self._consecutive_failures = 0
        self._submitted = 0
        self._written = 0
        self._inserted = 0
        self._failures = 0
        self._sync_writes = 0

        self._thread = threading.Thread(
            target=self._drain, name="decision-writer", daemon=True
        )
        self._thread.start()

    @property
    def counters(self) -> WriterCounters:
        with self._changed:
            return WriterCounters(
                submitted=self._submitted,
                written=self._written,
                inserted=self._inserted,
                pending=len(self._queue) + self._in_flight,
                failures=self._failures,
                sync_writes=self._sync_writes,
            )

    def submit(self, records: Iterable[DecisionRecord]) -> None:
        """Queue records for writing; returns at once unless the queue is full.

        A full queue is waited on for up to `submit_timeout_s`; then the
        records are written in this thread instead (or, while the store is
        failing, kept queued over the bound) so that none is dropped.

        Raises:
            StoreError: the writer is closed.
        """
        batch = list(records)
        if not batch:
            return

        with self._changed:
            if self._is_stopping:
                raise StoreError(
                    f"decision writer is closed; {len(batch)} records were not "
                    "accepted: submit before close(), or call store.append",
                    url=_store_url(self._store),
                )
            self._submitted += len(batch)
            if self._wait_for_room(len(batch)):
                self._enqueue(batch)
                return
            is_failing = self._consecutive_failures > 0

        if is_failing or not self._write_in_caller(batch):
            with self._changed:
                self._enqueue(batch)
            log.error(
                "decision store failing, holding records over the queue bound",
                extra={"records": len(batch), "max_queue": self._max_queue},
            )

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every record submitted so far is written.

        Returns:
            True when nothing is pending; False if `timeout_s` ran out first
            (the records stay queued and are still retried).
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._flush_waiters += 1
            self._changed.notify_all()
            try:
                while self._queue or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout_s: float = 10.0) -> bool:
        """Write everything pending, then stop the thread. Idempotent.

        Returns:
            True when every record was written; False if the store was still
            failing at `timeout_s` (logged as an error with the count lost).
        """
        is_flushed = self.flush(timeout_s)
        with self._changed:
            self._is_stopping = True
            self._changed.notify_all()
        self._thread.join(timeout=max(timeout_s, self._flush_interval_s) + 1.0)

        pending = self.counters.pending
        if pending:
            log.error(
                "decision writer closed with records unwritten",
                extra={"pending": pending, "store": _store_url(self._store)},
            )
        return is_flushed and not pending

    def __enter__(self) -> DecisionWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _wait_for_room(self, needed: int) -> bool:
        # A batch bigger than the whole queue can never fit; write it directly.
        if needed > self._max_queue:
            return False
        deadline = time.monotonic() + self._submit_timeout_s
        while len(self._queue) + needed > self._max_queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.wait(remaining)
        return True

    def _enqueue(self, batch: list[DecisionRecord]) -> None:
        self._queue.extend(batch)
        self._changed.notify_all()

    def _write_in_caller(self, batch: list[DecisionRecord]) -> bool:
        log.warning(
            "decision queue full, writing in the caller's thread",
            extra={"records": len(batch), "max_queue": self._max_queue},
        )
        try:
            inserted = self._store.append(batch)
        except Exception:
            with self._changed:
                self._failures += 1
            log.exception("decision store append failed", extra={"records": len(batch)})
            return False
        with self._changed:
            self._sync_writes += 1
            self._written += len(batch)
            self._inserted += inserted
            self._changed.notify_all()
        return True

    def _drain(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                inserted = self._store.append(batch)
            except Exception:
                if not self._hold_failed(batch):
                    return
                continue
            self._record_written(batch, inserted)

    def _next_batch(self) -> list[DecisionRecord] | None:
        with self._changed:
            while not self._queue:
                if self._is_stopping:
                    return None
                self._changed.wait()

            # Let a batch fill for up to flush_interval_s, unless someone is
            # waiting for the records to be written.
            deadline = time.monotonic() + self._flush_interval_s
            while (
                len(self._queue) < self._batch_size
                and not self._is_stopping
                and not self._flush_waiters
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)

            size = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            self._in_flight = size
            return batch

    def _hold_failed(self, batch: list[DecisionRecord]) -> bool:
        """Put a failed batch back and pause; False once the writer is closing."""
        with self._changed:
            # Back to the front, in order, so nothing is lost or reordered.
            self._queue.extendleft(reversed(batch))
            self._in_flight = 0
            self._failures += 1
            self._consecutive_failures += 1
            failures = self._consecutive_failures
            pending = len(self._queue)
            is_stopping = self._is_stopping
        log.exception(
            "decision store append failed, records kept for retry",
            extra={"consecutive_failures": failures, "pending": pending},
        )
        # close() has already waited its timeout for the store; stop here
        # rather than retry forever behind the caller's back.
        if is_stopping:
            return False

        pause_s = min(self._retry_max_wait_s, 0.1 * 2 ** (failures - 1))
        with self._changed:
            # Woken early only by close(), which wants one last attempt now.
            self._changed.wait_for(lambda: self._is_stopping, timeout=pause_s)
        return True

    def _record_written(self, batch: list[DecisionRecord], inserted: int) -> None:
        with self._changed:
            recovered_after = self._consecutive_failures
            self._consecutive_failures = 0
            self._in_flight = 0
            self._written += len(batch)
            self._inserted += inserted
            self._changed.notify_all()
        if recovered_after:
            log.info(
                "decision store writes resumed",
                extra={"failed_attempts": recovered_after, "records": len(batch)},
            )


def _store_url(store: DecisionSink) -> str:
    return str(getattr(store, "url", type(store).__name__))
