"""The decision policy: who decides each ticket, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from features.errors import ConfigError
from features.schema import Ticket
from serving.decision import Decision, ModelProposal, ModelState
from serving.policy import AutomationPolicy, decide, load_automation_policy
from serving.rules import RuleBook, load_rules
from training.thresholds import QueueThreshold, RoutingThresholds

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
READY = ModelState(status="ready")


@pytest.fixture(scope="module")
def rules() -> RuleBook:
    return load_rules()


@pytest.fixture(scope="module")
def automation() -> AutomationPolicy:
    return load_automation_policy()


def make_ticket(**fields: Any) -> Ticket:
    values: dict[str, Any] = {
        "id": "T-100",
        "channel": "email",
        "subject": "Question about our account",
        "body": "Could you take a look?",
    }
    values.update(fields)
    return Ticket(**values)


def make_thresholds(**queues: QueueThreshold) -> RoutingThresholds:
    defaults = {
        name: QueueThreshold(threshold=0.91, routable=True, source="queue", support=80)
        for name in ("billing_invoicing", "identity_access", "security", "collections")
    }
    return RoutingThresholds(
        target_precision=0.95,
        global_threshold=0.9,
        queues={**defaults, **queues},
        min_similarity=0.35,
    )


def make_proposal(
    queue: str = "billing_invoicing",
    confidence: float = 0.97,
    *,
    similarity: float | None = 0.8,
    thresholds: RoutingThresholds | None = None,
) -> ModelProposal:
    rest = 1.0 - confidence
    return ModelProposal(
        model_name="switchboard-router",
        model_version="7",
        top_queues=[
            (queue, confidence),
            ("general_support", rest * 0.6),
            ("revenue_operations", rest * 0.4),
        ],
        similarity=similarity,
        thresholds=thresholds or make_thresholds(),
    )


def run(
    ticket: Ticket,
    rules: RuleBook,
    automation: AutomationPolicy,
    proposal: ModelProposal | None = None,
    state: ModelState = READY,
    context: dict[str, Any] | None = None,
) -> Decision:
    return decide(
        ticket,
        proposal=proposal,
        state=state,
        rules=rules,
        automation=automation,
        context=context,
        decision_id="D-1",
        now=NOW,
    )


def write_yaml(tmp_path: Path, name: str, content: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


# Who decides


def test_confident_model_routes_automatically(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    decision = run(make_ticket(), rules, automation, make_proposal(confidence=0.97))

    assert (decision.mode, decision.queue) == ("auto", "billing_invoicing")
    assert decision.fallback_reason is None
    assert decision.rule_id is None
    assert decision.reasons[0] == (
        "model proposed billing_invoicing at 0.97 >= threshold 0.91"
    )


def test_confidence_in_the_suggest_band_suggests_the_top_three(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    decision = run(make_ticket(), rules, automation, make_proposal(confidence=0.8))

    assert (decision.mode, decision.queue) == ("suggest", "billing_invoicing")
    assert [score.queue for score in decision.top_queues] == [
        "billing_invoicing",
        "general_support",
        "revenue_operations",
    ]
    assert "within suggest band 0.15" in decision.reasons[0]
    assert decision.reasons[1].startswith("suggested for a person to confirm")


def test_low_confidence_falls_back_to_rules_and_keeps_the_proposal(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = make_ticket(subject="Our SSO login loops")

    decision = run(ticket, rules, automation, make_proposal(confidence=0.62))

    assert (decision.mode, decision.fallback_reason) == ("rules", "low_confidence")
    assert (decision.queue, decision.rule_id) == (
        "identity_access",
        "fallback-identity-words",
    )
    assert decision.confidence == pytest.approx(0.62)
    assert decision.top_queues[0].queue == "billing_invoicing"
    assert (decision.model_name, decision.model_version) == ("switchboard-router", "7")
    assert decision.reasons[0] == (
        "confidence 0.62 under threshold 0.91 minus suggest band 0.15: "
        "fallback rules decided"
    )


def test_out_of_scope_ticket_falls_back_to_rules(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    proposal = make_proposal(confidence=0.99, similarity=0.2)

    decision = run(make_ticket(), rules, automation, proposal)

    assert (decision.mode, decision.fallback_reason) == ("rules", "out_of_scope")
    assert (
        "similarity 0.20 to the nearest training ticket under 0.35"
        in (decision.reasons[0])
    )


def test_queue_without_enough_evidence_is_never_auto_routed(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    thin = QueueThreshold(
        threshold=1.0, routable=False, source="insufficient_data", support=3
    )
    proposal = make_proposal(
        confidence=0.99, thresholds=make_thresholds(billing_invoicing=thin)
    )

    decision = run(make_ticket(), rules, automation, proposal)

    assert (decision.mode, decision.fallback_reason) == ("rules", "low_confidence")
    assert "not auto-routable" in decision.reasons[0]


def test_queue_missing_from_thresholds_is_never_auto_routed(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    proposal = make_proposal("provisioning_entitlements", confidence=0.99)

    decision = run(make_ticket(), rules, automation, proposal)

    assert (decision.mode, decision.fallback_reason) == ("rules", "low_confidence")


def test_queue_the_taxonomy_lacks_is_never_routed(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    legal = QueueThreshold(threshold=0.5, routable=True, source="queue", support=90)
    proposal = make_proposal(
        "legal", confidence=0.99, thresholds=make_thresholds(legal=legal)
    )

    decision = run(make_ticket(), rules, automation, proposal)

    assert decision.mode == "rules"
    assert decision.queue != "legal"


@pytest.mark.parametrize(
    ("status", "fallback_reason"),
    [
        pytest.param("no_model", "no_model", id="no-model"),
        pytest.param("unavailable", "model_unavailable", id="unavailable"),
        pytest.param("timeout", "model_timeout", id="timeout"),
        pytest.param("drift", "drift", id="drift"),
    ],
)
def test_each_model_state_maps_to_its_fallback_reason(
    rules: RuleBook, automation: AutomationPolicy, status: str, fallback_reason: str
) -> None:
    state = ModelState(status=status, detail="seen in test")

    decision = run(make_ticket(), rules, automation, None, state)

    assert (decision.mode, decision.fallback_reason) == ("rules", fallback_reason)
    assert decision.top_queues == []
    assert decision.confidence is None
    assert decision.reasons[0] == (
        f"model state {status} (seen in test): fallback rules decided"
    )


def test_ready_model_without_a_proposal_counts_as_unavailable(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    decision = run(make_ticket(), rules, automation, None, READY)

    assert (decision.mode, decision.fallback_reason) == ("rules", "model_unavailable")


def test_drifted_model_never_decides_but_its_proposal_is_recorded(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    state = ModelState(status="drift", detail="psi 0.41 on embeddings")

    decision = run(
        make_ticket(), rules, automation, make_proposal(confidence=0.99), state
    )

    assert (decision.mode, decision.fallback_reason) == ("rules", "drift")
    assert decision.confidence == pytest.approx(0.99)
    assert decision.model_version == "7"


def test_override_rule_beats_a_confident_model(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = make_ticket(subject="Invoice export shows a data breach")

    decision = run(ticket, rules, automation, make_proposal(confidence=0.99))

    assert (decision.mode, decision.queue) == ("override", "security")
    assert decision.rule_id == "security-breach-words"
    assert decision.fallback_reason is None
    assert decision.confidence == pytest.approx(0.99)
    assert decision.top_queues[0].queue == "billing_invoicing"
    assert decision.reasons[0].startswith("override rule security-breach-words matched")


def test_override_under_a_degraded_model_still_shows_the_state(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = make_ticket(subject="We received a subpoena")
    state = ModelState(status="timeout")

    decision = run(ticket, rules, automation, None, state)

    assert decision.mode == "override"
    assert "model state timeout" in decision.reasons


# Per-queue automation levels


@pytest.mark.parametrize(
    ("policy", "confidence", "expected"),
    [
        pytest.param(
            {"queues": {"billing_invoicing": {"level": "suggest"}}},
            0.99,
            ("suggest", None),
            id="suggest-cap-on-confident-model",
        ),
        pytest.param(
            {"queues": {"billing_invoicing": {"level": "rules"}}},
            0.99,
            ("rules", "rules_only_queue"),
            id="rules-only-queue",
        ),
        pytest.param(
            {"default": {"level": "rules"}},
            0.99,
            ("rules", "rules_only_queue"),
            id="rules-only-default",
        ),
        pytest.param(
            {"queues": {"billing_invoicing": {"suggest_band": 0.4}}},
            0.6,
            ("suggest", None),
            id="wider-band-for-one-queue",
        ),
        pytest.param(
            {"default": {"suggest_band": 0.0}},
            0.9,
            ("rules", "low_confidence"),
            id="no-band",
        ),
    ],
)
def test_per_queue_automation_levels_cap_the_model(
    rules: RuleBook,
    policy: dict[str, Any],
    confidence: float,
    expected: tuple[str, str | None],
) -> None:
    automation = AutomationPolicy.model_validate(policy)

    decision = run(
        make_ticket(), rules, automation, make_proposal(confidence=confidence)
    )

    assert (decision.mode, decision.fallback_reason) == expected


def test_bundled_policy_keeps_security_at_suggest(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = make_ticket(subject="Is this email from you?")

    decision = run(ticket, rules, automation, make_proposal("security", 0.99))

    assert (decision.mode, decision.queue) == ("suggest", "security")
    assert "caps security at suggest" in decision.reasons[0]


def test_policy_naming_an_unknown_queue_fails_at_load(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path, "policy.yaml", {"queues": {"legal": {"level": "rules"}}}
    )

    with pytest.raises(ConfigError, match="unknown queue") as caught:
        load_automation_policy(path)

    assert str(path) in str(caught.value)


def test_policy_with_a_band_outside_zero_to_one_fails_at_load(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "policy.yaml", {"default": {"suggest_band": 1.5}})

    with pytest.raises(ConfigError, match=r"default\.suggest_band"):
        load_automation_policy(path)


# Priority and escalation


@pytest.mark.parametrize(
    ("fields", "context", "expected"),
    [
        pytest.param(
            {
                "channel": "alert",
                "subject": "Checkout error rate 40%",
                "severity": "critical",
                "service": "checkout",
            },
            None,
            ("platform_operations", "P1", "incident_commander"),
            id="critical-production-alert",
        ),
        pytest.param(
            {
                "channel": "alert",
                "subject": "Checkout error rate 40%",
                "severity": "critical",
                "account_tier": "strategic",
            },
            None,
            ("platform_operations", "P1", "executive"),
            id="strategic-p1-goes-to-executive",
        ),
        pytest.param(
            {"subject": "An employee account was hacked"},
            None,
            ("security", "P1", "incident_commander"),
            id="security-incident",
        ),
        pytest.param(
            {"subject": "Legal hold request"},
            None,
            ("security", "P2", "team_lead"),
            id="legal-hold",
        ),
        pytest.param(
            {"subject": "Refund still not fixed", "account_tier": "enterprise"},
            None,
            ("billing_invoicing", "P3", "team_lead"),
            id="enterprise-angry",
        ),
        pytest.param(
            {"subject": "Refund request", "account_tier": "strategic"},
            {"is_repeat_contact": True},
            ("billing_invoicing", "P3", "team_lead"),
            id="strategic-repeated",
        ),
        pytest.param(
            {"subject": "How do I export a report?"},
            None,
            ("general_support", "P4", "none"),
            id="how-to-question",
        ),
        pytest.param(
            {"channel": "alert", "subject": "Disk 85% on db-2"},
            None,
            ("platform_operations", "P2", "none"),
            id="routine-alert",
        ),
    ],
)
def test_priority_and_escalation_follow_the_escalation_rules(
    rules: RuleBook,
    automation: AutomationPolicy,
    fields: dict[str, Any],
    context: dict[str, Any] | None,
    expected: tuple[str, str, str],
) -> None:
    state = ModelState(status="no_model")

    decision = run(make_ticket(**fields), rules, automation, None, state, context)

    assert (decision.queue, decision.priority, decision.escalation) == expected
    assert (decision.escalation_reason is None) == (decision.escalation == "none")


def test_model_routed_ticket_gets_its_priority_from_the_rules(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket = make_ticket(subject="Production is down for all users")

    decision = run(ticket, rules, automation, make_proposal("identity_access", 0.97))

    assert (decision.mode, decision.priority) == ("auto", "P1")
    assert any("priority-production-down" in reason for reason in decision.reasons)


@pytest.fixture
def custom_rules(tmp_path: Path) -> RuleBook:
    def rule(rule_id: str, condition: str, **action: Any) -> dict[str, Any]:
        return {
            "id": rule_id,
            "description": f"test rule {rule_id}",
            "owner": "tests",
            "condition": condition,
            "action": action,
        }

    content = {
        "fallback": [
            rule(
                "vip-fallback",
                'ticket.text.contains("vip")',
                queue="general_support",
                priority="P1",
                escalation="team_lead",
                reason="vip wording",
            ),
            rule("catch-all", "true", queue="general_support"),
        ],
        "escalation": {
            "priority_defaults": {"by_queue": {"general_support": "P4"}},
            "rules": [
                rule(
                    "any-p1-executive",
                    'decision.priority == "P1" && ticket.text.contains("ceo")',
                    escalation="executive",
                ),
            ],
        },
    }
    return load_rules(write_yaml(tmp_path, "rules.yaml", content))


def test_rule_action_priority_wins_over_defaults(
    custom_rules: RuleBook, automation: AutomationPolicy
) -> None:
    decision = run(make_ticket(subject="VIP customer"), custom_rules, automation)

    assert (decision.rule_id, decision.priority) == ("vip-fallback", "P1")
    assert (decision.escalation, decision.escalation_reason) == (
        "team_lead",
        "vip wording",
    )


def test_more_severe_escalation_rule_beats_the_routing_rule_action(
    custom_rules: RuleBook, automation: AutomationPolicy
) -> None:
    decision = run(make_ticket(subject="VIP: our CEO"), custom_rules, automation)

    assert decision.escalation == "executive"
    assert "escalation executive from rule any-p1-executive" in decision.reasons[-1]


# The decision record


def test_same_inputs_give_the_same_decision(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    ticket, proposal = make_ticket(), make_proposal(confidence=0.8)

    first = run(ticket, rules, automation, proposal, context={"account_tier": "x"})
    second = run(ticket, rules, automation, proposal, context={"account_tier": "x"})

    assert first == second


def test_decision_id_and_clock_default_to_fresh_values(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    kwargs: dict[str, Any] = {
        "proposal": None,
        "state": READY,
        "rules": rules,
        "automation": automation,
    }

    first = decide(make_ticket(), **kwargs)
    second = decide(make_ticket(), **kwargs)

    assert first.decision_id != second.decision_id
    assert first.decided_at.tzinfo is not None


def test_decision_records_the_rule_set_version_and_serialises_snake_case(
    rules: RuleBook, automation: AutomationPolicy
) -> None:
    decision = run(make_ticket(), rules, automation, make_proposal(confidence=0.8))

    document = json.loads(decision.model_dump_json())

    assert document["rule_set_version"] == rules.version
    assert document["top_queues"][0] == {
        "queue": "billing_invoicing",
        "probability": pytest.approx(0.8),
    }
    assert {"decision_id", "ticket_id", "fallback_reason", "latency_ms"} <= set(
        document
    )
    assert Decision.model_validate_json(decision.model_dump_json()) == decision


def test_reasons_never_round_a_near_miss_into_a_pass(
    rules: RuleBook,
) -> None:
    tight = QueueThreshold(threshold=0.9054, routable=True, source="queue", support=80)
    proposal = make_proposal(
        confidence=0.9051, thresholds=make_thresholds(billing_invoicing=tight)
    )
    automation = AutomationPolicy.model_validate({"default": {"suggest_band": 0.0}})

    decision = run(make_ticket(), rules, automation, proposal)

    assert decision.mode == "rules"
    assert decision.reasons[0].startswith("confidence 0.9051 under threshold 0.9054")


# The model proposal


def test_proposal_is_sorted_cut_to_three_and_derives_its_scores() -> None:
    proposal = ModelProposal(
        model_name="m",
        model_version="1",
        top_queues=[
            ("security", 0.1),
            ("billing_invoicing", 0.6),
            ("collections", 0.25),
            ("general_support", 0.05),
        ],
        thresholds=make_thresholds(),
    )

    assert [score.queue for score in proposal.top_queues] == [
        "billing_invoicing",
        "collections",
        "security",
    ]
    assert proposal.confidence == pytest.approx(0.6)
    assert proposal.margin == pytest.approx(0.35)


def test_proposal_rejects_a_confidence_that_disagrees_with_its_queues() -> None:
    with pytest.raises(ValidationError, match=r"confidence 0\.9 disagrees"):
        ModelProposal(
            model_name="m",
            model_version="1",
            top_queues=[("security", 0.6), ("collections", 0.4)],
            confidence=0.9,
            thresholds=make_thresholds(),
        )


def test_a_malformed_classifier_answer_means_model_unavailable_not_an_error():
    from serving.router import proposal_from_result

    proposal, state = proposal_from_result(
        {
            "status": "ready",
            "model_name": "m",
            "model_version": "1",
            "top_queues": [["billing_invoicing", 1.7]],
            "thresholds": {},
        }
    )

    assert proposal is None
    assert state.status == "unavailable"


def test_the_store_and_the_batch_output_know_every_decision_field():
    from monitoring.store import DECISION_FIELDS
    from serving.batch import DECISION_COLUMNS
    from serving.decision import Decision

    assert tuple(Decision.model_fields) == DECISION_FIELDS == DECISION_COLUMNS
