"""SLA clocks of cases, and the scheduler that escalates the late ones.

`sla_status` measures one case against an `SlaPolicy` at an instant: per
target (first response, resolution), when it is due, how much working time
has elapsed on the case's clock with its pauses taken out, which share of
the target that is, and a state (ok, at_risk, breached, met, paused).

`EscalationScheduler.run_once` walks the open cases and records, for every
target, each escalation level whose share of the target has elapsed: all
levels crossed since the last run, in path order, each once per ticket. The
decision store's UNIQUE constraint is the only lock, so any number of
schedulers (or a restarted one) over one database record every step once.

Known limitation: a step is recorded before `notify` is called, so a process
that dies between the two never sends that notification (it is never sent
twice either); the recorded steps are the list to reconcile from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from features.settings import Settings
from features.taxonomy import load_taxonomy
from monitoring.calendar import Calendar, excluding
from monitoring.cases import (
    SLA_TARGETS,
    Case,
    CaseStore,
    EscalationStep,
    Pause,
    SlaTarget,
)
from monitoring.sla import SlaPolicy, load_sla_policy
from monitoring.store import open_store

log = logging.getLogger(__name__)

SlaState = Literal["ok", "at_risk", "breached", "met", "paused"]
# A resolved or closed case's clocks stand still too, so a reopened case is
# not charged for the time it spent resolved.
_DONE_STATUSES = frozenset({"resolved", "closed"})

Notify = Callable[[EscalationStep], None]


class SlaClock(BaseModel):
    """One SLA target of one case, measured at `as_of`.

    Attributes:
        due_at: When the target runs out on the case's clock; None while the
            clock is paused and not yet past due (it depends on when the
            pause ends).
        elapsed_s: Working seconds from opening to `done_at` (or `as_of`),
            pauses excluded.
        fraction: `elapsed_s` over the target; 1.0 is due.
        done_at: The first response or resolution, if given by `as_of`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: SlaTarget
    target_minutes: int = Field(description="Working minutes allowed.")
    calendar: str = Field(description="Name of the calendar the clock runs on.")
    due_at: datetime | None
    elapsed_s: float
    fraction: float
    state: SlaState
    done_at: datetime | None = None
    as_of: datetime


def sla_status(
    case: Case, pauses: Sequence[Pause], policy: SlaPolicy, now: datetime
) -> dict[SlaTarget, SlaClock]:
    """Measure a case's SLA targets at `now`.

    Args:
        case: The case; its queue, priority and tier choose the targets and
            the clock.
        pauses: When its clocks stood still, as `CaseStore.pauses` gives
            them: (start, end), end None while still paused.
        policy: Targets, calendars, on-call cover.
        now: The instant to measure at; events after it are not yet known.

    Returns:
        A clock per target the case's priority has; no entry for a target
        without one.
    """
    calendar = policy.clock_for(case.queue, case.priority)
    clocks: dict[SlaTarget, SlaClock] = {}
    for target in SLA_TARGETS:
        minutes = policy.target_minutes(target, case.priority, case.tier)
        if minutes is None:
            continue
        done_at = (
            case.first_response_at if target == "first_response" else case.resolved_at
        )
        clocks[target] = _measure(
            target,
            minutes,
            calendar,
            case.opened_at,
            done_at if done_at is not None and done_at <= now else None,
            pauses,
            now,
            policy.at_risk_fraction,
        )
    return clocks


class EscalationScheduler:
    """Records the escalation steps open cases have reached.

    Args:
        cases: Where cases, pauses and steps are.
        policy: Targets and escalation paths.
        clock: Current time (aware); injected so tests and replays control it.
        notify: Called once for each step this scheduler recorded, after it
            was recorded; an exception from it is logged and the run goes on.
    """

    def __init__(
        self,
        cases: CaseStore,
        policy: SlaPolicy,
        *,
        clock: Callable[[], datetime],
        notify: Notify | None = None,
    ) -> None:
        self._cases = cases
        self._policy = policy
        self._clock = clock
        self._notify = notify
        self._stopped_statuses = frozenset(policy.pause_statuses) | _DONE_STATUSES

    def run_once(self) -> list[EscalationStep]:
        """Record every escalation level crossed and not yet recorded.

        Returns:
            The steps this call recorded, per case in path order; a step
            another scheduler recorded first is not among them.

        Raises:
            StoreError: the store stayed unreachable.
        """
        now = self._clock()
        cases = self._cases.open_cases()
        ticket_ids = [case.ticket_id for case in cases]
        pauses = self._cases.pauses_for(ticket_ids, self._stopped_statuses)
        recorded = self._cases.escalated_levels(ticket_ids)

        steps = []
        for case in cases:
            due = self._due_steps(case, pauses.get(case.ticket_id, []), recorded, now)
            for step in due:
                # False: another scheduler recorded it since we looked.
                if self._cases.record_escalation(step):
                    steps.append(step)
                    self._deliver(step)
        log.info(
            "escalation run finished",
            extra={
                "open_cases": len(cases),
                "steps_recorded": len(steps),
                "steps_seen_before": len(recorded),
            },
        )
        return steps

    def run_forever(self, interval_s: float, stop_event: threading.Event) -> None:
        """Run every `interval_s` seconds until `stop_event` is set.

        A run that fails on the store is logged and the next one tries again.
        """
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        while not stop_event.is_set():
            try:
                self.run_once()
            except Exception as err:  # the next run tries again; never die quietly
                log.error(
                    "escalation run failed",
                    extra={"error": type(err).__name__, "detail": str(err)},
                )
            stop_event.wait(interval_s)

    def _due_steps(
        self,
        case: Case,
        pauses: Sequence[Pause],
        recorded: Collection[tuple[str, str, str]],
        now: datetime,
    ) -> list[EscalationStep]:
        clocks = sla_status(case, pauses, self._policy, now)
        # Who is paged is decided now, not when the level was crossed: a
        # step caught up in the morning goes to the team that is on then.
        rota = self._policy.on_call_rota(case.queue, case.priority, now)
        steps = []
        for target, clock in clocks.items():
            if clock.done_at is not None:
                continue
            for level in self._policy.escalation_path(target):
                if clock.fraction < level.at_fraction:
                    break
                if (case.ticket_id, target, level.level) in recorded:
                    continue
                steps.append(
                    EscalationStep(
                        ticket_id=case.ticket_id,
                        target=target,
                        level=level.level,
                        rota=rota,
                        reason=_reason(clock, level.level, level.at_fraction, rota),
                        due_at=clock.due_at,
                        fraction=clock.fraction,
                        at=now,
                        decision_id=case.decision_id,
                        sla_version=self._policy.content_version,
                    )
                )
        return steps

    def _deliver(self, step: EscalationStep) -> None:
        if self._notify is None:
            return
        try:
            self._notify(step)
        except Exception as err:  # the step stays recorded; others still go out
            log.error(
                "escalation notification failed",
                extra={
                    "ticket_id": step.ticket_id,
                    "target": step.target,
                    "level": step.level,
                    "error": type(err).__name__,
                },
            )


def run_scheduler_once(
    settings: Settings,
    *,
    notify: Notify | None = None,
    clock: Callable[[], datetime] | None = None,
) -> list[EscalationStep]:
    """One scheduler run over the store and SLA file these settings name.

    For the CLI and cron: loads `settings.sla_path` (checked against
    `settings.taxonomy_path`), opens the store via `open_store`, runs once
    and closes it.

    Raises:
        ConfigError: the SLA or taxonomy file is invalid.
        StoreError: the store could not be opened or stayed unreachable.
    """
    policy = load_sla_policy(
        settings.sla_path, taxonomy=load_taxonomy(settings.taxonomy_path)
    )
    store = open_store(settings)
    try:
        scheduler = EscalationScheduler(
            CaseStore(store), policy, clock=clock or _utc_now, notify=notify
        )
        return scheduler.run_once()
    finally:
        store.close()


def _measure(
    target: SlaTarget,
    minutes: int,
    calendar: Calendar,
    opened_at: datetime,
    done_at: datetime | None,
    pauses: Sequence[Pause],
    now: datetime,
    at_risk_fraction: float,
) -> SlaClock:
    stop = done_at or now
    is_paused = done_at is None and any(
        start <= now and (end is None or end > now) for start, end in pauses
    )
    # Pauses are cut at `stop`: what happens after it is not known yet (or,
    # once done, no longer matters), and an open pause must end somewhere
    # for the due time to exist.
    stopped = [
        (start, stop if end is None else min(end, stop))
        for start, end in pauses
        if start < stop
    ]
    running = excluding(calendar, stopped)
    target_s = minutes * 60
    elapsed_s = running.working_seconds(opened_at, stop)
    due_at = running.add_working_time(opened_at, target_s)

    state: SlaState
    if done_at is not None:
        state = "met" if done_at <= due_at else "breached"
    elif now > due_at:
        state = "breached"
    elif is_paused:
        state = "paused"
    elif elapsed_s >= at_risk_fraction * target_s:
        state = "at_risk"
    else:
        state = "ok"
    return SlaClock(
        target=target,
        target_minutes=minutes,
        calendar=calendar.name,
        # While paused, the due time above assumes the pause ends now.
        due_at=None if state == "paused" else due_at,
        elapsed_s=elapsed_s,
        fraction=elapsed_s / target_s,
        state=state,
        done_at=done_at,
        as_of=now,
    )


def _reason(clock: SlaClock, level: str, at_fraction: float, rota: str | None) -> str:
    reason = (
        f"{clock.target}: {clock.fraction:.0%} of {clock.target_minutes} working "
        f"minutes on {clock.calendar} elapsed; {level} from {at_fraction:.0%}"
    )
    return f"{reason}; after hours: on-call rota {rota}" if rota else reason


def _utc_now() -> datetime:
    return datetime.now(UTC)
