"""Context rules in the policy: they confirm, override or redirect a proposal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from features.config import bundled_config_path
from features.context import SOURCES, Context, SourceStatus
from features.context_seed import scenario_contexts
from features.errors import ConfigError
from features.scenarios import ContextScenario, context_scenarios
from features.schema import Ticket, parse_ticket
from serving.decision import Decision, ModelProposal, ModelState
from serving.policy import (
    AutomationPolicy,
    decide,
    load_automation_policy,
    thresholds_version,
)
from serving.rules import RuleBook, load_rules
from training.thresholds import QueueThreshold, RoutingThresholds

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
NO_MODEL = ModelState(status="no_model")
READY = ModelState(status="ready")
ANSWERED = SourceStatus(outcome="ok")

# The facts the embedded context store is seeded with for these accounts.
ACCOUNTS = scenario_contexts()


@pytest.fixture(scope="module")
def rules() -> RuleBook:
    return load_rules()


@pytest.fixture(scope="module")
def automation() -> AutomationPolicy:
    return load_automation_policy()


def context_for(account_id: str, **outcomes: str) -> Context:
    sources = {source: ANSWERED for source in SOURCES}
    sources.update({s: SourceStatus(outcome=o) for s, o in outcomes.items()})  # type: ignore[misc]
    sections: dict[str, Any] = dict(ACCOUNTS[account_id])
    return Context(account_id=account_id, sources=sources, **sections)


def proposal_for(queue: str, confidence: float = 0.97) -> ModelProposal:
    thresholds = RoutingThresholds(
        target_precision=0.95,
        global_threshold=0.9,
        queues={
            name: QueueThreshold(
                threshold=0.9, routable=True, source="queue", support=80
            )
            for name in (
                "collections",
                "provisioning_entitlements",
                "billing_invoicing",
                "integrations_api",
            )
        },
    )
    rest = 1.0 - confidence
    return ModelProposal(
        model_name="switchboard-router",
        model_version="3",
        top_queues=[(queue, confidence), ("general_support", rest)],
        similarity=0.8,
        thresholds=thresholds,
    )


def run(
    ticket: Ticket,
    rules: RuleBook,
    automation: AutomationPolicy,
    context: Context | None,
    proposal: ModelProposal | None = None,
) -> Decision:
    return decide(
        ticket,
        proposal=proposal,
        state=READY if proposal else NO_MODEL,
        rules=rules,
        automation=automation,
        context=context,
        decision_id="d-1",
        now=NOW,
    )


SCENARIOS = context_scenarios()


@pytest.mark.parametrize(
    "scenario", [pytest.param(s, id=name) for name, s in SCENARIOS.items()]
)
def test_each_context_scenario_reaches_its_queue_by_rules_alone(
    scenario: ContextScenario, rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = parse_ticket(scenario.ticket)
    decision = run(ticket, rules, automation, context_for(ticket.account_id or ""))

    assert decision.queue == scenario.expected_queue
    assert decision.escalation == scenario.expected_escalation
    assert decision.notify == list(scenario.expected_notify)
    if scenario.expected_priority:
        assert decision.priority == scenario.expected_priority
    if scenario.expected_rule_id:
        assert decision.context_rule_id == scenario.expected_rule_id
        # The fallback rules may already have proposed the right queue.
        if decision.context_effect == "confirm":
            assert decision.proposed_queue is None
        else:
            assert decision.context_effect == scenario.expected_effect
            assert decision.mode == "context"
            assert decision.proposed_queue not in (None, scenario.expected_queue)


def test_a_confident_model_is_overridden_for_a_paid_but_suspended_tenant(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = parse_ticket(SCENARIOS["strategic_suspended_despite_payment"].ticket)
    decision = run(
        ticket,
        rules,
        automation,
        context_for("acct_900417"),
        proposal_for("collections"),
    )

    assert (decision.queue, decision.mode) == ("platform_operations", "context")
    assert decision.context_effect == "override"
    assert decision.proposed_queue == "collections"
    assert decision.confidence == pytest.approx(0.97)
    assert {"billing", "entitlements", "identity"} <= set(decision.context_sources_used)
    assert any("overrode collections" in reason for reason in decision.reasons)


def test_a_model_proposal_the_context_agrees_with_is_confirmed(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = parse_ticket(SCENARIOS["expansion_seat_mismatch"].ticket)
    proposal = proposal_for("provisioning_entitlements")
    decision = run(ticket, rules, automation, context_for("acct_412908"), proposal)

    assert (decision.queue, decision.mode) == ("provisioning_entitlements", "auto")
    assert decision.context_effect == "confirm"
    assert decision.context_rule_id == "context-expansion-seat-mismatch"
    assert decision.proposed_queue is None


def test_a_redirect_moves_only_the_proposals_it_names(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = parse_ticket(SCENARIOS["expansion_identity_sync_failure"].ticket)
    context = context_for("acct_500102")

    named = run(ticket, rules, automation, context, proposal_for("billing_invoicing"))
    unnamed = run(ticket, rules, automation, context, proposal_for("integrations_api"))

    assert named.queue == "identity_access" and named.context_effect == "redirect"
    assert (unnamed.queue, unnamed.mode) == ("integrations_api", "auto")
    assert unnamed.context_effect is None


def test_without_context_no_context_rule_matches_and_nothing_is_missing(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = parse_ticket(SCENARIOS["strategic_suspended_despite_payment"].ticket)
    decision = run(ticket, rules, automation, None)

    assert decision.context_rule_id is None
    assert decision.context_sources_missing == []
    assert decision.queue != "platform_operations"


def test_a_missing_source_is_recorded_and_rules_can_test_for_it(
    tmp_path: Path, automation: AutomationPolicy
) -> None:
    content = yaml.safe_load(bundled_config_path("rules.yaml").read_text())
    content["context"].insert(
        0,
        {
            "id": "context-billing-unknown",
            "description": "Without billing facts, collections must not act.",
            "owner": "accounts-receivable",
            "condition": (
                '"billing" in context.missing && decision.queue == "collections"'
            ),
            "action": {"effect": "redirect", "queue": "billing_invoicing"},
        },
    )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    rules = load_rules(path)
    ticket = parse_ticket(SCENARIOS["expansion_unpaid_invoice_hold"].ticket)

    decision = run(
        ticket,
        rules,
        automation,
        context_for("acct_500103", billing="timeout"),
        proposal_for("collections"),
    )

    assert decision.context_sources_missing == ["billing"]
    assert "billing" not in decision.context_sources_answered
    assert {"crm", "entitlements", "identity"} <= set(decision.context_sources_answered)
    assert decision.context_rule_id == "context-billing-unknown"
    assert decision.queue == "billing_invoicing"
    assert "billing" in decision.context_sources_used
    assert any("context sources missing: billing" in r for r in decision.reasons)


def test_every_decision_names_the_versions_it_used(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = parse_ticket(SCENARIOS["expansion_seat_mismatch"].ticket)
    proposal = proposal_for("provisioning_entitlements")

    with_model = run(ticket, rules, automation, None, proposal)
    without = run(ticket, rules, automation, None)

    assert with_model.versions == {
        "rules": rules.version,
        "automation": automation.version,
        "thresholds": thresholds_version(proposal.thresholds),
    }
    assert without.versions == {
        "rules": rules.version,
        "automation": automation.version,
    }
    named = proposal.model_copy(update={"thresholds_version": "model-set-1"})
    assert run(ticket, rules, automation, None, named).versions["thresholds"] == (
        "model-set-1"
    )
    assert with_model.rule_set_version == rules.version


def _rules_with_context_rule(tmp_path: Path, rule: dict[str, Any]) -> Path:
    content = yaml.safe_load(bundled_config_path("rules.yaml").read_text())
    content["context"] = [rule]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("action", "condition", "message"),
    [
        pytest.param(
            {"queue": "collections"},
            "true",
            "needs an effect",
            id="no-effect",
        ),
        pytest.param(
            {"effect": "redirect", "queue": "collections"},
            "context.billing.credit_hold",
            "must read decision.queue",
            id="redirect-without-proposal",
        ),
        pytest.param(
            {"effect": "confirm", "queue": "collections"},
            'decision.queue == "collections"',
            "remove queue",
            id="confirm-with-queue",
        ),
        pytest.param(
            {"effect": "override"},
            "context.billing.credit_hold",
            "needs a queue",
            id="override-without-queue",
        ),
    ],
)
def test_a_malformed_context_rule_fails_loading_with_its_id(
    tmp_path: Path, action: dict[str, Any], condition: str, message: str
) -> None:
    rule = {
        "id": "context-bad",
        "description": "A malformed rule.",
        "owner": "qa",
        "condition": condition,
        "action": action,
    }
    path = _rules_with_context_rule(tmp_path, rule)

    with pytest.raises(ConfigError, match=message) as raised:
        load_rules(path)
    assert "context-bad" in str(raised.value)


def test_only_context_and_escalation_rules_may_notify(tmp_path: Path) -> None:
    content = yaml.safe_load(bundled_config_path("rules.yaml").read_text())
    content["fallback"][0]["action"]["notify"] = ["executive-bridge"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))

    with pytest.raises(ConfigError, match="only context and escalation rules notify"):
        load_rules(path)
