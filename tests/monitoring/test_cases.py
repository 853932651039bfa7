"""The case store: cases, events and escalation steps, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from features.errors import InvalidInputError
from monitoring.cases import Case, CaseStore, EscalationStep, UnknownCaseError
from monitoring.store import DecisionStore

if TYPE_CHECKING:
    from conftest import Backend

OPENED = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
def cases(store: DecisionStore) -> Iterator[CaseStore]:
    yield CaseStore(store)


def make_case(number: int = 1, **fields: Any) -> Case:
    values: dict[str, Any] = {
        "ticket_id": f"T-{number}",
        "ticket": {"id": f"T-{number}", "channel": "email", "subject": "hello"},
        "account_id": "acct-1",
        "context": None,
        "classifier_result": {"top": "billing_invoicing", "probability": 0.91},
        "decision_id": f"dec-{number}",
        "queue": "billing_invoicing",
        "priority": "P2",
        "mode": "auto",
        "tier": "enterprise",
        "context_sources_used": ["crm"],
        "opened_at": OPENED,
        "updated_at": OPENED,
        **fields,
    }
    return Case(**values)


def make_step(level: str = "team_lead", **fields: Any) -> EscalationStep:
    values: dict[str, Any] = {
        "ticket_id": "T-1",
        "target": "first_response",
        "level": level,
        "rota": None,
        "reason": "first_response: 80% elapsed",
        "due_at": OPENED + timedelta(hours=1),
        "fraction": 0.8,
        "at": OPENED + timedelta(minutes=48),
        "decision_id": "dec-1",
        "sla_version": "sla-test",
        **fields,
    }
    return EscalationStep(**values)


def test_migration_creates_the_case_tables(
    store: DecisionStore, backend: Backend
) -> None:
    inspector = sa.inspect(store.engine)

    tables = set(inspector.get_table_names(schema=backend.schema))
    indexes = {
        index["name"] for index in inspector.get_indexes("cases", schema=backend.schema)
    }
    uniques = inspector.get_unique_constraints(
        "escalation_steps", schema=backend.schema
    )

    assert {"cases", "case_events", "escalation_steps"} <= tables
    assert {"ix_cases_account_id", "ix_cases_status"} <= indexes
    assert [sorted(unique["column_names"]) for unique in uniques] == [
        ["level", "target", "ticket_id"]
    ]


def test_a_new_case_reads_back_every_field_and_records_opened(
    cases: CaseStore,
) -> None:
    case = make_case()

    assert cases.upsert_decided(
        case, kind="opened", cause={"request_id": "r1"}, actor="router"
    )

    assert cases.get("T-1") == case
    [event] = cases.events("T-1")
    assert (event["kind"], event["actor"], event["at"]) == ("opened", "router", OPENED)
    assert event["payload"]["cause"] == {"request_id": "r1"}
    assert "subject" not in str(event["payload"])


def test_the_same_decision_twice_records_nothing_more(cases: CaseStore) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")

    assert not cases.upsert_decided(
        make_case(), kind="opened", cause=None, actor="router"
    )

    assert len(cases.events("T-1")) == 1


def test_many_cases_are_kept_in_one_call_each_with_its_cause(
    cases: CaseStore,
) -> None:
    items = [(make_case(n), {"request_id": f"r{n}"}) for n in (1, 2, 3)]

    first = cases.upsert_decided_many(items, kind="opened", actor="router")
    again = cases.upsert_decided_many(items, kind="opened", actor="router")

    assert first == [True, True, True]
    assert again == [False, False, False]
    for n in (1, 2, 3):
        [event] = cases.events(f"T-{n}")
        assert event["kind"] == "opened"
        assert event["payload"]["cause"] == {"request_id": f"r{n}"}


def test_a_case_that_cannot_be_written_loses_only_itself(cases: CaseStore) -> None:
    unwritable = {"request_id": object()}  # not JSON: its event insert fails
    items = [
        (make_case(1), {"request_id": "r1"}),
        (make_case(2), unwritable),
        (make_case(3), {"request_id": "r3"}),
    ]

    written = cases.upsert_decided_many(items, kind="opened", actor="router")

    assert written == [True, False, True]
    assert cases.get("T-1") is not None and cases.get("T-3") is not None
    assert cases.get("T-2") is None  # its whole transaction rolled back


def test_a_reroute_changes_the_decision_but_keeps_status_and_times(
    cases: CaseStore,
) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    responded = OPENED + timedelta(minutes=5)
    cases.record_first_response("T-1", responded)
    later = OPENED + timedelta(minutes=30)
    rerouted = make_case(
        decision_id="dec-2", queue="collections", opened_at=later, updated_at=later
    )

    cases.upsert_decided(
        rerouted, kind="rerouted", cause={"source": "billing"}, actor="context-event"
    )

    stored = cases.get("T-1")
    assert stored is not None
    assert (stored.queue, stored.decision_id) == ("collections", "dec-2")
    assert (stored.opened_at, stored.first_response_at) == (OPENED, responded)
    event = cases.events("T-1")[-1]
    assert event["kind"] == "rerouted"
    assert event["payload"]["previous_queue"] == "billing_invoicing"
    assert event["payload"]["previous_decision_id"] == "dec-1"


def test_a_repeated_opened_for_a_stored_case_is_recorded_as_decided(
    cases: CaseStore,
) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")

    cases.upsert_decided(
        make_case(decision_id="dec-2"), kind="opened", cause=None, actor="router"
    )

    assert [event["kind"] for event in cases.events("T-1")] == ["opened", "decided"]


def test_open_cases_leave_out_resolved_ones(cases: CaseStore) -> None:
    for number in (1, 2, 3):
        opened = OPENED + timedelta(hours=number)
        case = make_case(number, opened_at=opened, updated_at=opened)
        cases.upsert_decided(case, kind="opened", cause=None, actor="router")
    cases.upsert_decided(
        make_case(4, account_id="acct-2"), kind="opened", cause=None, actor="router"
    )
    cases.record_resolved("T-2", OPENED + timedelta(hours=5))
    cases.set_status("T-3", "waiting_on_customer", OPENED + timedelta(hours=5), "agent")

    assert [case.ticket_id for case in cases.open_cases()] == ["T-4", "T-1", "T-3"]
    assert [case.ticket_id for case in cases.open_cases_for_account("acct-1")] == [
        "T-1",
        "T-3",
    ]
    since = OPENED + timedelta(hours=2)
    assert [case.ticket_id for case in cases.cases_since(since)] == ["T-2", "T-3"]


def test_pauses_come_from_status_events(cases: CaseStore) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    at = [OPENED + timedelta(minutes=minutes) for minutes in (10, 40, 50)]

    cases.set_status("T-1", "waiting_on_customer", at[0], "agent")
    cases.set_status("T-1", "open", at[1], "customer")
    cases.set_status("T-1", "waiting_on_customer", at[2], "agent")

    assert cases.pauses("T-1") == [(at[0], at[1]), (at[2], None)]
    assert cases.pauses_for(["T-1", "T-unknown"]) == {"T-1": cases.pauses("T-1")}


def test_resolving_sets_resolved_at_and_reopening_clears_it(cases: CaseStore) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    resolved = OPENED + timedelta(hours=2)

    assert cases.record_resolved("T-1", resolved)
    assert not cases.record_resolved("T-1", resolved + timedelta(hours=1))
    assert cases.get("T-1").resolved_at == resolved  # type: ignore[union-attr]

    cases.set_status("T-1", "open", resolved + timedelta(hours=3), "customer")

    reopened = cases.get("T-1")
    assert reopened is not None
    assert (reopened.status, reopened.resolved_at) == ("open", None)
    statuses = frozenset({"resolved"})
    assert cases.pauses("T-1", statuses) == [(resolved, resolved + timedelta(hours=3))]


def test_an_unchanged_status_records_no_event(cases: CaseStore) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")

    assert not cases.set_status("T-1", "open", OPENED, "agent")

    assert len(cases.events("T-1")) == 1


def test_only_the_first_response_counts(cases: CaseStore) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    first = OPENED + timedelta(minutes=5)

    assert cases.record_first_response("T-1", first)
    assert not cases.record_first_response("T-1", first + timedelta(minutes=5))

    assert cases.get("T-1").first_response_at == first  # type: ignore[union-attr]
    assert [event["kind"] for event in cases.events("T-1")] == [
        "opened",
        "first_response",
    ]


def test_changing_an_unknown_case_says_which_ticket(cases: CaseStore) -> None:
    with pytest.raises(UnknownCaseError, match="T-404"):
        cases.set_status("T-404", "resolved", OPENED, "agent")


def test_an_unknown_status_is_invalid_input(cases: CaseStore) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")

    with pytest.raises(InvalidInputError, match="status"):
        cases.set_status("T-1", "pending", OPENED, "agent")  # type: ignore[arg-type]


def test_an_escalation_level_is_recorded_once(
    cases: CaseStore, store: DecisionStore
) -> None:
    other_process = CaseStore(store)

    assert cases.record_escalation(make_step())
    assert not other_process.record_escalation(make_step(rota="sre-primary"))
    assert cases.record_escalation(make_step("incident_commander", fraction=1.0))

    steps = cases.escalations("T-1")
    assert [(step.level, step.rota) for step in steps] == [
        ("team_lead", None),
        ("incident_commander", None),
    ]
    assert steps[0].seq is not None and steps[0].seq < steps[1].seq  # type: ignore[operator]
    assert cases.escalated_levels(["T-1"]) == {
        ("T-1", "first_response", "team_lead"),
        ("T-1", "first_response", "incident_commander"),
    }


@pytest.mark.parametrize("table", ["case_events", "escalation_steps"])
def test_events_and_steps_are_append_only(
    cases: CaseStore, store: DecisionStore, backend: Backend, table: str
) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    cases.record_escalation(make_step())

    with (
        pytest.raises(sa.exc.DBAPIError, match="append-only"),
        store.engine.begin() as conn,
    ):
        conn.exec_driver_sql(f"DELETE FROM {backend.table(table)}")
