"""The decision policy: the one function online, batch and streaming all call.

`decide` is pure: given the ticket, the model's proposal and state, the rule
set and the automation policy, it returns the same `Decision` every time
(the decision id and clock are injectable). The order is fixed:

1. override rules, which always win;
2. the model, when it is ready and confident enough for the queue it proposes
   (at or above the threshold: auto; within the suggest band below it:
   suggest, for a person to confirm);
3. fallback rules otherwise, with the reason the model did not decide;
4. context rules, which read the enrichment and confirm, override or
   redirect the queue the model or the fallback rules proposed;

then priority and escalation from the rule set's escalation section. Every
decision names the versions of the governed inputs it used, the enrichment
sources it rested on and those that were missing.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from features.config import bundled_config_path, file_hash, load_yaml_model
from features.context import Context
from features.errors import ConfigError
from features.schema import Ticket
from features.taxonomy import Taxonomy, load_taxonomy
from serving.decision import (
    ContextEffect,
    Decision,
    DecisionMode,
    Escalation,
    FallbackReason,
    ModelProposal,
    ModelState,
    ModelStatus,
)
from serving.rules import ContextMatch, RuleBook, RuleInput, RuleMatch, more_severe
from training.thresholds import thresholds_version

log = logging.getLogger(__name__)

AutomationLevel = Literal["auto", "suggest", "rules"]

STATE_FALLBACK_REASONS: dict[ModelStatus, FallbackReason] = {
    "no_model": "no_model",
    "unavailable": "model_unavailable",
    "timeout": "model_timeout",
    "drift": "drift",
}


class DefaultAutomation(BaseModel):
    """Automation for every queue the policy does not name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: AutomationLevel = Field(
        default="auto",
        description="Most the model may do: auto-route, only suggest, or nothing.",
    )
    suggest_band: float = Field(
        default=0.15,
        ge=0.0,
        le=1.0,
        description=(
            "Confidence in [threshold - band, threshold) gives a suggestion for "
            "a person to confirm instead of a rules decision."
        ),
    )


class QueueAutomation(BaseModel):
    """Automation for one queue; unset fields inherit the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: AutomationLevel | None = None
    suggest_band: float | None = Field(default=None, ge=0.0, le=1.0)


class AutomationPolicy(BaseModel):
    """Validated content of `policy.yaml`: how far the model may go per queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: DefaultAutomation = Field(default_factory=DefaultAutomation)
    queues: dict[str, QueueAutomation] = Field(default_factory=dict)
    _version: str | None = PrivateAttr(default=None)

    @property
    def version(self) -> str:
        """A hash of the file it came from, else of its content."""
        if self._version is None:
            content = self.model_dump_json().encode("utf-8")
            self._version = hashlib.sha256(content).hexdigest()[:12]
        return self._version

    def level_for(self, queue: str) -> AutomationLevel:
        override = self.queues.get(queue)
        if override is not None and override.level is not None:
            return override.level
        return self.default.level

    def suggest_band_for(self, queue: str) -> float:
        override = self.queues.get(queue)
        if override is not None and override.suggest_band is not None:
            return override.suggest_band
        return self.default.suggest_band


def load_automation_policy(
    path: Path | str | None = None, taxonomy: Taxonomy | None = None
) -> AutomationPolicy:
    """Load `policy.yaml` (the bundled one by default), checking queue names.

    Raises:
        ConfigError: naming the file and the problem.
    """
    path = Path(path) if path is not None else bundled_config_path("policy.yaml")
    policy = load_yaml_model(path, AutomationPolicy)
    policy._version = file_hash(path)

    known = set((taxonomy or load_taxonomy()).queue_ids)
    unknown = sorted(set(policy.queues) - known)
    if unknown:
        raise ConfigError(
            f"{path}: queues: unknown queue(s) {', '.join(unknown)}; "
            f"known queues are {', '.join(sorted(known))}"
        )
    return policy


def decide(
    ticket: Ticket,
    *,
    proposal: ModelProposal | None,
    state: ModelState,
    rules: RuleBook,
    automation: AutomationPolicy,
    context: Mapping[str, Any] | BaseModel | None = None,
    decision_id: str | None = None,
    now: datetime | None = None,
) -> Decision:
    """Decide queue, priority and escalation for one ticket.

    Args:
        ticket: the validated ticket.
        proposal: the classifier's proposal, None when it did not run.
        state: the classifier's state; anything but ready means rules decide.
        rules: the loaded rule set.
        automation: how far the model may go per queue.
        context: enrichment the rules may read (account status, tier, ...).
        decision_id: injectable for replays and tests; a new uuid4 otherwise.
        now: injectable clock; the current UTC time otherwise.

    Returns:
        The decision, `latency_ms` left at 0 for the caller to fill in.
    """
    rule_input = rules.prepare(ticket, context)
    reasons: list[str] = []
    missing = _missing_sources(context, reasons)

    route = _route_by_override(rule_input, rules, proposal, state, reasons)
    shaped = _Shaped(sources=set())
    if route is None:
        verdict = _judge_model(proposal, state, automation, rules.taxonomy)
        reasons.append(verdict.reason)
        route = _route_by_model(verdict, proposal, reasons)
        if route is None:
            route = _route_by_fallback(rule_input, rules, verdict, reasons)
        route, shaped = _apply_context(rule_input, rules, route, reasons)

    priority, _ = _choose_priority(rule_input, rules, route, shaped, reasons)
    escalation, escalation_reason, escalation_rule = _choose_escalation(
        rule_input, rules, route, shaped, priority, reasons
    )
    # A decision rests on every fact a rule it went through read, matched or
    # not: an incident opening later can make an escalation rule match.
    used = shaped.sources | rules.escalation_sources
    if route.rule is not None:
        used |= rules.sources_of(route.rule.rule_id)
    if route.fallback_reason is not None or route.mode == "rules":
        used |= rules.fallback_sources
    notify = _notify_targets(rules, shaped, escalation, escalation_rule, reasons)
    return Decision(
        decision_id=decision_id or str(uuid.uuid4()),
        ticket_id=ticket.id,
        queue=route.queue,
        priority=priority,
        escalation=escalation,
        escalation_reason=escalation_reason,
        mode=route.mode,
        confidence=proposal.confidence if proposal else None,
        top_queues=list(proposal.top_queues) if proposal else [],
        model_name=proposal.model_name if proposal else None,
        model_version=proposal.model_version if proposal else None,
        rule_id=route.rule.rule_id if route.rule else None,
        rule_set_version=rules.version,
        fallback_reason=route.fallback_reason,
        reasons=reasons,
        context_effect=shaped.effect,
        context_rule_id=shaped.match.rule_id if shaped.match else None,
        proposed_queue=shaped.proposed_queue,
        context_sources_answered=_answered_sources(context),
        context_sources_missing=missing,
        context_sources_used=sorted(used),
        notify=notify,
        versions=_versions(rules, automation, proposal),
        decided_at=now or datetime.now(UTC),
    )


@dataclass(frozen=True)
class _Route:
    mode: DecisionMode
    queue: str
    rule: RuleMatch | None = None
    fallback_reason: FallbackReason | None = None


@dataclass
class _Shaped:
    """What the context rules did: the match, its effect, what they read."""

    sources: set[str]
    match: RuleMatch | None = None
    effect: ContextEffect | None = None
    proposed_queue: str | None = None


@dataclass(frozen=True)
class _Verdict:
    """Why the model may or may not decide: a mode, or a fallback reason."""

    mode: DecisionMode | None
    fallback_reason: FallbackReason | None
    reason: str


def _route_by_override(
    rule_input: RuleInput,
    rules: RuleBook,
    proposal: ModelProposal | None,
    state: ModelState,
    reasons: list[str],
) -> _Route | None:
    match = rules.match_override(rule_input)
    if match is None:
        return None

    reasons.append(f"override rule {match.rule_id} matched: {_rule_reason(match)}")
    if not state.is_ready:
        # A decision has no model-state field; keep a degraded state visible.
        reasons.append(f"model state {state.status}{_detail(state)}")
    if proposal is not None:
        reasons.append(
            f"model proposal {proposal.top_queue} at {_fmt(proposal.confidence)} "
            "recorded, not used: override rules win"
        )
    return _Route(mode="override", queue=match.queue, rule=match)


def _route_by_model(
    verdict: _Verdict, proposal: ModelProposal | None, reasons: list[str]
) -> _Route | None:
    if verdict.mode is None or proposal is None:
        return None

    if verdict.mode == "suggest":
        ranked = ", ".join(
            f"{score.queue} ({_fmt(score.probability)})"
            for score in proposal.top_queues
        )
        reasons.append(f"suggested for a person to confirm: {ranked}")
    return _Route(mode=verdict.mode, queue=proposal.top_queue)


def _judge_model(
    proposal: ModelProposal | None,
    state: ModelState,
    automation: AutomationPolicy,
    taxonomy: Taxonomy,
) -> _Verdict:
    if not state.is_ready:
        reason = f"model state {state.status}{_detail(state)}: fallback rules decided"
        return _Verdict(None, STATE_FALLBACK_REASONS[state.status], reason)
    if proposal is None:
        reason = "model ready but gave no proposal: fallback rules decided"
        return _Verdict(None, "model_unavailable", reason)

    queue, confidence = proposal.top_queue, proposal.confidence
    thresholds = proposal.thresholds
    if queue not in taxonomy.queue_ids:
        log.warning(
            "model proposed a queue the taxonomy lacks",
            extra={"queue": queue, "model_version": proposal.model_version},
        )
        reason = (
            f"model proposed {queue}, which taxonomy {taxonomy.version} does not "
            "have: fallback rules decided"
        )
        return _Verdict(None, "low_confidence", reason)
    if thresholds.is_out_of_scope(proposal.similarity):
        similarity, minimum = _fmt_pair(proposal.similarity, thresholds.min_similarity)
        reason = (
            f"similarity {similarity} to the nearest training ticket under "
            f"{minimum}: out of scope for the model, fallback rules decided"
        )
        return _Verdict(None, "out_of_scope", reason)

    level = automation.level_for(queue)
    if level == "rules":
        reason = (
            f"model proposed {queue} at {_fmt(confidence)}, but the automation "
            f"policy keeps {queue} rules-only: fallback rules decided"
        )
        return _Verdict(None, "rules_only_queue", reason)
    return _judge_confidence(proposal, level, automation.suggest_band_for(queue))


def _judge_confidence(
    proposal: ModelProposal, level: AutomationLevel, band: float
) -> _Verdict:
    queue, confidence = proposal.top_queue, proposal.confidence
    rule = proposal.thresholds.for_queue(queue)
    if not rule.routable:
        reason = (
            f"queue {queue} is not auto-routable for this model version "
            f"({rule.source}, {rule.support} validation tickets): fallback rules "
            "decided"
        )
        return _Verdict(None, "low_confidence", reason)

    shown, threshold = _fmt_pair(confidence, rule.threshold)
    if proposal.thresholds.may_route(queue, confidence, proposal.similarity):
        reason = f"model proposed {queue} at {shown} >= threshold {threshold}"
        if level == "suggest":
            reason += f", but the automation policy caps {queue} at suggest"
            return _Verdict("suggest", None, reason)
        return _Verdict("auto", None, reason)

    if confidence >= rule.threshold - band:
        reason = (
            f"model proposed {queue} at {shown}, under threshold {threshold} but "
            f"within suggest band {_fmt(band)}"
        )
        return _Verdict("suggest", None, reason)
    reason = (
        f"confidence {shown} under threshold {threshold} minus suggest band "
        f"{_fmt(band)}: fallback rules decided"
    )
    return _Verdict(None, "low_confidence", reason)


def _route_by_fallback(
    rule_input: RuleInput, rules: RuleBook, verdict: _Verdict, reasons: list[str]
) -> _Route:
    match = rules.match_fallback(rule_input)
    reasons.append(f"fallback rule {match.rule_id} matched: {_rule_reason(match)}")
    return _Route(
        mode="rules",
        queue=match.queue,
        rule=match,
        fallback_reason=verdict.fallback_reason,
    )


def _apply_context(
    rule_input: RuleInput, rules: RuleBook, route: _Route, reasons: list[str]
) -> tuple[_Route, _Shaped]:
    """Let the context rules confirm, override or redirect the proposed queue."""
    found: ContextMatch = rules.match_context(rule_input, route.queue, route.mode)
    shaped = _Shaped(sources=set(found.sources))
    match = found.match
    if match is None:
        return route, shaped

    shaped.match = match
    if match.effect == "confirm" or match.queue == route.queue:
        shaped.effect = "confirm"
        reasons.append(
            f"context rule {match.rule_id} confirmed {route.queue}: "
            f"{_rule_reason(match)}"
        )
        return route, shaped

    shaped.effect, shaped.proposed_queue = match.effect, route.queue
    verb = "overrode" if match.effect == "override" else "redirected"
    reasons.append(
        f"context rule {match.rule_id} {verb} {route.queue} to {match.queue}: "
        f"{_rule_reason(match)}"
    )
    context_route = _Route(
        mode="context",
        queue=match.queue,
        rule=match,
        fallback_reason=route.fallback_reason,
    )
    return context_route, shaped


def _choose_priority(
    rule_input: RuleInput,
    rules: RuleBook,
    route: _Route,
    shaped: _Shaped,
    reasons: list[str],
) -> tuple[str, str | None]:
    """The priority and the id of the priority rule that set it, if one did."""
    for rule in _deciding_rules(route, shaped):
        if rule.priority is not None:
            reasons.append(
                f"priority {rule.priority} from {rule.section} rule {rule.rule_id}"
            )
            return rule.priority, None

    priority, reason, rule_id = rules.prioritize(rule_input, None, route.queue)
    reasons.append(reason)
    return priority, rule_id


def _choose_escalation(
    rule_input: RuleInput,
    rules: RuleBook,
    route: _Route,
    shaped: _Shaped,
    priority: str,
    reasons: list[str],
) -> tuple[Escalation, str | None, str | None]:
    escalation, reason, rule_id = rules.escalate(
        rule_input, None, route.queue, priority
    )
    # The routing and context rules came first, so they keep a tie.
    for deciding in reversed(_deciding_rules(route, shaped)):
        if deciding.escalation is not None and (
            more_severe(deciding.escalation, escalation) == deciding.escalation
        ):
            escalation, reason = deciding.escalation, _rule_reason(deciding)
            rule_id = deciding.rule_id

    if escalation == "none":
        return "none", None, None
    reasons.append(f"escalation {escalation} from rule {rule_id}: {reason}")
    return escalation, reason, rule_id


def _deciding_rules(route: _Route, shaped: _Shaped) -> list[RuleMatch]:
    """Rules whose action may set priority and escalation, first one first."""
    rules = [route.rule] if route.rule is not None else []
    if shaped.match is not None and shaped.match is not route.rule:
        rules.append(shaped.match)
    return rules


def _notify_targets(
    rules: RuleBook,
    shaped: _Shaped,
    escalation: Escalation,
    escalation_rule: str | None,
    reasons: list[str],
) -> list[str]:
    targets = list(shaped.match.notify) if shaped.match is not None else []
    if escalation != "none":
        targets.extend(rules.notify_of(escalation_rule))
    unique = list(dict.fromkeys(targets))
    if unique:
        reasons.append(f"notify {', '.join(unique)}")
    return unique


def _missing_sources(
    context: Mapping[str, Any] | BaseModel | None, reasons: list[str]
) -> list[str]:
    if not isinstance(context, Context):
        return []
    missing: list[str] = list(context.missing)
    if missing:
        reasons.append(
            f"context sources missing: {', '.join(missing)}; rules decided "
            "without their facts"
        )
    return missing


def _answered_sources(context: Mapping[str, Any] | BaseModel | None) -> list[str]:
    return list(context.answered) if isinstance(context, Context) else []


def _versions(
    rules: RuleBook, automation: AutomationPolicy, proposal: ModelProposal | None
) -> dict[str, str]:
    versions = {"rules": rules.version, "automation": automation.version}
    if proposal is not None:
        versions["thresholds"] = proposal.thresholds_version or thresholds_version(
            proposal.thresholds
        )
    return versions


def _detail(state: ModelState) -> str:
    return f" ({state.detail})" if state.detail else ""


def _rule_reason(match: RuleMatch) -> str:
    return match.reason or match.description


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _fmt_pair(first: float | None, second: float | None) -> tuple[str, str]:
    """Format two numbers with the fewest decimals (2 to 6) that keep their order.

    Rounding 0.905 and 0.9049 to two places would print "0.91 >= 0.90" for a
    comparison that went the other way; a reviewer must never see that.
    """
    if first is None or second is None:
        return str(first), str(second)
    for places in range(2, 7):
        shown_first, shown_second = f"{first:.{places}f}", f"{second:.{places}f}"
        same_order = (first < second) == (float(shown_first) < float(shown_second))
        same_equality = (first == second) == (shown_first == shown_second)
        if same_order and same_equality:
            return shown_first, shown_second
    return f"{first:.6f}", f"{second:.6f}"
