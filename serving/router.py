"""The router: asks the classifier within a time budget, then applies policy.

`RouterCore` is plain Python (rules, automation, the policy call);
`Router` is the Ray Serve deployment that holds the classifier handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from features.schema import Ticket
from features.taxonomy import load_taxonomy
from features.text import build_text
from serving.decision import Decision, ModelProposal, ModelState
from serving.policy import AutomationPolicy, decide, load_automation_policy
from serving.recording import records_for
from serving.rules import RuleBook, load_rules
from serving.settings import ServingSettings
from training.thresholds import RoutingThresholds

log = logging.getLogger(__name__)

ClassifyCall = Callable[[str], Awaitable[dict[str, Any]]]
Outcome = tuple[ModelProposal | None, ModelState]


class RouterCore:
    """Everything the router does that does not need Ray."""

    def __init__(self, rules: RuleBook, automation: AutomationPolicy) -> None:
        self.rules = rules
        self.automation = automation

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> RouterCore:
        taxonomy = load_taxonomy(settings.taxonomy_path)
        rules = load_rules(settings.rules_path, taxonomy)
        automation = load_automation_policy(settings.policy_path, taxonomy)
        return cls(rules, automation)

    def decide_all(
        self,
        tickets: list[Ticket],
        results: list[dict[str, Any]] | None,
        *,
        contexts: list[dict[str, Any] | None] | None = None,
        failure: ModelState | None = None,
    ) -> list[Decision]:
        """Decide tickets from classifier results already in hand (batch, stream).

        `results` is one classifier answer per ticket, or None with `failure`
        saying why the classifier did not run.
        """
        if results is None:
            state = failure or ModelState(status="unavailable")
            outcomes: list[Outcome] = [(None, state)] * len(tickets)
        else:
            outcomes = [proposal_from_result(result) for result in results]
        return self._decide_each(tickets, outcomes, contexts)

    async def route(
        self,
        tickets: list[Ticket],
        classify: ClassifyCall,
        timeout_s: float,
        *,
        contexts: list[dict[str, Any] | None] | None = None,
    ) -> list[Decision]:
        """Decide every ticket; the classifier's failure only changes the reason.

        `timeout_s` is the budget of the whole call: the classifier answers
        the tickets of one call together, so a batch route passes a larger one.
        """
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(self._propose(ticket, classify, timeout_s) for ticket in tickets)
        )
        decisions = self._decide_each(tickets, list(outcomes), contexts)
        latency_ms = (time.perf_counter() - started) * 1000
        for decision in decisions:
            decision.latency_ms = latency_ms
        return decisions

    def _decide_each(
        self,
        tickets: list[Ticket],
        outcomes: list[Outcome],
        contexts: list[dict[str, Any] | None] | None,
    ) -> list[Decision]:
        contexts = contexts or [None] * len(tickets)
        return [
            decide(
                ticket,
                proposal=proposal,
                state=state,
                rules=self.rules,
                automation=self.automation,
                context=context,
            )
            for ticket, (proposal, state), context in zip(
                tickets, outcomes, contexts, strict=True
            )
        ]

    async def _propose(
        self, ticket: Ticket, classify: ClassifyCall, timeout_s: float
    ) -> Outcome:
        text = build_text(ticket.subject, ticket.body).text
        try:
            result = await asyncio.wait_for(classify(text), timeout=timeout_s)
        except TimeoutError:
            log.warning(
                "classifier timed out, routing by rules",
                extra={"ticket_id": ticket.id, "timeout_s": timeout_s},
            )
            return None, ModelState(
                status="timeout", detail=f"no answer in {timeout_s}s"
            )
        except Exception as err:  # the classifier failing must never fail a ticket
            log.warning(
                "classifier unavailable, routing by rules",
                extra={"ticket_id": ticket.id, "error": type(err).__name__},
            )
            return None, ModelState(status="unavailable", detail=type(err).__name__)
        return proposal_from_result(result)


def proposal_from_result(
    result: dict[str, Any],
) -> tuple[ModelProposal | None, ModelState]:
    """Turn the classifier's answer for one text into a proposal and a state."""
    if result.get("status") != "ready":
        status = result.get("status", "unavailable")
        return None, ModelState(status=status, detail=str(result.get("detail", "")))
    try:
        # Validated from a mapping: the model derives confidence and margin.
        proposal = ModelProposal.model_validate(
            {
                "model_name": result["model_name"],
                "model_version": result["model_version"],
                "top_queues": [tuple(pair) for pair in result["top_queues"]],
                "similarity": result.get("similarity"),
                "thresholds": RoutingThresholds.model_validate(result["thresholds"]),
            }
        )
    except (KeyError, TypeError, ValueError) as err:
        # A malformed answer is a broken model, never a failed ticket.
        log.warning("classifier answer unusable", extra={"error": type(err).__name__})
        return None, ModelState(status="unavailable", detail=f"bad answer: {err}")
    return proposal, ModelState(status="ready")


def _open_writer(settings: ServingSettings) -> Any:
    if not settings.record_decisions:
        return None
    from monitoring.store import open_store
    from monitoring.writer import DecisionWriter

    return DecisionWriter(open_store(settings))


def _deployment() -> Any:
    from ray import serve

    @serve.deployment(name="Router", max_ongoing_requests=512)
    class Router:
        """Ray Serve deployment composing the classifier with the policy."""

        def __init__(
            self,
            classifier: Any,
            settings: dict[str, Any],
            classifier_timeout_s: float,
            per_ticket_s: float = 0.05,
        ) -> None:
            serving_settings = ServingSettings.model_validate(settings)
            self.core = RouterCore.from_settings(serving_settings)
            self.classifier = classifier
            self.timeout_s = classifier_timeout_s
            self.per_ticket_s = per_ticket_s
            self.writer = _open_writer(serving_settings)

        async def route(
            self, tickets: list[Ticket], request_id: str
        ) -> list[dict[str, Any]]:
            budget_s = self.timeout_s + self.per_ticket_s * (len(tickets) - 1)
            decisions = await self.core.route(tickets, self._classify, budget_s)
            if self.writer is not None:
                # Queued for a background thread: the response does not wait.
                self.writer.submit(records_for(tickets, decisions, request_id, "http"))
            return [decision.model_dump(mode="json") for decision in decisions]

        def __del__(self) -> None:
            # Serve calls __del__ on a clean replica stop: flush what is queued.
            if getattr(self, "writer", None) is not None:
                self.writer.close()

        async def rules_info(self) -> dict[str, Any]:
            return {
                "rule_set_version": self.core.rules.version,
                "source": self.core.rules.source,
            }

        async def _classify(self, text: str) -> dict[str, Any]:
            response = self.classifier.classify.remote(text)
            try:
                return await response
            except asyncio.CancelledError:
                response.cancel()
                raise

    return Router
