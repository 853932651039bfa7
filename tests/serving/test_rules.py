"""The rules engine: loading, validation, matching and the bundled rule set."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import celpy
import lark
import pytest
import yaml
from celpy.celparser import CELParser

from features.errors import ConfigError
from features.schema import Ticket
from serving.rules import RuleBook, load_rules


@pytest.fixture(scope="module")
def bundled() -> RuleBook:
    return load_rules()


def make_ticket(**fields: Any) -> Ticket:
    values: dict[str, Any] = {"id": "T-1", "channel": "email", "subject": "Hello"}
    values.update(fields)
    return Ticket(**values)


def rule(rule_id: str, condition: str, **action: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "description": f"test rule {rule_id}",
        "owner": "tests",
        "condition": condition,
        "action": action,
    }


CATCH_ALL = rule("catch-all", "true", queue="general_support")


def write_rules(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


def rules_with(
    override: list[dict[str, Any]] | None = None,
    fallback: list[dict[str, Any]] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    return {
        "override": override or [],
        "fallback": fallback if fallback is not None else [CATCH_ALL],
        **sections,
    }


# The bundled rule set


def test_bundled_rule_set_loads_with_a_content_hash_version(bundled: RuleBook) -> None:
    assert len(bundled.version) == 12
    assert int(bundled.version, 16) >= 0


@pytest.mark.parametrize(
    ("fields", "rule_id", "queue"),
    [
        pytest.param(
            {"subject": "We think there was a data breach"},
            "security-breach-words",
            "security",
            id="breach",
        ),
        pytest.param(
            {"body": "Customer records leaked data onto a public bucket"},
            "security-breach-words",
            "security",
            id="data-leak",
        ),
        pytest.param(
            {"subject": "Our admin account was compromised"},
            "security-incident-words",
            "security",
            id="compromised-account",
        ),
        pytest.param(
            {"body": "Please treat this as a security incident"},
            "security-incident-words",
            "security",
            id="security-incident",
        ),
        pytest.param(
            {"subject": "Legal hold on workspace 42"},
            "legal-hold-subpoena",
            "security",
            id="legal-hold",
        ),
        pytest.param(
            {"body": "We received a subpoena for user records"},
            "legal-hold-subpoena",
            "security",
            id="subpoena",
        ),
        pytest.param(
            {
                "channel": "alert",
                "subject": "Error rate above 20%",
                "severity": "Critical",
                "service": "checkout-api",
            },
            "critical-production-alert",
            "platform_operations",
            id="critical-production-alert",
        ),
        pytest.param(
            {"subject": "SEV-1: dashboards are blank for everyone"},
            "sev1-declared",
            "platform_operations",
            id="sev-1-declared",
        ),
    ],
)
def test_every_override_category_fires(
    bundled: RuleBook, fields: dict[str, Any], rule_id: str, queue: str
) -> None:
    match = bundled.match_override(make_ticket(**fields))

    assert match is not None
    assert (match.rule_id, match.queue, match.section) == (rule_id, queue, "override")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"subject": "SLA breach on ticket 1234"}, id="sla-breach"),
        pytest.param(
            {"body": "You breached the SLA again on our renewal"}, id="breached-sla"
        ),
        pytest.param(
            {"channel": "alert", "severity": "critical", "service": "staging-db"},
            id="critical-staging-alert",
        ),
        pytest.param(
            {"channel": "alert", "severity": "warning", "service": "checkout-api"},
            id="warning-alert",
        ),
    ],
)
def test_look_alike_tickets_do_not_trigger_overrides(
    bundled: RuleBook, fields: dict[str, Any]
) -> None:
    assert bundled.match_override(make_ticket(**fields)) is None


@pytest.mark.parametrize(
    ("fields", "rule_id", "queue"),
    [
        pytest.param(
            {"subject": "Phishing email pretending to be you"},
            "fallback-security-words",
            "security",
            id="security",
        ),
        pytest.param(
            {"channel": "alert", "subject": "Disk 85% full", "severity": "warning"},
            "fallback-alert-channel",
            "platform_operations",
            id="alert-channel",
        ),
        pytest.param(
            {"subject": "Invoice 881 is overdue"},
            "fallback-collections-words",
            "collections",
            id="collections-before-billing",
        ),
        pytest.param(
            {"subject": "Refund for a double charge"},
            "fallback-billing-words",
            "billing_invoicing",
            id="billing",
        ),
        pytest.param(
            {"subject": "Quote for our renewal"},
            "fallback-revenue-words",
            "revenue_operations",
            id="revenue",
        ),
        pytest.param(
            {"subject": "We need 20 more seats"},
            "fallback-provisioning-words",
            "provisioning_entitlements",
            id="provisioning",
        ),
        pytest.param(
            {"subject": "SAML SSO set-up with Okta"},
            "fallback-identity-words",
            "identity_access",
            id="identity",
        ),
        pytest.param(
            {"subject": "Webhook deliveries return 429"},
            "fallback-integrations-words",
            "integrations_api",
            id="integrations",
        ),
        pytest.param(
            {"subject": "Reports are not loading"},
            "fallback-outage-words",
            "platform_operations",
            id="outage",
        ),
        pytest.param(
            {"subject": "Can you add dark mode?"},
            "fallback-catch-all",
            "general_support",
            id="catch-all",
        ),
    ],
)
def test_fallback_rules_route_to_every_queue(
    bundled: RuleBook, fields: dict[str, Any], rule_id: str, queue: str
) -> None:
    match = bundled.match_fallback(make_ticket(**fields))

    assert (match.rule_id, match.queue, match.section) == (rule_id, queue, "fallback")


def test_context_reaches_rules(bundled: RuleBook) -> None:
    ticket = make_ticket(subject="Can you add dark mode?")

    match = bundled.match_fallback(ticket, {"account_status": "suspended"})

    assert match.rule_id == "fallback-suspended-account"


# Matching semantics


def test_first_matching_fallback_rule_wins(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        rules_with(
            fallback=[
                rule("first", 'ticket.text.contains("invoice")', queue="collections"),
                rule(
                    "second",
                    'ticket.text.contains("invoice")',
                    queue="billing_invoicing",
                ),
                CATCH_ALL,
            ]
        ),
    )

    match = load_rules(path).match_fallback(make_ticket(subject="Invoice"))

    assert (match.rule_id, match.queue) == ("first", "collections")


def test_absent_optional_fields_read_as_empty_strings(tmp_path: Path) -> None:
    condition = (
        'ticket.product == "" && ticket.severity == "" && ticket.lower.region == ""'
    )
    path = write_rules(
        tmp_path,
        rules_with(
            fallback=[rule("no-product", condition, queue="security"), CATCH_ALL]
        ),
    )

    match = load_rules(path).match_fallback(make_ticket())

    assert match.rule_id == "no-product"


def test_context_defaults_keep_absent_context_keys_from_erroring(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content = rules_with(
        fallback=[
            rule(
                "suspended",
                'context.account_status == "suspended"',
                queue="collections",
            ),
            CATCH_ALL,
        ],
        context_defaults={"account_status": ""},
    )
    book = load_rules(write_rules(tmp_path, content))

    with caplog.at_level(logging.WARNING, logger="serving.rules"):
        match = book.match_fallback(make_ticket(), None)

    assert match.rule_id == "catch-all"
    assert not caplog.records


def test_runtime_evaluation_error_is_logged_and_treated_as_not_matched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_rules(
        tmp_path,
        rules_with(
            fallback=[
                rule(
                    "needs-metadata", 'ticket.metadata.plan == "gold"', queue="security"
                ),
                CATCH_ALL,
            ]
        ),
    )
    book = load_rules(path)

    with caplog.at_level(logging.WARNING, logger="serving.rules"):
        match = book.match_fallback(make_ticket(subject="Top secret subject"))

    assert match.rule_id == "catch-all"
    [record] = caplog.records
    assert record.rule_id == "needs-metadata"
    assert "plan" in record.error


def test_logged_evaluation_errors_never_carry_ticket_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_rules(
        tmp_path,
        rules_with(
            fallback=[
                # The missing key is the subject itself, which celpy quotes.
                rule(
                    "by-subject",
                    'ticket.metadata[ticket.subject] == "x"',
                    queue="security",
                ),
                CATCH_ALL,
            ]
        ),
    )
    book = load_rules(path)

    with caplog.at_level(logging.DEBUG):
        match = book.match_fallback(make_ticket(subject="Confidential words"))

    assert match.rule_id == "catch-all"
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            assert "confidential" not in str(record.__dict__).lower()


def test_pre_checked_conditions_match_exactly_like_full_evaluation(
    tmp_path: Path,
) -> None:
    # Parentheses hide the operands from the pre-checks, so the second rule is
    # evaluated by celpy alone; both must agree on every ticket.
    fast = 'ticket.channel == "alert" && ticket.text.matches("disk|memory")'
    slow = '(ticket.channel == "alert") && (ticket.text.matches("disk|memory"))'
    books = [
        load_rules(
            write_rules(
                tmp_path,
                rules_with(
                    fallback=[rule("r", condition, queue="security"), CATCH_ALL]
                ),
            )
        )
        for condition in (fast, slow)
    ]
    tickets = [
        make_ticket(channel=channel, subject=subject)
        for channel in ("alert", "email")
        for subject in ("Disk full", "Memory leak", "CPU hot")
    ]

    for ticket in tickets:
        fast_match, slow_match = (book.match_fallback(ticket) for book in books)
        assert fast_match.rule_id == slow_match.rule_id


def test_prepared_input_serves_every_rule_list(bundled: RuleBook) -> None:
    prepared = bundled.prepare(make_ticket(subject="Refund please"))

    assert bundled.match_override(prepared) is None
    assert bundled.match_fallback(prepared).queue == "billing_invoicing"
    with pytest.raises(TypeError, match="already part"):
        bundled.match_fallback(prepared, {"account_status": "suspended"})


# Validation at load time


def test_fallback_rules_without_a_catch_all_fail_at_load(tmp_path: Path) -> None:
    only_rule = rule(
        "billing", 'ticket.text.contains("invoice")', queue="billing_invoicing"
    )
    path = write_rules(tmp_path, rules_with(fallback=[only_rule]))

    with pytest.raises(ConfigError, match="must end in a catch-all") as caught:
        load_rules(path)

    assert str(path) in str(caught.value)
    assert "'billing'" in str(caught.value)


def test_catch_all_before_the_last_fallback_rule_fails_at_load(tmp_path: Path) -> None:
    unreachable = rule("unreachable", 'ticket.text.contains("x")', queue="security")
    path = write_rules(
        tmp_path,
        rules_with(fallback=[CATCH_ALL, unreachable, {**CATCH_ALL, "id": "end"}]),
    )

    with pytest.raises(ConfigError, match="could never match"):
        load_rules(path)


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        pytest.param('ticket.text.contains("x"', "not valid CEL", id="syntax-error"),
        pytest.param(
            'ticket.text.contians("x")', "unknown function contians", id="typo-function"
        ),
        pytest.param(
            'tickt.text == "x"', "unknown variable 'tickt'", id="typo-variable"
        ),
        pytest.param(
            'ticket.text.matches("(")', "invalid regular expression", id="bad-regex"
        ),
        pytest.param("ticket.subject", "must be true or false", id="not-boolean"),
    ],
)
def test_bad_condition_fails_at_load_naming_the_rule(
    tmp_path: Path, condition: str, problem: str
) -> None:
    path = write_rules(
        tmp_path,
        rules_with(override=[rule("broken-rule", condition, queue="security")]),
    )

    with pytest.raises(ConfigError) as caught:
        load_rules(path)

    message = str(caught.value)
    assert "'broken-rule'" in message
    assert problem in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        pytest.param({"queue": "legal"}, "unknown queue 'legal'", id="unknown-queue"),
        pytest.param(
            {"queue": "security", "priority": "P0"},
            "unknown priority 'P0'",
            id="unknown-priority",
        ),
        pytest.param({"priority": "P1"}, "action needs a queue", id="missing-queue"),
        pytest.param(
            {"queue": "security", "escalation": "ceo"},
            "escalation",
            id="unknown-escalation",
        ),
    ],
)
def test_bad_action_fails_at_load(
    tmp_path: Path, action: dict[str, Any], problem: str
) -> None:
    path = write_rules(
        tmp_path, rules_with(override=[rule("bad-action", "true", **action)])
    )

    with pytest.raises(ConfigError, match=problem) as caught:
        load_rules(path)

    assert str(path) in str(caught.value)


def test_duplicate_rule_ids_fail_at_load(tmp_path: Path) -> None:
    twice = rule("twice", 'ticket.text.contains("x")', queue="security")
    path = write_rules(
        tmp_path, rules_with(override=[twice], fallback=[twice, CATCH_ALL])
    )

    with pytest.raises(ConfigError, match="duplicate rule ids: twice"):
        load_rules(path)


def test_escalation_rules_may_not_route(tmp_path: Path) -> None:
    content = rules_with(
        escalation={
            "rules": [rule("routes", "true", queue="security", escalation="team_lead")]
        }
    )

    with pytest.raises(ConfigError, match="sets an escalation and nothing else"):
        load_rules(write_rules(tmp_path, content))


def test_unknown_queue_in_priority_defaults_fails_at_load(tmp_path: Path) -> None:
    content = rules_with(
        escalation={"priority_defaults": {"by_queue": {"legal": "P1"}}}
    )

    with pytest.raises(ConfigError, match="unknown queue 'legal'"):
        load_rules(write_rules(tmp_path, content))


def test_missing_rules_file_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_rules(tmp_path / "absent.yaml")


# Versioning and distribution


def test_rule_set_version_changes_when_the_file_changes(tmp_path: Path) -> None:
    billing = rule(
        "billing", 'ticket.text.contains("invoice")', queue="billing_invoicing"
    )
    path = write_rules(tmp_path, rules_with(fallback=[billing, CATCH_ALL]))
    before = load_rules(path).version
    again = load_rules(path).version

    write_rules(
        tmp_path, rules_with(fallback=[{**billing, "owner": "billing-ops"}, CATCH_ALL])
    )
    after = load_rules(path).version

    assert before == again
    assert after != before


def test_rule_book_pickles_for_ray_workers(bundled: RuleBook) -> None:
    copy = pickle.loads(pickle.dumps(bundled))
    ticket = make_ticket(subject="We had a data breach")

    assert copy.version == bundled.version
    assert copy.match_override(ticket) == bundled.match_override(ticket)


def test_rules_load_after_another_celpy_user_built_the_parser() -> None:
    # celpy shares one parser per process; an interpreted Environment built
    # first must not break the compiled runner the rules engine uses.
    saved = CELParser.CEL_PARSER
    try:
        CELParser.CEL_PARSER = None
        celpy.Environment()
        assert CELParser.CEL_PARSER.options.tree_class is lark.Tree

        book = load_rules()

        assert book.match_override(make_ticket(subject="data breach")) is not None
    finally:
        CELParser.CEL_PARSER = saved


# Priority and escalation


@pytest.mark.parametrize(
    ("fields", "queue", "expected"),
    [
        pytest.param(
            {"subject": "Production is down"},
            "platform_operations",
            ("P1", "priority-production-down"),
            id="priority-rule",
        ),
        pytest.param(
            {"subject": "Phishing report"}, "security", ("P2", None), id="queue-default"
        ),
        pytest.param(
            {"channel": "alert", "subject": "Disk 80%"},
            "general_support",
            ("P2", None),
            id="channel-more-urgent-than-queue",
        ),
        pytest.param(
            {"subject": "Refund please"},
            "billing_invoicing",
            ("P3", None),
            id="default",
        ),
    ],
)
def test_priority_comes_from_priority_rules_then_defaults(
    bundled: RuleBook,
    fields: dict[str, Any],
    queue: str,
    expected: tuple[str, str | None],
) -> None:
    priority, reason, rule_id = bundled.prioritize(make_ticket(**fields), None, queue)

    assert (priority, rule_id) == expected
    assert priority in reason


@pytest.mark.parametrize(
    ("fields", "context", "queue", "priority", "expected"),
    [
        pytest.param(
            {"account_tier": "strategic"},
            None,
            "billing_invoicing",
            "P2",
            ("executive", "strategic-urgent-executive"),
            id="strategic-urgent",
        ),
        pytest.param(
            {},
            {"account_tier": "strategic"},
            "billing_invoicing",
            "P1",
            ("executive", "strategic-urgent-executive"),
            id="strategic-from-crm-context",
        ),
        pytest.param(
            {"channel": "alert", "severity": "critical"},
            None,
            "platform_operations",
            "P1",
            ("incident_commander", "critical-alert-incident-commander"),
            id="critical-alert",
        ),
        pytest.param(
            {},
            None,
            "security",
            "P1",
            ("incident_commander", "urgent-security-incident-commander"),
            id="p1-security",
        ),
        pytest.param(
            {"account_tier": "enterprise", "body": "This is unacceptable."},
            None,
            "billing_invoicing",
            "P3",
            ("team_lead", "key-account-unhappy-team-lead"),
            id="enterprise-angry",
        ),
        pytest.param(
            {"account_tier": "enterprise"},
            {"recent_ticket_count": 4},
            "identity_access",
            "P3",
            ("team_lead", "key-account-unhappy-team-lead"),
            id="enterprise-repeated",
        ),
        pytest.param(
            {"account_tier": "starter", "body": "This is unacceptable."},
            None,
            "billing_invoicing",
            "P3",
            ("none", None),
            id="starter-angry-not-escalated",
        ),
        pytest.param(
            {"account_tier": "strategic"},
            None,
            "billing_invoicing",
            "P3",
            ("none", None),
            id="strategic-routine",
        ),
    ],
)
def test_escalation_rules_choose_the_path(
    bundled: RuleBook,
    fields: dict[str, Any],
    context: dict[str, Any] | None,
    queue: str,
    priority: str,
    expected: tuple[str, str | None],
) -> None:
    escalation, reason, rule_id = bundled.escalate(
        make_ticket(**fields), context, queue, priority
    )

    assert (escalation, rule_id) == expected
    assert (reason is None) == (rule_id is None)
