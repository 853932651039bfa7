"""Work around each decision: enrichment before, cases and notifications after.

`CaseDesk` is shared by the Router deployment, the in-process backend and
the stream runner, so a ticket gets the same treatment whichever way it
came:

- before deciding, `enrich` attaches each ticket's `Context` within the
  per-ticket budget (never failing a ticket);
- after deciding, `record` queues the decisions for the audit log, keeps
  each ticket's case (the ticket, its context, the classifier's answer and
  the sources its decision rested on) and sends the notifications the rules
  asked for, in the background;
- `apply_event` takes a context change (an invoice paid, an incident
  opened) and decides again every open ticket of that account whose
  decision rested on the changed source, recording each re-route with its
  cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from features.context import (
    MISSING_OUTCOMES,
    Context,
    ContextEvent,
    apply_context_event,
)
from features.schema import Ticket
from monitoring.cases import Case, CaseStore
from monitoring.store import DecisionRecord, DecisionStore, RoutingPath
from serving.decision import Decision
from serving.recording import records_for
from serving.router import RouterCore
from serving.settings import ServingSettings

# One request's tickets with their contexts, classifier answers, decisions,
# and the request id they are stored under.
RecordGroup = tuple[
    Sequence[Ticket],
    Sequence[Context | None],
    Sequence[dict[str, Any] | None],
    Sequence[Decision],
    str,
]

log = logging.getLogger(__name__)

EVENT_ACTOR = "context-event"


class Reroute(BaseModel):
    """One open ticket decided again because its context changed."""

    ticket_id: str
    decision_id: str
    from_queue: str
    to_queue: str
    from_priority: str
    to_priority: str

    @property
    def is_moved(self) -> bool:
        return self.from_queue != self.to_queue


class EventOutcome(BaseModel):
    """What a context event did: the tickets it reached and where they went."""

    event_id: str
    source: str
    account_id: str | None
    open_cases: int = Field(description="Open cases of the account.")
    redecided: list[Reroute] = Field(default_factory=list)

    @property
    def moved(self) -> list[Reroute]:
        return [reroute for reroute in self.redecided if reroute.is_moved]


class CaseDesk:
    """Enrichment, case keeping, notifications and event re-routing.

    All parts are optional: with enrichment off tickets are decided with an
    empty context; with no store nothing is recorded and events reach no
    case. Thread-compatible; use one per replica or process.
    """

    def __init__(
        self,
        core: RouterCore,
        *,
        enricher: Any = None,
        store: DecisionStore | None = None,
        notifier: Any = None,
        writer: Any = None,
        context_store: Any = None,
        blocking: bool = False,
        owns_enricher: bool = True,
    ) -> None:
        self.core = core
        self.owns_enricher = owns_enricher
        self.enricher = enricher
        self.store = store
        self.cases = CaseStore(store) if store is not None else None
        self.notifier = notifier
        self.writer = writer
        self.context_store = context_store
        # Blocking callers (stream consumers) run each call on a new event
        # loop; enrichment then goes through the enricher's own loop thread.
        self.blocking = blocking
        # Case upserts are small writes; one thread keeps them in order and
        # off the request path.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="case")
        self._notifications: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: ServingSettings,
        core: RouterCore,
        *,
        writer: Any = None,
        enricher: Any = None,
        blocking: bool = False,
    ) -> CaseDesk:
        from features.enrichment import build_enricher
        from monitoring.governance import GovernanceLog
        from serving.notify import Notifier, load_notification_config

        owns_enricher = enricher is None
        enricher = enricher if enricher is not None else build_enricher(settings)
        store = _open_store(settings)
        config = load_notification_config(settings.notifications_path, core.rules)
        # Without a store notifications are still sent, just not recorded.
        notifier = Notifier(config, GovernanceLog(store) if store else None)
        context_store = None
        if settings.enrichment == "local":
            from features.context_store import ContextStore

            context_store = ContextStore(settings.resolved_context_store_url())
        return cls(
            core,
            enricher=enricher,
            store=store,
            notifier=notifier,
            writer=writer,
            context_store=context_store,
            blocking=blocking,
            owns_enricher=owns_enricher,
        )

    async def enrich(self, tickets: Sequence[Ticket]) -> list[Context | None]:
        """Each ticket's context; None for all when enrichment is off."""
        if self.enricher is None:
            return [None] * len(tickets)
        if self.blocking:
            return await asyncio.to_thread(self.enrich_sync, tickets)
        contexts: list[Context | None] = list(
            await self.enricher.enrich_many(list(tickets))
        )
        return contexts

    def enrich_sync(self, tickets: Sequence[Ticket]) -> list[Context | None]:
        if self.enricher is None:
            return [None] * len(tickets)
        return list(self.enricher.enrich_many_sync(list(tickets)))

    def record(
        self,
        tickets: Sequence[Ticket],
        contexts: Sequence[Context | None],
        answers: Sequence[dict[str, Any] | None],
        decisions: Sequence[Decision],
        request_id: str,
        path: RoutingPath,
    ) -> None:
        """Queue the decisions for the audit log and keep each ticket's case."""
        self.record_many([(tickets, contexts, answers, decisions, request_id)], path)

    def record_many(self, groups: Sequence[RecordGroup], path: RoutingPath) -> None:
        """`record` for the requests decided together, each with its request id.

        Their cases are kept in one background write (one transaction).
        """
        cases: list[tuple[Case, str]] = []
        for tickets, contexts, answers, decisions, request_id in groups:
            if self.writer is not None:
                self.writer.submit(records_for(tickets, decisions, request_id, path))
            if self.cases is not None:
                cases.extend(
                    _cases_of(tickets, contexts, answers, decisions, request_id)
                )
            self._notify(tickets, decisions)
        if cases:
            self._background.submit(self._keep_cases, cases)

    def record_now(
        self,
        tickets: Sequence[Ticket],
        contexts: Sequence[Context | None],
        answers: Sequence[dict[str, Any] | None],
        decisions: Sequence[Decision],
        request_id: str,
    ) -> None:
        """Like `record` without the audit write: the caller stores decisions
        itself (the stream runner, before acknowledging), and cases are
        written before this returns."""
        if self.cases is not None:
            self._keep_cases(
                _cases_of(tickets, contexts, answers, decisions, request_id)
            )
        self._notify(tickets, decisions)

    async def apply_event(
        self, event: ContextEvent, via: RoutingPath = "http"
    ) -> EventOutcome:
        """Decide again the open tickets whose decision rested on what changed.

        The new decisions are stored with request id `event:<event_id>` and
        the path the event came by (the webhook: http; the stream: stream).
        """
        started = time.perf_counter()
        await asyncio.to_thread(self._apply_to_local_store, event)
        source = event.changed_source
        cases = await asyncio.to_thread(self._open_cases, event)
        affected = [case for case in cases if _rests_on(case, source)]

        outcome = EventOutcome(
            event_id=event.event_id,
            source=source,
            account_id=event.account_id,
            open_cases=len(cases),
        )
        if affected:
            reroutes = await self._redecide(affected, event, via)
            outcome.redecided.extend(reroutes)
        log.info(
            "context event applied",
            extra={
                "event_id": event.event_id,
                "source": source,
                "open_cases": len(cases),
                "redecided": len(outcome.redecided),
                "moved": len(outcome.moved),
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return outcome

    def close(self) -> None:
        self._background.shutdown(wait=True)
        if self.enricher is not None and self.owns_enricher:
            self.enricher.close()
        if self.context_store is not None:
            self.context_store.close()
        if self.store is not None:
            self.store.close()

    async def _redecide(
        self, cases: list[Case], event: ContextEvent, via: RoutingPath
    ) -> list[Reroute]:
        request_id = f"event:{event.event_id}"
        assert self.store is not None  # cases come from the store
        # A redelivered event re-decides nothing twice.
        store = self.store
        done = await asyncio.to_thread(
            lambda: {c.ticket_id for c in cases if store.has(c.ticket_id, request_id)}
        )
        cases = [case for case in cases if case.ticket_id not in done]
        if not cases:
            return []
        tickets = [Ticket.model_validate(case.ticket) for case in cases]
        contexts = await self.enrich(tickets)
        decisions = self.core.decide_all(
            tickets, [case.classifier_result for case in cases], contexts=contexts
        )
        records = records_for(tickets, decisions, request_id, via)
        await asyncio.to_thread(self._store_redecisions, records)

        reroutes = []
        for case, ticket, context, decision in zip(
            cases, tickets, contexts, decisions, strict=True
        ):
            reroute = Reroute(
                ticket_id=case.ticket_id,
                decision_id=decision.decision_id,
                from_queue=case.queue,
                to_queue=decision.queue,
                from_priority=case.priority,
                to_priority=decision.priority,
            )
            reroutes.append(reroute)
            kept = _case_for(ticket, context, case.classifier_result, decision)
            kept = kept.model_copy(
                update={"status": case.status, "opened_at": case.opened_at}
            )
            cause = {
                "event_id": event.event_id,
                "event_kind": event.kind,
                "source": event.changed_source,
                "from_queue": case.queue,
                "to_queue": decision.queue,
                "from_priority": case.priority,
                "to_priority": decision.priority,
            }
            kind = "rerouted" if reroute.is_moved else "decided"
            await asyncio.to_thread(self._upsert, kept, kind, cause)
        if self.blocking:
            # The caller's loop ends when this returns: deliver before then.
            await self._send_all(_wanted(tickets, decisions))
        else:
            self._notify(tickets, decisions)
        return reroutes

    def _store_redecisions(self, records: list[DecisionRecord]) -> None:
        assert self.store is not None
        self.store.append(records)

    def _upsert(self, case: Case, kind: str, cause: dict[str, Any] | None) -> None:
        assert self.cases is not None
        self.cases.upsert_decided(case, kind=kind, cause=cause, actor=EVENT_ACTOR)  # type: ignore[arg-type]

    def _keep_cases(self, cases: list[tuple[Case, str]]) -> None:
        """Store each (case, request id) in one transaction where possible."""
        assert self.cases is not None
        self.cases.upsert_decided_many(
            [(case, {"request_id": request_id}) for case, request_id in cases],
            kind="opened",
            actor="router",
        )

    def _open_cases(self, event: ContextEvent) -> list[Case]:
        if self.cases is None:
            return []
        regional = event.product is not None and event.region is not None
        if event.changed_source != "telemetry" or not regional:
            assert event.account_id is not None  # guaranteed by validation
            return self.cases.open_cases_for_account(event.account_id)
        # An incident on a product and region reaches every open case there,
        # whatever the account. Known limitation: this reads every open case;
        # with very many open tickets it wants an index on product and region.
        return [
            case
            for case in self.cases.open_cases()
            if case.ticket.get("product") == event.product
            and case.ticket.get("region") == event.region
        ]

    def _apply_to_local_store(self, event: ContextEvent) -> None:
        """In the embedded default the store is the source system: change it.

        With HTTP connectors the source system already changed; the fresh
        fetch during re-decision reads the new facts.
        """
        if self.context_store is None:
            return
        from features.enrichment import ContextKey

        source = event.changed_source
        # Incidents are regional (product and region): the store keeps them
        # apart from any account, so an incident event changes the region.
        owner = None if source == "telemetry" else event.account_id
        key = ContextKey(
            ticket_id=f"event:{event.event_id}",
            account_id=owner,
            product=event.product,
            region=event.region,
        )
        current = self.context_store.get(source, key)
        updated = apply_context_event(current, event)
        self.context_store.put(
            source,
            updated,
            account_id=owner,
            product=event.product,
            region=event.region,
        )

    def _notify(self, tickets: Sequence[Ticket], decisions: Sequence[Decision]) -> None:
        if self.notifier is None:
            return
        wanted = _wanted(tickets, decisions)
        if not wanted:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # No loop (a stream consumer): deliver before going on.
            asyncio.run(self._send_all(wanted))
            return
        task = asyncio.ensure_future(self._send_all(wanted))
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    async def _send_all(self, wanted: list[tuple[Ticket, Decision]]) -> None:
        if self.notifier is None:
            return
        for ticket, decision in wanted:
            await self.notifier.send(decision, ticket.account_id)


def _wanted(
    tickets: Sequence[Ticket], decisions: Sequence[Decision]
) -> list[tuple[Ticket, Decision]]:
    """The tickets whose decision asked for a notification."""
    return [
        (ticket, decision)
        for ticket, decision in zip(tickets, decisions, strict=True)
        if decision.notify
    ]


def _cases_of(
    tickets: Sequence[Ticket],
    contexts: Sequence[Context | None],
    answers: Sequence[dict[str, Any] | None],
    decisions: Sequence[Decision],
    request_id: str,
) -> list[tuple[Case, str]]:
    """Each ticket's case as its decision left it, with the request id."""
    return [
        (_case_for(ticket, context, answer, decision), request_id)
        for ticket, context, answer, decision in zip(
            tickets, contexts, answers, decisions, strict=True
        )
    ]


def _case_for(
    ticket: Ticket,
    context: Context | None,
    answer: dict[str, Any] | None,
    decision: Decision,
) -> Case:
    now = datetime.now(UTC)
    return Case(
        ticket_id=ticket.id,
        ticket=ticket.model_dump(mode="json"),
        account_id=ticket.account_id,
        context=context.model_dump(mode="json") if context is not None else None,
        classifier_result=answer,
        decision_id=decision.decision_id,
        queue=decision.queue,
        priority=decision.priority,
        mode=decision.mode,
        tier=(context.crm.tier if context and context.crm.tier else None)
        or (ticket.account_tier.value if ticket.account_tier else None),
        context_sources_used=list(decision.context_sources_used),
        opened_at=ticket.created_at,
        updated_at=now,
    )


def _rests_on(case: Case, source: str) -> bool:
    """Whether the case's decision read the source, or was made without it."""
    if source in case.context_sources_used:
        return True
    status = (case.context or {}).get("sources", {}).get(source, {})
    return status.get("outcome") in MISSING_OUTCOMES


def _open_store(settings: ServingSettings) -> DecisionStore | None:
    if not settings.record_decisions:
        return None
    from monitoring.store import open_store

    return open_store(settings)
