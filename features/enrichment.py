"""Attach a `Context` to each ticket from its context sources, within a budget.

An `Enricher` asks every connector (one per source: CRM, billing,
entitlements, identity, telemetry) at once and waits for them together for one
per-ticket time budget. A source that does not answer in time, raises, or has
its circuit breaker open is recorded in `Context.sources` with that outcome and
the ticket is decided without its facts: enrichment never fails a ticket.

Account-keyed sources (CRM, billing, entitlements, identity) are skipped for a
ticket without an `account_id`; telemetry is looked up by the ticket's product
and region, with or without an account, and skipped when either is missing.

Online serving awaits `Enricher.enrich`; the batch and stream runners call
`Enricher.enrich_many_sync`, which runs the same code on an event loop of its
own. For a group of tickets, a connector that is also a `BulkConnector` (the
local store's) is asked once for the whole group, within one budget from when
the group started; the others are still asked ticket by ticket. Either way
each ticket gets the same statuses, facts, counts, observer calls and logs.
`build_enricher` makes the one that `Settings.enrichment` names.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, Field

from features.context import (
    MISSING_OUTCOMES,
    SECTION_MODELS,
    SOURCES,
    Context,
    Source,
    SourceOutcome,
    SourceStatus,
)
from features.errors import ConfigError, SwitchboardError
from features.schema import Ticket
from features.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Sources that only the account id can answer for.
ACCOUNT_SOURCES: tuple[Source, ...] = ("crm", "billing", "entitlements", "identity")
DEFAULT_BUDGET_S = 0.15
# Tickets `enrich_many` enriches at once. Local connectors read in threads
# from asyncio's default pool; with thousands of tickets in flight the reads
# would queue behind each other and every ticket would run out of budget.
DEFAULT_MAX_CONCURRENCY = 32
# How long `aclose` waits for connector calls cut off by a budget to unwind.
_STRAGGLER_GRACE_S = 1.0

Observer = Callable[[Source, SourceOutcome, float], None]
"""Called as `observer(source, outcome, latency_ms)` once per source per ticket."""


class CircuitOpenError(SwitchboardError):
    """A source's circuit breaker is open: the call was refused without trying.

    Connectors raise it; the `Enricher` records the source as `circuit_open`.
    """

    def __init__(self, source: str, retry_in_s: float) -> None:
        self.source = source
        self.retry_in_s = retry_in_s
        super().__init__(
            f"{source}: circuit breaker open after repeated failures; the next "
            f"trial call goes through in {retry_in_s:.1f} s"
        )


@dataclass(frozen=True)
class ContextKey:
    """What a connector may look a ticket's context up by: ids, never text."""

    ticket_id: str
    account_id: str | None = None
    product: str | None = None
    region: str | None = None

    @classmethod
    def for_ticket(cls, ticket: Ticket) -> ContextKey:
        return cls(
            ticket_id=ticket.id,
            account_id=ticket.account_id,
            product=ticket.product,
            region=ticket.region,
        )


class Connector(Protocol):
    """Answers one context source.

    `fetch` returns the source's section model (`SECTION_MODELS[source]`), or
    None when the source has no record for the key, and raises on any failure;
    the `Enricher` turns failures into outcomes, so a connector need not.
    """

    source: Source

    async def fetch(self, key: ContextKey) -> BaseModel | None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BulkConnector(Connector, Protocol):
    """A connector that can also answer a group of tickets in one call.

    `fetch_many` returns what `fetch` would for each key, in the keys' order,
    and raises when the call as a whole fails: `Enricher.enrich_many` then
    records that outcome for every ticket it asked about. Connectors without
    it are asked ticket by ticket.
    """

    async def fetch_many(
        self, keys: Sequence[ContextKey]
    ) -> list[BaseModel | None]: ...


class SourceStats(BaseModel):
    """How one source has answered since the `Enricher` was made."""

    counts: dict[SourceOutcome, int] = Field(default_factory=dict)
    attempted: int = Field(default=0, description="Every outcome but skipped.")
    success_rate: float | None = Field(
        default=None, description="ok + not_found over attempted; None before any."
    )


class EnrichmentStats(BaseModel):
    """Per-source outcome counts and success rates, and the same over all."""

    sources: dict[Source, SourceStats] = Field(default_factory=dict)
    attempted: int = 0
    success_rate: float | None = None


class Enricher:
    """Asks every connector for a ticket's context at once, within one budget.

    Args:
        connectors: one per source; sources without a connector are left out
            of `Context.sources`.
        budget_s: time one ticket waits for all its sources together.
        observer: called once per source per ticket with the outcome and
            latency (serving exports them to Prometheus); its errors are
            logged, never raised.
        max_concurrency: tickets `enrich_many` enriches at once through the
            connectors that are not `BulkConnector`s.

    Raises:
        ConfigError: two connectors answer the same source, or a bound is not
            positive.

    Use one `Enricher` either from async code (`enrich`, `enrich_many`,
    `aclose`) or through the sync methods (`enrich_many_sync`, `close`), not
    both: an HTTP connector's connection pool belongs to the event loop it
    first ran on.

    `enrich_many` asks each `BulkConnector` once for all the tickets it does
    not skip, within `budget_s` from when the group started: a bulk call that
    does not answer in time is a timeout for every ticket it was asked about,
    one that raises is that error for each. `enrich` asks every connector
    ticket by ticket.
    """

    def __init__(
        self,
        connectors: Iterable[Connector],
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        observer: Observer | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        if budget_s <= 0 or max_concurrency < 1:
            raise ConfigError(
                f"enrichment budget_s must be > 0 and max_concurrency >= 1, got "
                f"{budget_s} and {max_concurrency}"
            )
        self._connectors: dict[Source, Connector] = {}
        for connector in connectors:
            if connector.source in self._connectors:
                raise ConfigError(
                    f"two connectors for source {connector.source!r}; give each "
                    "source one connector"
                )
            self._connectors[connector.source] = connector

        self.budget_s = budget_s
        self.max_concurrency = max_concurrency
        self._observer = observer
        self._counts: dict[Source, Counter[SourceOutcome]] = {
            source: Counter() for source in self._connectors
        }
        # Calls cut off by the budget, kept so they are not garbage-collected
        # while they unwind and so `aclose` can wait for them.
        self._stragglers: set[asyncio.Task[Any]] = set()
        self._loop_thread: _LoopThread | None = None
        self._loop_lock = threading.Lock()

    @property
    def sources(self) -> tuple[Source, ...]:
        """The sources this enricher has a connector for, in `SOURCES` order."""
        return tuple(source for source in SOURCES if source in self._connectors)

    @property
    def connectors(self) -> tuple[Connector, ...]:
        """The connectors, in `SOURCES` order."""
        return tuple(self._connectors[source] for source in self.sources)

    async def enrich(self, ticket: Ticket) -> Context:
        """The ticket's context, within `budget_s`; never raises for a source.

        Returns:
            A `Context` whose `sources` has one status per connector: ok,
            not_found, skipped, or error / timeout / circuit_open, in which
            case that section keeps its defaults and `Context.missing` names it.
        """
        key = ContextKey.for_ticket(ticket)
        statuses, sections = await self._ask_each(key, self._connectors)
        return self._assemble(key, statuses, sections)

    async def enrich_many(self, tickets: Iterable[Ticket]) -> list[Context]:
        """Contexts for many tickets, in order; never raises for a source.

        Each `BulkConnector` is asked once for the group, within `budget_s`
        from the start of this call; every other connector is asked per
        ticket, `max_concurrency` tickets at a time, each ticket within its
        own budget. The statuses are those `enrich` would give.
        """
        keys = [ContextKey.for_ticket(ticket) for ticket in tickets]
        if not keys:
            return []
        bulk = {
            source: connector
            for source, connector in self._connectors.items()
            if isinstance(connector, BulkConnector)
        }
        each = {s: c for s, c in self._connectors.items() if s not in bulk}
        started = time.perf_counter()
        # Started before the gated per-ticket calls so the bulk budget runs
        # while they queue.
        bulk_part = asyncio.gather(
            *(self._ask_bulk(connector, keys, started) for connector in bulk.values())
        )
        gate = asyncio.Semaphore(self.max_concurrency)

        async def enrich_one(n: int, key: ContextKey) -> Context:
            statuses: dict[Source, SourceStatus] = {}
            sections: dict[Source, BaseModel] = {}
            if each:
                async with gate:
                    statuses, sections = await self._ask_each(key, each)
            for source, judged in zip(bulk, await bulk_part, strict=True):
                statuses[source], section = judged[n]
                if section is not None:
                    sections[source] = section
            # Recorded as soon as the ticket is whole, as `enrich` would.
            return self._assemble(key, statuses, sections)

        try:
            return list(
                await asyncio.gather(*(enrich_one(n, k) for n, k in enumerate(keys)))
            )
        except BaseException:
            # The caller gave up: the bulk calls must not outlive it either.
            bulk_part.cancel()
            raise

    def enrich_many_sync(self, tickets: Iterable[Ticket]) -> list[Context]:
        """`enrich_many` for code without an event loop (batch, stream).

        Runs on an event loop thread this enricher owns, so it works from any
        thread, several at once; `close` stops that thread.
        """
        return self._loop().run(self.enrich_many(list(tickets)))

    def stats(self) -> EnrichmentStats:
        """Outcome counts per source and success rates, skipped excluded."""
        per_source = {
            source: _source_stats(self._counts[source]) for source in self.sources
        }
        attempted = sum(stats.attempted for stats in per_source.values())
        succeeded = sum(
            counts["ok"] + counts["not_found"] for counts in self._counts.values()
        )
        return EnrichmentStats(
            sources=per_source,
            attempted=attempted,
            success_rate=succeeded / attempted if attempted else None,
        )

    async def aclose(self) -> None:
        """Wait briefly for cut-off calls, then close every connector."""
        loop = asyncio.get_running_loop()
        stragglers = [task for task in self._stragglers if task.get_loop() is loop]
        if stragglers:
            await asyncio.wait(stragglers, timeout=_STRAGGLER_GRACE_S)

        connectors = list(self._connectors.values())
        results = await asyncio.gather(
            *(connector.aclose() for connector in connectors), return_exceptions=True
        )
        for connector, result in zip(connectors, results, strict=True):
            if isinstance(result, Exception):
                log.warning(
                    "context connector did not close cleanly",
                    extra={"source": connector.source, "error": type(result).__name__},
                )

    def close(self) -> None:
        """Close the connectors and stop the sync path's event loop thread."""
        with self._loop_lock:
            runner, self._loop_thread = self._loop_thread, None
        runner = runner or _LoopThread()
        try:
            runner.run(self.aclose())
        finally:
            runner.stop()

    async def _ask_each(
        self, key: ContextKey, connectors: Mapping[Source, Connector]
    ) -> _TicketAnswers:
        """Ask the connectors for one ticket at once; judge them at its budget."""
        statuses: dict[Source, SourceStatus] = {}
        tasks: dict[asyncio.Task[_Answer], Source] = {}
        for source, connector in connectors.items():
            reason = _skip_reason(source, key)
            if reason:
                statuses[source] = SourceStatus(outcome="skipped", detail=reason)
            else:
                tasks[asyncio.create_task(_ask(connector, key))] = source

        started = time.perf_counter()
        done: set[asyncio.Task[_Answer]] = set()
        if tasks:
            try:
                done, _ = await asyncio.wait(tasks, timeout=self.budget_s)
            except asyncio.CancelledError:
                # The caller gave up (a request cancelled, a shutdown): its
                # connector calls must not outlive it.
                for task in tasks:
                    self._abandon(task)
                raise
        waited_ms = (time.perf_counter() - started) * 1000

        sections: dict[Source, BaseModel] = {}
        for task, source in tasks.items():
            if task in done:
                status, section = _judge(source, task.result())
                if section is not None:
                    sections[source] = section
            else:
                status = self._timeout(waited_ms)
                self._abandon(task)
            statuses[source] = status
        return statuses, sections

    async def _ask_bulk(
        self, connector: BulkConnector, keys: Sequence[ContextKey], started: float
    ) -> list[tuple[SourceStatus, BaseModel | None]]:
        """One source's status and section per key, from one `fetch_many` call.

        The call has what is left of the group's budget from `started`.
        """
        source = connector.source
        reasons = [_skip_reason(source, key) for key in keys]
        # Frozen statuses, so tickets skipped for the same reason share one.
        skipped = {
            reason: SourceStatus(outcome="skipped", detail=reason)
            for reason in set(reasons)
            if reason
        }
        judged: list[tuple[SourceStatus, BaseModel | None]] = [
            (skipped.get(reason, _PENDING), None) for reason in reasons
        ]
        asked = [n for n, reason in enumerate(reasons) if not reason]
        if not asked:
            return judged

        task = asyncio.create_task(_ask_many(connector, [keys[n] for n in asked]))
        left_s = self.budget_s - (time.perf_counter() - started)
        try:
            done, _ = await asyncio.wait({task}, timeout=max(left_s, 0.0))
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        waited_ms = (time.perf_counter() - started) * 1000

        if task not in done:
            self._abandon(task)
            timeout = self._timeout(waited_ms)
            for n in asked:
                judged[n] = (timeout, None)
            return judged
        for n, answer in zip(asked, task.result(), strict=True):
            judged[n] = _judge(source, answer)
        return judged

    def _timeout(self, waited_ms: float) -> SourceStatus:
        return SourceStatus(
            outcome="timeout",
            latency_ms=waited_ms,
            detail=f"no answer within the {self.budget_s * 1000:g} ms budget",
        )

    def _assemble(
        self,
        key: ContextKey,
        statuses: Mapping[Source, SourceStatus],
        sections: Mapping[Source, BaseModel],
    ) -> Context:
        """The ticket's `Context`, its statuses recorded in `SOURCES` order."""
        ordered = {source: statuses[source] for source in SOURCES if source in statuses}
        self._record(key, ordered)
        return Context.model_validate(
            {"account_id": key.account_id, "sources": ordered, **sections}
        )

    def _loop(self) -> _LoopThread:
        with self._loop_lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            return self._loop_thread

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._stragglers.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._stragglers.discard(task)
        # Read the outcome so asyncio does not log "exception never retrieved"
        # for a call whose answer nobody wants any more.
        if not task.cancelled():
            task.exception()

    def _record(self, key: ContextKey, statuses: Mapping[Source, SourceStatus]) -> None:
        for source, status in statuses.items():
            self._counts[source][status.outcome] += 1
            if status.outcome in MISSING_OUTCOMES:
                log.warning(
                    "context source failed, deciding without it",
                    extra={
                        "source": source,
                        "outcome": status.outcome,
                        "ticket_id": key.ticket_id,
                        "detail": status.detail,
                        "latency_ms": round(status.latency_ms, 1),
                    },
                )
            self._notify(source, status)

    def _notify(self, source: Source, status: SourceStatus) -> None:
        if self._observer is None:
            return
        try:
            self._observer(source, status.outcome, status.latency_ms)
        except Exception as err:
            log.warning(
                "enrichment observer failed",
                extra={"source": source, "error": type(err).__name__},
            )


def build_enricher(
    settings: Settings, *, env: Mapping[str, str] | None = None
) -> Enricher | None:
    """The enricher `settings.enrichment` names, or None when it is "off".

    "local" reads the context store at `settings.resolved_context_store_url()`,
    seeding it first when it is empty; "http" builds one `HttpConnector` per
    source in `settings.connectors_path`.

    Args:
        settings: the process settings.
        env: where HTTP connectors read their secrets; `os.environ` by default.

    Raises:
        ConfigError: the connectors file is invalid, a secret's environment
            variable is unset, or the context store URL is unusable.
    """
    if settings.enrichment == "off":
        log.info("enrichment off, rules see an empty context")
        return None

    # Imported here because both modules import this one for `ContextKey`.
    from features.connectors import HttpConnector, LocalConnector, load_connector_config
    from features.context_store import ContextStore, seed_context_store

    connectors: list[Connector]
    if settings.enrichment == "http":
        config = load_connector_config(settings.connectors_path)
        connectors = [
            HttpConnector(source, source_config, env=env)
            for source, source_config in config.sources.items()
        ]
    else:
        store = ContextStore(settings.resolved_context_store_url())
        if store.is_empty():
            seed_context_store(store)
        connectors = [LocalConnector(store, source) for source in SOURCES]

    enricher = Enricher(connectors, budget_s=settings.enrichment_budget_ms / 1000)
    log.info(
        "enrichment ready",
        extra={
            "enrichment": settings.enrichment,
            "sources": list(enricher.sources),
            "budget_ms": settings.enrichment_budget_ms,
        },
    )
    return enricher


@dataclass(frozen=True)
class _Answer:
    section: BaseModel | None = None
    error: Exception | None = None
    latency_ms: float = 0.0


# One ticket's statuses and usable sections, before they become a `Context`.
_TicketAnswers = tuple[dict[Source, SourceStatus], dict[Source, BaseModel]]
# Holds a bulk call's place in its list until the call is judged.
_PENDING = SourceStatus(outcome="timeout")


class _LoopThread:
    """An event loop running on a daemon thread, for callers without one."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="enrichment-loop", daemon=True
        )
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def stop(self) -> None:
        # The threads local connectors read in belong to this loop's default
        # executor; `loop.close` alone would leave them running.
        self.run(self._loop.shutdown_default_executor())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _skip_reason(source: Source, key: ContextKey) -> str:
    if source in ACCOUNT_SOURCES and not key.account_id:
        return "no account_id"
    # Incidents are per product and region; with either unknown, any match
    # would be a guess.
    if source == "telemetry" and not (key.product and key.region):
        return "no product and region"
    return ""


async def _ask(connector: Connector, key: ContextKey) -> _Answer:
    started = time.perf_counter()
    try:
        section = await connector.fetch(key)
    except Exception as err:
        return _Answer(error=err, latency_ms=(time.perf_counter() - started) * 1000)
    return _Answer(section=section, latency_ms=(time.perf_counter() - started) * 1000)


async def _ask_many(
    connector: BulkConnector, keys: Sequence[ContextKey]
) -> list[_Answer]:
    """One answer per key; the call's failure, and latency, is every key's."""
    started = time.perf_counter()
    error: Exception | None = None
    sections: list[BaseModel | None] = []
    try:
        sections = await connector.fetch_many(keys)
    except Exception as err:
        error = err
    latency_ms = (time.perf_counter() - started) * 1000

    if error is None and len(sections) != len(keys):
        # A connector bug, reported like any other failure of the source.
        error = ValueError(f"fetch_many answered {len(sections)} of {len(keys)} keys")
    if error is not None:
        return [_Answer(error=error, latency_ms=latency_ms)] * len(keys)
    return [_Answer(section=s, latency_ms=latency_ms) for s in sections]


def _judge(source: Source, answer: _Answer) -> tuple[SourceStatus, BaseModel | None]:
    """The status an answer earns, and the section to keep if it is usable."""
    latency_ms = answer.latency_ms
    error = answer.error
    if error is not None:
        outcome: SourceOutcome = "error"
        if isinstance(error, CircuitOpenError):
            outcome = "circuit_open"
        elif isinstance(error, TimeoutError):
            outcome = "timeout"
        # The class name only: an exception's message may quote the record.
        detail = type(error).__name__
        return SourceStatus(outcome=outcome, latency_ms=latency_ms, detail=detail), None
    if answer.section is None:
        return SourceStatus(outcome="not_found", latency_ms=latency_ms), None
    if not isinstance(answer.section, SECTION_MODELS[source]):
        # A connector bug, reported like any other failure of the source.
        status = SourceStatus(
            outcome="error", latency_ms=latency_ms, detail="TypeError"
        )
        return status, None
    return SourceStatus(outcome="ok", latency_ms=latency_ms), answer.section


def _source_stats(counts: Counter[SourceOutcome]) -> SourceStats:
    attempted = sum(n for outcome, n in counts.items() if outcome != "skipped")
    succeeded = counts["ok"] + counts["not_found"]
    return SourceStats(
        counts=dict(counts),
        attempted=attempted,
        success_rate=succeeded / attempted if attempted else None,
    )
