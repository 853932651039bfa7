"""The router: asks the classifier within a time budget, then applies policy.

`RouterCore` is plain Python (rules, automation, the policy call);
`Router` is the Ray Serve deployment that holds the classifier handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from features.schema import Ticket
from features.taxonomy import load_taxonomy
from features.text import build_text
from serving.decision import Decision, ModelProposal, ModelState
from serving.drift_gate import (
    DriftSource,
    DriftView,
    add_shadow_reasons,
    apply_drift,
    observation_for,
)
from serving.policy import AutomationPolicy, decide, load_automation_policy
from serving.rules import RuleBook, load_rules
from serving.settings import ServingSettings
from training.thresholds import RoutingThresholds

log = logging.getLogger(__name__)

# One classifier answer per text, in order, for all the texts of one call.
ClassifyCall = Callable[[list[str]], Awaitable[list[dict[str, Any]]]]
# Each ticket's context, in order (None: not enriched).
EnrichCall = Callable[[list[Ticket]], Awaitable[list[Any]]]
Outcome = tuple[ModelProposal | None, ModelState]
NOT_CLASSIFIED = ModelState(
    status="unavailable", detail="no classifier answer kept for this ticket"
)


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
        results: Sequence[dict[str, Any] | None] | None,
        *,
        contexts: list[Any] | None = None,
        failure: ModelState | None = None,
    ) -> list[Decision]:
        """Decide tickets from classifier results already in hand (batch, stream).

        `results` is one classifier answer per ticket (None for a ticket the
        classifier never answered), or None with `failure` saying why the
        classifier did not run.
        """
        if results is None:
            state = failure or ModelState(status="unavailable")
            outcomes: list[Outcome] = [(None, state)] * len(tickets)
        else:
            outcomes = [
                proposal_from_result(result)
                if result is not None
                else (None, NOT_CLASSIFIED)
                for result in results
            ]
        return self._decide_each(tickets, outcomes, contexts)

    async def route(
        self,
        tickets: list[Ticket],
        classify: ClassifyCall,
        timeout_s: float,
        *,
        contexts: list[Any] | None = None,
        drift: DriftSource | None = None,
    ) -> list[Decision]:
        """Decide every ticket; the classifier's failure only changes the reason.

        `timeout_s` is the budget of the whole call: the classifier answers
        the tickets of one call together, so a batch route passes a larger one.
        With `drift`, model-run decisions are observed for the drift window,
        and in drift every ticket is routed by rules (fallback reason drift).
        """
        decisions, _, _ = await self.route_detailed(
            tickets, classify, timeout_s, contexts=contexts, drift=drift
        )
        return decisions

    async def route_detailed(
        self,
        tickets: list[Ticket],
        classify: ClassifyCall,
        timeout_s: float,
        *,
        contexts: list[Any] | None = None,
        enrich: EnrichCall | None = None,
        drift: DriftSource | None = None,
    ) -> tuple[list[Decision], list[dict[str, Any] | None], list[Any]]:
        """Like `route`, also giving each ticket's classifier answer and context.

        With `enrich`, contexts are fetched while the classifier works: the
        two budgets overlap instead of adding up.
        """
        started = time.perf_counter()
        view = drift.current() if drift is not None else DriftView()
        texts = [build_text(ticket.subject, ticket.body).text for ticket in tickets]
        if enrich is not None:
            asked, contexts = await asyncio.gather(
                self._propose(texts, classify, timeout_s), enrich(tickets)
            )
        else:
            asked = await self._propose(texts, classify, timeout_s)
        contexts = list(contexts) if contexts is not None else [None] * len(tickets)
        outcomes = apply_drift([outcome for outcome, _ in asked], view)
        decisions = self._decide_each(tickets, outcomes, contexts)
        add_shadow_reasons(decisions, outcomes, view)
        if drift is not None:
            drift.observe(_observations(texts, asked))
        latency_ms = (time.perf_counter() - started) * 1000
        for decision in decisions:
            decision.latency_ms = latency_ms
        return decisions, [answer for _, answer in asked], contexts

    def _decide_each(
        self,
        tickets: list[Ticket],
        outcomes: list[Outcome],
        contexts: list[Any] | None,
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
        self, texts: list[str], classify: ClassifyCall, timeout_s: float
    ) -> list[tuple[Outcome, dict[str, Any] | None]]:
        """Each text's outcome with the classifier's raw answer, from one call.

        One call for all the texts: per-ticket calls each cost a hop through
        Ray, which on a small machine costs more CPU than deciding the ticket.
        """
        try:
            results = await asyncio.wait_for(classify(texts), timeout=timeout_s)
            if len(results) != len(texts):
                raise ValueError(f"{len(results)} answers for {len(texts)} texts")
        except TimeoutError:
            log.warning(
                "classifier timed out, routing by rules",
                extra={"tickets": len(texts), "timeout_s": timeout_s},
            )
            state = ModelState(status="timeout", detail=f"no answer in {timeout_s}s")
            return [((None, state), None)] * len(texts)
        except Exception as err:  # the classifier failing must never fail a ticket
            log.warning(
                "classifier unavailable, routing by rules",
                extra={"tickets": len(texts), "error": type(err).__name__},
            )
            state = ModelState(status="unavailable", detail=type(err).__name__)
            return [((None, state), None)] * len(texts)
        return [(proposal_from_result(result), result) for result in results]


def _observations(
    texts: list[str], asked: list[tuple[Outcome, dict[str, Any] | None]]
) -> list[dict[str, Any]]:
    """Drift observations of the texts the model proposed a queue for."""
    return [
        observation_for(text, result, proposal)
        for text, ((proposal, _state), result) in zip(texts, asked, strict=True)
        if proposal is not None and result is not None
    ]


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
                "thresholds_version": result.get("thresholds_version"),
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


def _remote_drift(monitor: Any, settings: ServingSettings) -> DriftSource | None:
    if monitor is None:
        return None
    from monitoring.drift import load_drift_config
    from serving.drift_gate import RemoteDrift

    return RemoteDrift(monitor, load_drift_config(settings.drift_path))


def _deployment() -> Any:
    from ray import serve

    from features.context import ContextEvent
    from serving.casework import CaseDesk

    @serve.deployment(name="Router", max_ongoing_requests=512)
    class Router:
        """Ray Serve deployment composing the classifier with the policy."""

        def __init__(
            self,
            classifier: Any,
            settings: dict[str, Any],
            classifier_timeout_s: float,
            per_ticket_s: float = 0.05,
            monitor: Any = None,
        ) -> None:
            serving_settings = ServingSettings.model_validate(settings)
            self.core = RouterCore.from_settings(serving_settings)
            self.classifier = classifier
            self.timeout_s = classifier_timeout_s
            self.per_ticket_s = per_ticket_s
            self.writer = _open_writer(serving_settings)
            self.drift = _remote_drift(monitor, serving_settings)
            self.desk = CaseDesk.from_settings(
                serving_settings, self.core, writer=self.writer
            )

        async def route(
            self, tickets: list[Ticket], request_id: str
        ) -> list[dict[str, Any]]:
            return (await self.route_many([(tickets, request_id)]))[0]

        async def route_many(
            self, requests: list[tuple[list[Ticket], str]]
        ) -> list[list[dict[str, Any]]]:
            """Several requests' tickets through one classifier call.

            The ingress groups the requests that arrive together; each keeps
            its own request id in the store and gets its own decisions back.
            """
            tickets = [ticket for group, _ in requests for ticket in group]
            budget_s = self.timeout_s + self.per_ticket_s * max(len(tickets) - 1, 0)
            decisions, results, contexts = await self.core.route_detailed(
                tickets,
                self._classify,
                budget_s,
                enrich=self.desk.enrich,
                drift=self.drift,
            )
            answers, groups, start = [], [], 0
            for group, request_id in requests:
                end = start + len(group)
                made = decisions[start:end]
                groups.append(
                    (group, contexts[start:end], results[start:end], made, request_id)
                )
                start = end
                answers.append([decision.model_dump(mode="json") for decision in made])
            # Queued for background threads: the response does not wait.
            self.desk.record_many(groups, "http")
            return answers

        async def apply_event(self, event: ContextEvent) -> dict[str, Any]:
            outcome = await self.desk.apply_event(event)
            return outcome.model_dump(mode="json")

        def __del__(self) -> None:
            # Serve calls __del__ on a clean replica stop: flush what is queued.
            if getattr(self, "desk", None) is not None:
                self.desk.close()
            if getattr(self, "writer", None) is not None:
                self.writer.close()

        async def rules_info(self) -> dict[str, Any]:
            return {
                "rule_set_version": self.core.rules.version,
                "source": self.core.rules.source,
            }

        async def _classify(self, texts: list[str]) -> list[dict[str, Any]]:
            response = self.classifier.classify_many.remote(texts)
            try:
                return await response
            except asyncio.CancelledError:
                response.cancel()
                raise

    return Router
