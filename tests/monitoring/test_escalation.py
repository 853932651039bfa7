"""SLA clocks of cases and the escalation scheduler, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from features.settings import Settings
from monitoring.cases import Case, CaseStore, EscalationStep
from monitoring.escalation import EscalationScheduler, run_scheduler_once, sla_status
from monitoring.sla import SlaPolicy, load_sla_policy
from monitoring.store import DecisionStore, open_store

if TYPE_CHECKING:
    from conftest import Backend

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2026-12-07, 09:00 in Berlin: business hours on business_eu.
MONDAY_9AM = datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


@pytest.fixture(scope="module")
def policy() -> SlaPolicy:
    return load_sla_policy()


@pytest.fixture
def cases(store: DecisionStore) -> CaseStore:
    return CaseStore(store)


def make_case(
    opened_at: datetime = MONDAY_9AM,
    *,
    number: int = 1,
    queue: str = "billing_invoicing",
    priority: str = "P2",
    **fields: Any,
) -> Case:
    return Case(
        ticket_id=f"T-{number}",
        ticket={"id": f"T-{number}", "channel": "email"},
        account_id="acct-1",
        decision_id=f"dec-{number}",
        queue=queue,
        priority=priority,
        mode="auto",
        opened_at=opened_at,
        updated_at=opened_at,
        **fields,
    )


def levels(steps: list[EscalationStep]) -> list[tuple[str, str]]:
    return [(step.target, step.level) for step in steps]


class FakeClock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# -- SLA clocks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("opened_at", "due_at"),
    [
        pytest.param(
            berlin(2026, 12, 4, 17, 30), berlin(2026, 12, 7, 8, 30), id="weekend"
        ),
        # Thursday 24th to Saturday 26th are holidays, then Sunday.
        pytest.param(
            berlin(2026, 12, 23, 17, 30), berlin(2026, 12, 28, 8, 30), id="holidays"
        ),
        # Good Friday 26 March, clocks go forward on Sunday 28th, Easter
        # Monday: due on Tuesday, two hours ahead of UTC instead of one.
        pytest.param(
            berlin(2027, 3, 25, 17, 30),
            datetime(2027, 3, 30, 6, 30, tzinfo=UTC),
            id="dst-and-holiday",
        ),
    ],
)
def test_first_response_is_due_in_business_hours(
    policy: SlaPolicy, opened_at: datetime, due_at: datetime
) -> None:
    clock = sla_status(make_case(opened_at), [], policy, opened_at)["first_response"]

    assert clock.due_at == due_at
    assert clock.calendar == "business_eu"


def test_the_weekend_does_not_count_as_elapsed(policy: SlaPolicy) -> None:
    opened_at = berlin(2026, 12, 4, 17, 30)

    clock = sla_status(make_case(opened_at), [], policy, berlin(2026, 12, 6, 12))

    first = clock["first_response"]
    assert (first.elapsed_s, first.fraction, first.state) == (1800.0, 0.5, "ok")


def test_a_pause_stops_the_clock_and_moves_the_due_time(policy: SlaPolicy) -> None:
    case = make_case()
    pauses = [(berlin(2026, 12, 7, 9, 20), berlin(2026, 12, 7, 10, 20))]

    clock = sla_status(case, pauses, policy, berlin(2026, 12, 7, 10, 30))

    first = clock["first_response"]
    assert first.elapsed_s == 30 * 60
    assert first.due_at == berlin(2026, 12, 7, 11, 0)
    assert first.state == "ok"


def test_while_paused_the_clock_is_paused_with_no_due_time(policy: SlaPolicy) -> None:
    pauses = [(berlin(2026, 12, 7, 9, 20), None)]

    clock = sla_status(make_case(), pauses, policy, berlin(2026, 12, 8, 15, 0))

    first = clock["first_response"]
    assert (first.state, first.due_at, first.elapsed_s) == ("paused", None, 1200.0)


def test_a_pause_after_the_due_time_leaves_the_target_breached(
    policy: SlaPolicy,
) -> None:
    pauses = [(berlin(2026, 12, 7, 10, 30), None)]

    clock = sla_status(make_case(), pauses, policy, berlin(2026, 12, 7, 12, 0))

    first = clock["first_response"]
    assert (first.state, first.due_at) == ("breached", berlin(2026, 12, 7, 10, 0))


@pytest.mark.parametrize(
    ("minutes", "state"),
    [
        pytest.param(44, "ok", id="under-three-quarters"),
        pytest.param(45, "at_risk", id="three-quarters"),
        pytest.param(60, "at_risk", id="due-now"),
        pytest.param(61, "breached", id="past-due"),
    ],
)
def test_the_state_follows_the_share_elapsed(
    policy: SlaPolicy, minutes: int, state: str
) -> None:
    now = MONDAY_9AM + timedelta(minutes=minutes)

    assert sla_status(make_case(), [], policy, now)["first_response"].state == state


def test_strategic_accounts_have_the_tighter_target(policy: SlaPolicy) -> None:
    case = make_case(tier="strategic")

    first = sla_status(case, [], policy, MONDAY_9AM)["first_response"]

    assert (first.target_minutes, first.due_at) == (30, berlin(2026, 12, 7, 9, 30))


def test_p1_runs_24x7_over_the_weekend(policy: SlaPolicy) -> None:
    saturday_3am = berlin(2026, 12, 5, 3, 0)

    clock = sla_status(make_case(saturday_3am, priority="P1"), [], policy, saturday_3am)

    assert clock["first_response"].due_at == berlin(2026, 12, 5, 3, 15)
    assert clock["first_response"].calendar == "24x7"
    assert clock["resolution"].due_at == berlin(2026, 12, 5, 7, 0)


@pytest.mark.parametrize(
    ("opened_at", "priority", "due_at"),
    [
        pytest.param(
            berlin(2026, 12, 4, 20, 0), "P2", berlin(2026, 12, 4, 21, 0), id="night"
        ),
        pytest.param(
            berlin(2026, 12, 4, 17, 30),
            "P2",
            berlin(2026, 12, 4, 18, 30),
            id="into-the-night",
        ),
        pytest.param(
            berlin(2026, 12, 4, 20, 0),
            "P3",
            berlin(2026, 12, 7, 16, 0),
            id="not-covered",
        ),
    ],
)
def test_on_call_cover_runs_the_clock_after_hours(
    policy: SlaPolicy, opened_at: datetime, priority: str, due_at: datetime
) -> None:
    case = make_case(opened_at, queue="platform_operations", priority=priority)

    clock = sla_status(case, [], policy, opened_at)

    assert clock["first_response"].due_at == due_at


@pytest.mark.parametrize(
    ("responded_minutes", "state"),
    [pytest.param(50, "met", id="in-time"), pytest.param(70, "breached", id="late")],
)
def test_an_answered_target_is_met_or_breached(
    policy: SlaPolicy, responded_minutes: int, state: str
) -> None:
    responded = MONDAY_9AM + timedelta(minutes=responded_minutes)
    case = make_case(first_response_at=responded)

    clock = sla_status(case, [], policy, MONDAY_9AM + timedelta(days=1))

    assert clock["first_response"].state == state
    assert clock["first_response"].done_at == responded
    assert clock["resolution"].done_at is None


def test_a_priority_without_targets_has_no_clocks(policy: SlaPolicy) -> None:
    assert sla_status(make_case(priority="P5"), [], policy, MONDAY_9AM) == {}


# -- the scheduler ------------------------------------------------------------


def test_each_level_is_escalated_once(cases: CaseStore, policy: SlaPolicy) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    clock = FakeClock(MONDAY_9AM + timedelta(minutes=50))
    scheduler = EscalationScheduler(cases, policy, clock=clock)

    first = scheduler.run_once()
    clock.now += timedelta(minutes=5)
    again = scheduler.run_once()
    clock.now += timedelta(minutes=10)
    later = scheduler.run_once()

    assert levels(first) == [("first_response", "team_lead")]
    assert again == []
    assert levels(later) == [("first_response", "incident_commander")]
    assert first[0].due_at == MONDAY_9AM + timedelta(hours=1)
    assert first[0].decision_id == "dec-1"
    assert first[0].sla_version == policy.content_version
    assert cases.escalations("T-1")[0].sla_version == policy.content_version
    assert "80%" not in first[0].reason and "83%" in first[0].reason


def test_levels_crossed_at_once_are_recorded_in_order(
    cases: CaseStore, policy: SlaPolicy
) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    # Four business days later: both targets far past due.
    scheduler = EscalationScheduler(
        cases, policy, clock=FakeClock(berlin(2026, 12, 11, 12, 0))
    )

    steps = scheduler.run_once()

    expected = [
        ("first_response", "team_lead"),
        ("first_response", "incident_commander"),
        ("resolution", "team_lead"),
        ("resolution", "incident_commander"),
        ("resolution", "executive"),
    ]
    assert levels(steps) == expected
    assert levels(cases.escalations("T-1")) == expected


def test_after_hours_escalations_go_to_the_on_call_rota(
    cases: CaseStore, policy: SlaPolicy
) -> None:
    night = make_case(berlin(2026, 12, 4, 20, 0), queue="platform_operations")
    day = make_case(number=2, queue="platform_operations")
    for case in (night, day):
        cases.upsert_decided(case, kind="opened", cause=None, actor="router")

    at_night = EscalationScheduler(
        cases, policy, clock=FakeClock(berlin(2026, 12, 4, 21, 0))
    ).run_once()
    by_day = EscalationScheduler(
        cases, policy, clock=FakeClock(MONDAY_9AM + timedelta(hours=1))
    ).run_once()

    assert [(step.level, step.rota) for step in at_night] == [
        ("team_lead", "sre-primary"),
        ("incident_commander", "sre-primary"),
    ]
    assert "on-call rota sre-primary" in at_night[0].reason
    assert {step.rota for step in by_day} == {None}


def test_paused_and_answered_cases_are_not_escalated(
    cases: CaseStore, policy: SlaPolicy
) -> None:
    for number in (1, 2, 3):
        cases.upsert_decided(
            make_case(number=number), kind="opened", cause=None, actor="router"
        )
    cases.set_status("T-1", "waiting_on_customer", MONDAY_9AM, "agent")
    cases.record_first_response("T-2", MONDAY_9AM + timedelta(minutes=5))
    cases.record_resolved("T-3", MONDAY_9AM + timedelta(minutes=5))
    scheduler = EscalationScheduler(
        cases, policy, clock=FakeClock(MONDAY_9AM + timedelta(hours=3))
    )

    assert scheduler.run_once() == []


def test_notify_hears_each_new_step_and_a_failing_one_stops_nothing(
    cases: CaseStore, policy: SlaPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    heard: list[EscalationStep] = []

    def notify(step: EscalationStep) -> None:
        heard.append(step)
        raise ConnectionError("pager down")

    scheduler = EscalationScheduler(
        cases, policy, clock=FakeClock(MONDAY_9AM + timedelta(hours=2)), notify=notify
    )

    with caplog.at_level(logging.INFO, logger="monitoring.escalation"):
        steps = scheduler.run_once()
        scheduler.run_once()

    assert heard == steps and len(steps) == 2
    failures = [
        r for r in caplog.records if r.message == "escalation notification failed"
    ]
    assert [r.levelno for r in failures] == [logging.ERROR] * 2
    runs = [r for r in caplog.records if r.message == "escalation run finished"]
    assert [r.steps_recorded for r in runs] == [2, 0]  # type: ignore[attr-defined]


class _Crash(BaseException):
    """Stands in for the process dying."""


def test_a_restarted_scheduler_does_not_escalate_twice(
    backend: Backend, policy: SlaPolicy
) -> None:
    first_store = backend.open()
    CaseStore(first_store).upsert_decided(
        make_case(), kind="opened", cause=None, actor="router"
    )
    clock = FakeClock(berlin(2026, 12, 11, 12, 0))

    def crash(step: EscalationStep) -> None:
        raise _Crash

    with pytest.raises(_Crash):
        EscalationScheduler(
            CaseStore(first_store), policy, clock=clock, notify=crash
        ).run_once()
    first_store.close()

    second_store = backend.open()
    restarted = EscalationScheduler(CaseStore(second_store), policy, clock=clock)
    rest = restarted.run_once()
    again = restarted.run_once()

    assert levels(rest) == [
        ("first_response", "incident_commander"),
        ("resolution", "team_lead"),
        ("resolution", "incident_commander"),
        ("resolution", "executive"),
    ]
    assert again == []
    assert len(CaseStore(second_store).escalations("T-1")) == 5
    second_store.close()


def test_racing_schedulers_record_each_step_once(
    backend: Backend, policy: SlaPolicy
) -> None:
    stores = [backend.open(), backend.open()]
    for number in range(1, 6):
        CaseStore(stores[0]).upsert_decided(
            make_case(number=number), kind="opened", cause=None, actor="router"
        )
    clock = FakeClock(berlin(2026, 12, 11, 12, 0))
    start = threading.Barrier(2)
    results: list[list[EscalationStep]] = [[], []]

    def run(index: int) -> None:
        scheduler = EscalationScheduler(CaseStore(stores[index]), policy, clock=clock)
        start.wait()
        results[index] = scheduler.run_once()

    threads = [threading.Thread(target=run, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    recorded = [
        (step.ticket_id, step.target, step.level)
        for result in results
        for step in result
    ]
    assert len(recorded) == len(set(recorded)) == 5 * 5
    stored = CaseStore(stores[0]).escalated_levels([f"T-{n}" for n in range(1, 6)])
    assert stored == set(recorded)
    for store in stores:
        store.close()


def test_a_scheduler_that_looked_before_another_recorded_records_nothing(
    cases: CaseStore, store: DecisionStore, policy: SlaPolicy, monkeypatch: Any
) -> None:
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    clock = FakeClock(MONDAY_9AM + timedelta(hours=2))
    first = EscalationScheduler(cases, policy, clock=clock).run_once()
    late_cases = CaseStore(store)
    # It read the recorded levels before the first scheduler wrote them.
    monkeypatch.setattr(late_cases, "escalated_levels", lambda ticket_ids: set())
    heard: list[EscalationStep] = []

    late = EscalationScheduler(
        late_cases, policy, clock=clock, notify=heard.append
    ).run_once()

    assert len(first) == 2
    assert late == [] and heard == []
    assert len(cases.escalations("T-1")) == 2


def test_run_forever_runs_until_stopped_and_survives_a_failed_run(
    backend: Backend, policy: SlaPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.open()
    cases = CaseStore(store)
    cases.upsert_decided(make_case(), kind="opened", cause=None, actor="router")
    stop = threading.Event()
    calls: list[datetime] = []

    def clock() -> datetime:
        calls.append(MONDAY_9AM + timedelta(hours=2))
        if len(calls) == 2:
            store.close()  # the second run fails on the store
        if len(calls) == 3:
            stop.set()
        return calls[-1]

    scheduler = EscalationScheduler(cases, policy, clock=clock)
    with caplog.at_level(logging.INFO, logger="monitoring.escalation"):
        scheduler.run_forever(0.001, stop)

    messages = [record.message for record in caplog.records]
    assert messages.count("escalation run failed") == 2
    assert messages.count("escalation run finished") == 1


def test_run_scheduler_once_uses_the_settings_store(
    tmp_path: Path, policy: SlaPolicy
) -> None:
    settings = Settings(home=tmp_path)
    with open_store(settings) as store:
        CaseStore(store).upsert_decided(
            make_case(), kind="opened", cause=None, actor="router"
        )
    clock: Callable[[], datetime] = FakeClock(MONDAY_9AM + timedelta(hours=2))

    steps = run_scheduler_once(settings, clock=clock)
    again = run_scheduler_once(settings, clock=clock)

    assert levels(steps) == [
        ("first_response", "team_lead"),
        ("first_response", "incident_commander"),
    ]
    assert again == []
