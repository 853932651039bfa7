"""In-process decisions for many tickets at once: the batch and stream paths.

The same `RouterCore` (rules, automation, `decide`) and `ClassifierCore`
(champion bundle and encoder) as the online service, called synchronously
with one encoder call per micro-batch, and the same enrichment: each
ticket's context is fetched within the per-ticket budget before it is
decided.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from features.encoder import limit_torch_threads
from features.schema import Ticket
from features.text import build_text
from serving.classifier import ClassifierCore
from serving.decision import Decision, ModelState
from serving.router import RouterCore
from serving.settings import ServingSettings

log = logging.getLogger(__name__)


class DecisionEngine:
    """Rules and the champion in this process; thread-compatible, not thread-safe."""

    def __init__(self, settings: ServingSettings, *, use_model: bool = True) -> None:
        from features.enrichment import build_enricher

        limit_torch_threads(settings.torch_threads)
        self.router = RouterCore.from_settings(settings)
        self.classifier = ClassifierCore(settings)
        self.enricher = build_enricher(settings)
        if use_model:
            self.classifier.refresh()

    @property
    def model_version(self) -> str | None:
        loaded = self.classifier.loaded
        return loaded.version.version if loaded else None

    def decide_many(
        self,
        tickets: list[Ticket],
        contexts: list[Any] | None = None,
    ) -> list[Decision]:
        """Decisions in ticket order; a classifier failure only changes the reason."""
        return self.decide_detailed(tickets, contexts)[0]

    def decide_detailed(
        self,
        tickets: list[Ticket],
        contexts: list[Any] | None = None,
    ) -> tuple[list[Decision], list[dict[str, Any] | None], list[Any]]:
        """Decisions with each ticket's classifier answer and context.

        Contexts not given are fetched from the enrichment sources.
        """
        if not tickets:
            return [], [], []
        if contexts is None:
            contexts = (
                list(self.enricher.enrich_many_sync(tickets))
                if self.enricher is not None
                else [None] * len(tickets)
            )
        started = time.perf_counter()
        texts = [build_text(ticket.subject, ticket.body).text for ticket in tickets]
        try:
            results = self.classifier.classify(texts)
            failure = None
        except Exception as err:  # a broken model must not lose the batch
            log.warning(
                "classifier failed, routing batch by rules",
                extra={"tickets": len(tickets), "error": type(err).__name__},
            )
            results, failure = None, ModelState(status="unavailable", detail=str(err))
        decisions = self.router.decide_all(
            tickets, results, contexts=contexts, failure=failure
        )
        latency_ms = (time.perf_counter() - started) * 1000 / len(tickets)
        for decision in decisions:
            decision.latency_ms = latency_ms
        answers: list[dict[str, Any] | None] = (
            list(results) if results is not None else [None] * len(tickets)
        )
        return decisions, answers, contexts

    def close(self) -> None:
        if self.enricher is not None:
            self.enricher.close()
