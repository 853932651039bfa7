"""Replay: stored tickets decided again under proposed rules, thresholds or model.

The history is built by hand so every number in a report can be counted on
the page: eleven email tickets, each with the classifier answer (in the shape
`ClassifierCore.classify` returns) and the context its decision used, and the
queue and mode the live rules and policy give it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from features.config import bundled_config_path
from features.errors import ConfigError, InvalidInputError, RegistryError
from features.schema import Ticket
from features.settings import Settings
from monitoring.cases import Case, CaseStore
from monitoring.store import DecisionStore, open_store
from serving.cli import app
from serving.replay import (
    ProposedModel,
    ReplayProposal,
    ReplayReport,
    ThresholdOverrides,
    load_proposed_model,
    load_threshold_overrides,
    replay,
    replay_range,
)
from serving.router import RouterCore
from serving.rules import RuleBook, load_rules
from serving.settings import ServingSettings
from training.thresholds import RoutingThresholds

OPENED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
SUSPENDED = {"account_id": "A-3", "entitlements": {"status": "suspended"}}


def answer(
    queue: str,
    confidence: float,
    *,
    threshold: float = 0.91,
    version: str = "7",
) -> dict[str, Any]:
    """A classifier answer as `ClassifierCore.classify` gives it, read back as JSON."""
    rest = 1.0 - confidence
    return {
        "status": "ready",
        "model_name": "switchboard-router",
        "model_version": version,
        "top_queues": [
            [queue, confidence],
            ["general_support", rest * 0.6],
            ["revenue_operations", rest * 0.4],
        ],
        "similarity": 0.8,
        "thresholds": {
            "target_precision": 0.95,
            "global_threshold": 0.9,
            "min_similarity": 0.35,
            "queues": {
                queue: {
                    "threshold": threshold,
                    "routable": True,
                    "source": "queue",
                    "support": 80,
                    "precision": 0.96,
                }
            },
        },
        "projection": None,
    }


# (number, subject, body, classifier answer, context, live queue, live mode)
HISTORY: list[tuple[int, str, str, Any, Any, str, str]] = [
    (
        1,
        "Final notice on our account",
        "We received a final notice for an overdue balance.",
        answer("billing_invoicing", 0.40),
        None,
        "collections",
        "rules",
    ),
    (
        2,
        "Payment plan",
        "Can we set up a payment plan for the past due amount?",
        None,
        None,
        "collections",
        "rules",
    ),
    (
        3,
        "Cannot use the product",
        "Our team cannot get any work done today.",
        answer("billing_invoicing", 0.30),
        SUSPENDED,
        "collections",
        "rules",
    ),
    (
        4,
        "Invoice total looks wrong",
        "The invoice for November shows a wrong total.",
        answer("billing_invoicing", 0.97),
        None,
        "billing_invoicing",
        "auto",
    ),
    (
        5,
        "Add a colleague",
        "How do I give a colleague admin permission?",
        answer("identity_access", 0.95),
        None,
        "identity_access",
        "auto",
    ),
    (
        6,
        "Webhook deliveries failing",
        "Our webhook endpoint stopped receiving events.",
        answer("integrations_api", 0.70, threshold=0.60),
        None,
        "integrations_api",
        "auto",
    ),
    (
        7,
        "Calls rejected after key rotation",
        "Our API calls return 401 since we rotated keys.",
        answer("integrations_api", 0.72, threshold=0.60),
        None,
        "integrations_api",
        "auto",
    ),
    (
        8,
        "Duplicate messages",
        "The Slack connector posts every message twice.",
        answer("integrations_api", 0.80, threshold=0.60),
        None,
        "integrations_api",
        "auto",
    ),
    (
        9,
        "Possible data breach",
        "We think customer records leaked in a data breach.",
        answer("security", 0.90),
        None,
        "security",
        "override",
    ),
    (
        10,
        "Dunning email",
        "Why did we get a dunning email? We paid last week.",
        answer("collections", 0.95),
        None,
        "collections",
        "suggest",
    ),
    (
        11,
        "Refund request",
        "Please refund the duplicate charge on our card.",
        answer("billing_invoicing", 0.85),
        None,
        "billing_invoicing",
        "suggest",
    ),
]
TICKETS = len(HISTORY)


def make_case(
    number: int,
    subject: str,
    body: str,
    result: dict[str, Any] | None,
    context: dict[str, Any] | None,
    queue: str,
    mode: str,
) -> Case:
    ticket = Ticket(
        id=f"T-{number}",
        channel="email",
        subject=subject,
        body=body,
        account_id=context["account_id"] if context else None,
        created_at=OPENED,
    )
    return Case(
        ticket_id=ticket.id,
        ticket=ticket.model_dump(mode="json"),
        account_id=ticket.account_id,
        context=context,
        classifier_result=result,
        decision_id=f"D-{number}",
        queue=queue,
        priority="P3",
        mode=mode,
        opened_at=OPENED + timedelta(minutes=number),
        updated_at=OPENED + timedelta(minutes=number),
    )


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return [make_case(*row) for row in HISTORY]


@pytest.fixture(scope="module")
def live() -> RouterCore:
    return RouterCore.from_settings(ServingSettings())


def write_rules(tmp_path: Path, rule_id: str, **action: Any) -> Path:
    """configs/rules.yaml with one rule's action changed, as a new file."""
    content = yaml.safe_load(bundled_config_path("rules.yaml").read_text())
    [rule] = [rule for rule in content["fallback"] if rule["id"] == rule_id]
    rule["action"].update(action)
    path = tmp_path / "proposed-rules.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def collections_words_to_billing(tmp_path: Path) -> RuleBook:
    path = write_rules(
        tmp_path, "fallback-collections-words", queue="billing_invoicing"
    )
    return load_rules(path)


def write_thresholds(tmp_path: Path, content: dict[str, Any], name: str) -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(content), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


# The baseline


def test_with_no_proposal_the_baseline_is_the_live_decision_and_nothing_changes(
    cases: list[Case], live: RouterCore
) -> None:
    report = replay(cases, baseline=live, proposal=ReplayProposal())

    assert report.tickets == TICKETS
    assert report.stored_queue_differs == 0, "baseline must re-derive the live queue"
    assert (report.changed, report.priority_changed, report.mode_changed) == (0, 0, 0)
    assert report.transitions == []
    assert report.coverage.before == report.coverage.after == 5 / TICKETS
    assert report.suggest_share.before == 2 / TICKETS
    assert report.first_touch_accuracy is None


def test_replaying_the_same_history_twice_gives_the_same_report(
    cases: list[Case], live: RouterCore, collections_words_to_billing: RuleBook
) -> None:
    proposal = ReplayProposal(rules=collections_words_to_billing)

    first = replay(cases, baseline=live, proposal=proposal)
    second = replay(list(reversed(cases)), baseline=live, proposal=proposal)

    assert first.model_dump(exclude={"examples"}) == second.model_dump(
        exclude={"examples"}
    )


# Proposed rules


def test_a_changed_fallback_rule_moves_exactly_the_tickets_it_decides(
    cases: list[Case], live: RouterCore, collections_words_to_billing: RuleBook
) -> None:
    report = replay(
        cases,
        baseline=live,
        proposal=ReplayProposal(rules=collections_words_to_billing),
    )

    # T-1 and T-2 reach collections by its words; T-3 by its suspended
    # account and T-10 by the model, which the changed rule does not touch.
    assert report.changed == 2
    assert [t.model_dump() for t in report.transitions] == [
        {"from_queue": "collections", "to_queue": "billing_invoicing", "tickets": 2}
    ]
    assert [example.ticket_id for example in report.examples] == ["T-1", "T-2"]
    assert (report.priority_changed, report.mode_changed) == (0, 0)
    assert report.coverage.change == 0.0
    assert report.proposal.rule_set_before == live.rules.version
    assert report.proposal.rule_set_after == collections_words_to_billing.version


def test_a_rule_that_also_sets_a_priority_counts_priority_changes(
    cases: list[Case], live: RouterCore, tmp_path: Path
) -> None:
    path = write_rules(
        tmp_path, "fallback-collections-words", queue="billing_invoicing", priority="P1"
    )

    report = replay(
        cases, baseline=live, proposal=ReplayProposal(rules=load_rules(path))
    )

    assert (report.changed, report.priority_changed) == (2, 2)
    assert {(e.priority_before, e.priority_after) for e in report.examples} == {
        ("P3", "P1")
    }


def test_transitions_are_sorted_by_count_then_queue_names(
    live: RouterCore, tmp_path: Path
) -> None:
    rows = [
        (20, "Overdue", "overdue balance", None, None, "collections", "rules"),
        (21, "Overdue", "past due", None, None, "collections", "rules"),
        (22, "Refund", "refund please", None, None, "billing_invoicing", "rules"),
        (23, "Webhook", "webhook broken", None, None, "integrations_api", "rules"),
    ]
    history = [make_case(*row) for row in rows]
    # Every ticket reaches the catch-all: only the catch-all's queue remains.
    book = _rules_with_only_the_catch_all(tmp_path)

    report = replay(history, baseline=live, proposal=ReplayProposal(rules=book))

    assert [(t.from_queue, t.to_queue, t.tickets) for t in report.transitions] == [
        ("collections", "general_support", 2),
        ("billing_invoicing", "general_support", 1),
        ("integrations_api", "general_support", 1),
    ]


# Proposed thresholds


def test_a_raised_threshold_turns_exactly_the_known_auto_decisions_into_rules(
    cases: list[Case], live: RouterCore, tmp_path: Path
) -> None:
    path = write_thresholds(
        tmp_path, {"queues": {"integrations_api": {"threshold": 0.9}}}, "thr.yaml"
    )
    overrides = load_threshold_overrides(path)

    report = replay(cases, baseline=live, proposal=ReplayProposal(thresholds=overrides))

    modes = {e.ticket_id: (e.mode_before, e.mode_after) for e in report.examples}
    # 0.70 and 0.72 fall under 0.9 - 0.15: rules; 0.80 is in the suggest band.
    assert modes == {
        "T-6": ("auto", "rules"),
        "T-7": ("auto", "rules"),
        "T-8": ("auto", "suggest"),
    }
    assert report.changed == 0, "the fallback rules send them to the same queue"
    assert report.mode_changed == 3
    assert report.coverage.before == 5 / TICKETS
    assert report.coverage.after == 2 / TICKETS
    assert report.coverage.change == pytest.approx(-3 / TICKETS)
    assert report.suggest_share.change == pytest.approx(1 / TICKETS)
    assert report.proposal.thresholds["integrations_api"].threshold == 0.9


def test_a_thresholds_file_in_json_can_make_a_queue_unroutable(
    cases: list[Case], live: RouterCore, tmp_path: Path
) -> None:
    path = write_thresholds(
        tmp_path, {"queues": {"identity_access": {"routable": False}}}, "thr.json"
    )

    report = replay(
        cases,
        baseline=live,
        proposal=ReplayProposal(thresholds=load_threshold_overrides(path)),
    )

    assert [(e.ticket_id, e.mode_after) for e in report.examples] == [("T-5", "rules")]
    assert report.coverage.change == pytest.approx(-1 / TICKETS)


def test_a_threshold_alone_does_not_make_a_queue_the_model_lacks_routable() -> None:
    thresholds = RoutingThresholds.model_validate(
        answer("billing_invoicing", 0.9)["thresholds"]
    )
    overrides = ThresholdOverrides.model_validate(
        {"queues": {"security": {"threshold": 0.5}}}
    )

    applied = overrides.apply(thresholds)

    assert applied.for_queue("security").threshold == 0.5
    assert applied.for_queue("security").routable is False
    assert applied.for_queue("billing_invoicing") == thresholds.for_queue(
        "billing_invoicing"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            {"queues": {"nowhere": {"threshold": 0.9}}},
            "unknown queue(s) nowhere",
            id="unknown-queue",
        ),
        pytest.param(
            {"queues": {"security": {"threshold": 1.5}}},
            "queues.security.threshold",
            id="threshold-over-one",
        ),
        pytest.param(
            {"queues": {"security": {}}}, "give threshold, routable", id="nothing-set"
        ),
        pytest.param({"queues": {}}, "queues", id="no-queues"),
        pytest.param({"thresholds": {}}, "thresholds", id="unknown-key"),
    ],
)
def test_a_bad_thresholds_file_is_a_config_error_naming_the_file(
    tmp_path: Path, content: dict[str, Any], expected: str
) -> None:
    path = write_thresholds(tmp_path, content, "bad-thresholds.yaml")

    with pytest.raises(ConfigError) as caught:
        load_threshold_overrides(path)

    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


# First-touch accuracy from feedback


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DecisionStore]:
    opened = DecisionStore(f"sqlite:///{tmp_path / 'decisions.db'}")
    yield opened
    opened.close()


def test_feedback_gives_first_touch_accuracy_before_and_after(
    cases: list[Case],
    live: RouterCore,
    collections_words_to_billing: RuleBook,
    store: DecisionStore,
) -> None:
    store.append_feedback(
        [
            _feedback("fb-1", "T-1", final_queue="billing_invoicing"),
            # The later event wins: T-2 ended in billing.
            _feedback("fb-2a", "T-2", final_queue="collections", minutes=1),
            _feedback("fb-2b", "T-2", final_queue="billing_invoicing", minutes=5),
            _feedback("fb-4", "T-4", final_queue="billing_invoicing"),
            _feedback("fb-5", "T-5", final_queue="general_support"),
            # No final queue: not reviewed. Not replayed: ignored.
            _feedback("fb-6", "T-6", resolved_at=OPENED + timedelta(hours=2)),
            _feedback("fb-99", "T-99", final_queue="security"),
        ],
        submitted_by="test",
    )

    report = replay(
        cases,
        baseline=live,
        proposal=ReplayProposal(rules=collections_words_to_billing),
        feedback=store.iter_feedback(),
    )

    accuracy = report.first_touch_accuracy
    assert accuracy is not None
    # Live: only T-4 right; proposed: T-1, T-2 and T-4 right, T-5 still wrong.
    assert accuracy.tickets == 4
    assert (accuracy.before, accuracy.after) == (1 / 4, 3 / 4)
    assert accuracy.change == 0.5


def test_feedback_without_a_final_queue_leaves_accuracy_unknown(
    cases: list[Case], live: RouterCore
) -> None:
    rows = [{"ticket_id": "T-1", "occurred_at": OPENED, "seq": 1, "priority": "P2"}]

    report = replay(cases, baseline=live, proposal=ReplayProposal(), feedback=rows)

    assert report.first_touch_accuracy is None


def test_replay_writes_nothing_to_the_store(
    cases: list[Case],
    live: RouterCore,
    collections_words_to_billing: RuleBook,
    store: DecisionStore,
) -> None:
    store.append_feedback(
        [_feedback("fb-1", "T-1", final_queue="billing_invoicing")], "test"
    )
    before = _row_counts(store)

    replay(
        cases,
        baseline=live,
        proposal=ReplayProposal(rules=collections_words_to_billing),
        feedback=store.iter_feedback(ticket_ids=[case.ticket_id for case in cases]),
    )

    assert _row_counts(store) == before


# A proposed model version


def test_a_proposed_model_classifies_every_text_as_the_router_builds_it(
    cases: list[Case], live: RouterCore
) -> None:
    seen: list[list[str]] = []

    def classify(texts: list[str]) -> list[dict[str, Any]]:
        seen.append(texts)
        # A version sure that every ticket is an identity matter.
        return [answer("identity_access", 0.99, version="8") for _ in texts]

    model = ProposedModel(version="8", classify=classify)

    report = replay(cases, baseline=live, proposal=ReplayProposal(model=model))

    assert seen == [[f"{row[1]}\n{row[2]}" for row in HISTORY]]
    assert report.proposal.model_version == "8"
    # Every ticket the override rule does not take goes to identity by model.
    assert report.coverage.after == (TICKETS - 1) / TICKETS
    # T-9 stays with security (override) and T-5 was in identity already.
    assert report.changed == TICKETS - 2


def test_an_unknown_model_version_is_a_registry_error_naming_it(
    settings: Any,
) -> None:
    with pytest.raises(RegistryError) as caught:
        load_proposed_model(settings, "42")

    assert "'42'" in str(caught.value)
    assert "switchboard models" in str(caught.value)


# Unusable stored cases, the text report, the date range


def test_a_stored_ticket_todays_schema_refuses_is_skipped_and_counted(
    cases: list[Case], live: RouterCore
) -> None:
    broken = cases[0].model_copy(
        update={"ticket_id": "T-bad", "ticket": {"id": "T-bad"}}
    )

    report = replay([*cases, broken], baseline=live, proposal=ReplayProposal())

    assert (report.tickets, report.skipped) == (TICKETS, 1)


def test_the_text_report_shows_transitions_and_shares(
    cases: list[Case], live: RouterCore, collections_words_to_billing: RuleBook
) -> None:
    report = replay(
        cases,
        baseline=live,
        proposal=ReplayProposal(rules=collections_words_to_billing),
    )

    text = report.to_text()

    assert f"Replay of {TICKETS} tickets" in text
    assert "queue changed for 2 tickets (18.2%)" in text
    assert "collections" in text and "billing_invoicing" in text
    assert "coverage (model auto-routes)" in text
    assert "no feedback" in text
    assert "\x1b[" not in text, "no colour codes"


def test_the_report_round_trips_through_json(
    cases: list[Case], live: RouterCore
) -> None:
    report = replay(cases, baseline=live, proposal=ReplayProposal())

    assert ReplayReport.model_validate_json(report.model_dump_json()) == report


def test_replay_range_reads_dates_and_times_as_utc() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)

    assert replay_range("2026-12-01", None, now) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        now,
    )
    assert replay_range("2026-12-01T09:30", "2026-12-02T10:00+01:00", now) == (
        datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("since", "until", "named"),
    [
        pytest.param("yesterday", None, "--since: cannot read 'yesterday'", id="since"),
        pytest.param("2026-12-01", "soon", "--until: cannot read 'soon'", id="until"),
        pytest.param("2026-12-02", "2026-12-01", "is not before --until", id="order"),
    ],
)
def test_replay_range_names_the_option_it_cannot_use(
    since: str, until: str | None, named: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        replay_range(since, until, datetime(2026, 12, 5, tzinfo=UTC))

    assert named in str(caught.value)


# The command


@pytest.fixture
def home(tmp_path: Path, cases: list[Case]) -> Path:
    """A state folder whose store holds the history's cases and some feedback."""
    home = tmp_path / "home"
    with open_store(Settings(home=home)) as store:
        case_store = CaseStore(store)
        for case in cases:
            case_store.upsert_decided(case, kind="opened", cause=None, actor="test")
        store.append_feedback(
            [
                _feedback("fb-1", "T-1", final_queue="billing_invoicing"),
                _feedback("fb-4", "T-4", final_queue="billing_invoicing"),
            ],
            submitted_by="test",
        )
    return home


def _invoke(home: Path, *args: str) -> Any:
    runner = CliRunner()
    # Wide enough that rich neither wraps messages nor squeezes tables.
    env = {"SWITCHBOARD_HOME": str(home), "COLUMNS": "200"}
    return runner.invoke(app, ["replay", *args], env=env)


def test_the_command_reports_the_proposed_rules_and_writes_nothing(
    home: Path, tmp_path: Path
) -> None:
    rules = write_rules(
        tmp_path, "fallback-collections-words", queue="billing_invoicing"
    )
    before = _table_counts(home)

    result = _invoke(home, "--since", "2026-12-01", "--rules", str(rules), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["tickets"], report["changed"]) == (TICKETS, 2)
    assert report["transitions"] == [
        {"from_queue": "collections", "to_queue": "billing_invoicing", "tickets": 2}
    ]
    accuracy = report["first_touch_accuracy"]
    assert (accuracy["tickets"], accuracy["before"], accuracy["after"]) == (2, 0.5, 1)
    assert _table_counts(home) == before


def test_the_command_prints_a_table_for_a_thresholds_file(
    home: Path, tmp_path: Path
) -> None:
    path = write_thresholds(
        tmp_path, {"queues": {"integrations_api": {"threshold": 0.9}}}, "thr.yaml"
    )

    result = _invoke(home, "--since", "2026-12-01T00:00", "--thresholds", str(path))

    assert result.exit_code == 0, result.output
    assert f"Replay of {TICKETS} tickets" in result.stdout
    assert "thresholds tried: integrations_api 0.90" in result.stdout
    assert "-27.3 pts" in result.stdout, "coverage falls by 3 of 11 tickets"


def test_the_command_replays_only_cases_opened_in_the_range(home: Path) -> None:
    # T-n was opened n minutes after 09:30; --until is exclusive.
    result = _invoke(
        home, "--since", "2026-12-01T09:32", "--until", "2026-12-01T09:35", "--json"
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tickets"] == 3


def test_the_command_says_so_when_no_case_is_in_range(home: Path) -> None:
    result = _invoke(home, "--since", "2026-11-01", "--until", "2026-11-30")

    assert result.exit_code == 0, result.output
    assert (
        "No stored cases between 2026-11-01T00:00:00+00:00 and "
        "2026-11-30T00:00:00+00:00: nothing to replay." in result.stdout
    )


def test_the_command_exits_2_with_the_config_error_of_a_bad_rules_file(
    home: Path, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path, "fallback-collections-words", queue="nowhere")

    result = _invoke(home, "--since", "2026-12-01", "--rules", str(rules))

    assert result.exit_code == 2
    assert str(rules) in result.stderr
    assert "nowhere" in result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(["--since", "someday"], "--since", id="since"),
        pytest.param(
            ["--since", "2026-12-01", "--until", "later"], "--until", id="until"
        ),
    ],
)
def test_the_command_exits_2_naming_an_unreadable_date(
    home: Path, args: list[str], named: str
) -> None:
    result = _invoke(home, *args)

    assert result.exit_code == 2
    assert f"{named}: cannot read" in result.stderr
    assert "ISO date" in result.stderr


def test_the_command_exits_2_naming_an_unknown_model_version(home: Path) -> None:
    result = _invoke(home, "--since", "2026-12-01", "--model", "42")

    assert result.exit_code == 2
    assert "no version or alias '42'" in result.stderr


# A real model version (integration: trains the session champion)


@pytest.fixture(scope="module")
def champion_history(champion_settings: ServingSettings) -> list[Case]:
    """The history decided live by the champion: answers recorded on the way."""
    import asyncio

    from serving.classifier import ClassifierCore

    core = ClassifierCore.pinned(champion_settings, "champion")
    answers: list[dict[str, Any]] = []

    async def classify(texts: list[str]) -> list[dict[str, Any]]:
        answers.extend(core.classify(texts))
        return answers[-len(texts) :]

    stored = [make_case(*row) for row in HISTORY]
    tickets = [Ticket.model_validate(case.ticket) for case in stored]
    live = RouterCore.from_settings(champion_settings)
    decisions = asyncio.run(live.route(tickets, classify, timeout_s=120))
    return [
        case.model_copy(
            update={
                "classifier_result": result,
                "context": None,
                "queue": decision.queue,
                "mode": decision.mode,
            }
        )
        for case, result, decision in zip(stored, answers, decisions, strict=True)
    ]


@pytest.mark.integration
def test_replaying_with_the_version_that_answered_changes_nothing(
    champion_settings: ServingSettings, champion_history: list[Case]
) -> None:
    live = RouterCore.from_settings(champion_settings)
    model = load_proposed_model(champion_settings, "champion")

    report = replay(
        champion_history, baseline=live, proposal=ReplayProposal(model=model)
    )

    assert report.tickets == TICKETS
    assert report.stored_queue_differs == 0
    assert (report.changed, report.priority_changed, report.mode_changed) == (0, 0, 0)
    assert report.coverage.before == report.coverage.after
    assert (
        report.proposal.model_version
        == champion_history[0].classifier_result["model_version"]
    )


@pytest.mark.integration
def test_the_command_replays_with_a_registered_version(
    champion_settings: ServingSettings, champion_history: list[Case], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'decisions.db'}"
    with DecisionStore(database_url) as store:
        for case in champion_history:
            CaseStore(store).upsert_decided(
                case, kind="opened", cause=None, actor="test"
            )
    env = {
        "SWITCHBOARD_HOME": str(champion_settings.home),
        "SWITCHBOARD_DATABASE_URL": database_url,
        "COLUMNS": "200",
    }

    result = CliRunner().invoke(
        app,
        ["replay", "--since", "2026-12-01", "--model", "champion", "--json"],
        env=env,
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["tickets"], report["changed"], report["mode_changed"]) == (
        TICKETS,
        0,
        0,
    )


def _rules_with_only_the_catch_all(tmp_path: Path) -> RuleBook:
    content = yaml.safe_load(bundled_config_path("rules.yaml").read_text())
    content["fallback"] = [
        rule for rule in content["fallback"] if rule["condition"].strip() == "true"
    ]
    path = tmp_path / "catch-all.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return load_rules(path)


def _feedback(
    feedback_id: str, ticket_id: str, *, minutes: int = 0, **fields: Any
) -> dict[str, Any]:
    return {
        "feedback_id": feedback_id,
        "ticket_id": ticket_id,
        "occurred_at": OPENED + timedelta(hours=1, minutes=minutes),
        **fields,
    }


def _row_counts(store: DecisionStore) -> tuple[int, int, int]:
    return store.count(), len(list(store.iter_feedback())), len(store.events())


def _table_counts(home: Path) -> dict[str, int]:
    """Rows in every table of the store: a replay must leave all of them."""
    with open_store(Settings(home=home)) as store:
        names = sa.inspect(store.engine).get_table_names()
        with store.engine.connect() as conn:
            return {
                name: conn.execute(
                    sa.select(sa.func.count()).select_from(sa.table(name))
                ).scalar_one()
                for name in names
            }
