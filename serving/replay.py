"""Replay: what stored tickets would have become under a proposed change.

A reviewer proposes a rule set, per-queue thresholds or a model version and
asks what it would do to real traffic before anything goes live. `replay`
takes stored cases (each ticket with the context and classifier answer its
latest decision used) and decides every ticket twice with the one policy
function: once with the live rules, automation policy and stored answer (the
baseline), once under the proposal. Both sides are re-derived the same way,
with a fixed decision id and clock, so the differences come from the
proposal alone. `ReplayReport` counts them: queue transitions, priority and
mode changes, model coverage and, where feedback says where tickets ended,
first-touch accuracy before and after.

Nothing live is touched: no store writes, no HTTP, no alias changes.

A thresholds file (YAML or JSON) names queues and what to try for each; it
is applied on top of the thresholds in every classifier answer replayed:

```yaml
queues:
  integrations_api:
    threshold: 0.9     # the confidence a proposal for this queue needs
  security:
    routable: false    # never auto-route this queue (optional)
```

Known limitation: the service state at decision time is not replayed; a
ticket decided by rules because of drift is replayed as if the model were
healthy, so its baseline may differ from the stored decision (counted in
`stored_queue_differs`).
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from rich.console import Console
from rich.table import Table

from features.config import load_yaml_model
from features.context import Context
from features.errors import ConfigError, FieldProblem, InvalidInputError
from features.schema import Ticket
from features.settings import Settings
from features.taxonomy import Taxonomy, load_taxonomy
from features.text import build_text
from monitoring.cases import Case, CaseStore
from monitoring.feedback import fold_feedback
from monitoring.store import DecisionStore
from serving.decision import Decision, ModelProposal, ModelState
from serving.policy import AutomationPolicy, decide
from serving.router import RouterCore, proposal_from_result
from serving.rules import RuleBook
from training.thresholds import RoutingThresholds

log = logging.getLogger(__name__)

# One answer per text, in order, as `ClassifierCore.classify` returns them.
ClassifyTexts = Callable[[list[str]], list[dict[str, Any]]]

# Tickets per classifier call when a model version is replayed: large enough
# that the encoder's length-sorted batches fill, small enough to bound memory.
CLASSIFY_BATCH_SIZE = 256
# Changed tickets kept in the report as examples; the counts cover them all.
EXAMPLE_LIMIT = 20
_MOMENT_FORMS = (
    "an ISO date (2026-12-01) or date and time (2026-12-01T09:30:00), UTC "
    "unless it carries an offset"
)
_NO_ANSWER = ModelState(status="unavailable", detail="no classifier answer stored")


class QueueThresholdOverride(BaseModel):
    """What to try for one queue; unset fields keep the answer's own value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Confidence a proposal for the queue needs to auto-route.",
    )
    routable: bool | None = Field(
        default=None,
        description="Whether the model may auto-route the queue at all.",
    )

    @model_validator(mode="after")
    def _require_a_change(self) -> QueueThresholdOverride:
        if self.threshold is None and self.routable is None:
            raise ValueError("give threshold, routable or both")
        return self


class ThresholdOverrides(BaseModel):
    """Validated content of a thresholds file: per-queue values to try."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: dict[str, QueueThresholdOverride] = Field(
        min_length=1, description="Taxonomy queue id to the values tried for it."
    )

    def apply(self, thresholds: RoutingThresholds) -> RoutingThresholds:
        """`thresholds` with each named queue's threshold replaced.

        A queue the answer has no threshold for starts from the answer's
        default (not routable), so a new threshold alone does not make a
        queue the model never learned routable.
        """
        queues = dict(thresholds.queues)
        for queue, override in self.queues.items():
            changes = override.model_dump(exclude_none=True)
            queues[queue] = thresholds.for_queue(queue).model_copy(update=changes)
        return thresholds.model_copy(update={"queues": queues})


@dataclass(frozen=True)
class ProposedModel:
    """A registered model version that classifies the replayed texts afresh."""

    version: str
    classify: ClassifyTexts


@dataclass(frozen=True)
class ReplayProposal:
    """The changes to replay; every None keeps the live setting.

    Attributes:
        rules: A proposed rule set; None: the live rules.
        thresholds: Per-queue thresholds tried on every classifier answer.
        model: A model version to classify the tickets with; None: each
            case's stored classifier answer.
        automation: A proposed automation policy; None: the live one.
    """

    rules: RuleBook | None = None
    thresholds: ThresholdOverrides | None = None
    model: ProposedModel | None = None
    automation: AutomationPolicy | None = None


class QueueTransition(BaseModel):
    """Tickets that moved from one queue to another."""

    model_config = ConfigDict(frozen=True)

    from_queue: str
    to_queue: str
    tickets: int


class ShareChange(BaseModel):
    """A share of tickets under the live settings and under the proposal."""

    model_config = ConfigDict(frozen=True)

    before: float | None
    after: float | None
    change: float | None = Field(description="after minus before.")


class AccuracyChange(ShareChange):
    """First-touch accuracy: decided queue equals the final queue."""

    tickets: int = Field(description="Replayed tickets whose feedback names one.")


class TicketChange(BaseModel):
    """One ticket whose queue, priority or mode the proposal changes."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    queue_before: str
    queue_after: str
    priority_before: str
    priority_after: str
    mode_before: str
    mode_after: str


class ProposalSummary(BaseModel):
    """What was replayed against what."""

    model_config = ConfigDict(frozen=True)

    rule_set_before: str
    rule_set_after: str
    thresholds: dict[str, QueueThresholdOverride] = Field(default_factory=dict)
    model_version: str | None = Field(
        default=None, description="None: each case's stored classifier answer."
    )


class ReplayReport(BaseModel):
    """How the proposal would have changed the stored tickets' decisions."""

    model_config = ConfigDict(frozen=True)

    proposal: ProposalSummary
    tickets: int = Field(description="Cases replayed.")
    skipped: int = Field(
        default=0, description="Cases whose stored ticket or context is unusable."
    )
    changed: int = Field(description="Tickets routed to another queue.")
    transitions: list[QueueTransition] = Field(
        description="Most tickets first, then by queue names."
    )
    priority_changed: int
    mode_changed: int
    stored_queue_differs: int = Field(
        description="Tickets whose live baseline differs from the stored decision."
    )
    coverage: ShareChange = Field(description="Share the model decided (auto).")
    suggest_share: ShareChange = Field(description="Share the model suggested.")
    first_touch_accuracy: AccuracyChange | None = Field(
        description="None when no replayed ticket has a final queue in feedback."
    )
    examples: list[TicketChange] = Field(
        description=f"Up to {EXAMPLE_LIMIT} changed tickets, in replay order."
    )

    def to_text(self, width: int = 100) -> str:
        """The report as tables for a terminal, without colour codes."""
        buffer = io.StringIO()
        console = Console(file=buffer, width=width, color_system=None)
        for part in _text_parts(self):
            console.print(part, highlight=False)
        return buffer.getvalue()


def load_threshold_overrides(
    path: Path | str, taxonomy: Taxonomy | None = None
) -> ThresholdOverrides:
    """Load a thresholds file (YAML or JSON), checking its queue names.

    Raises:
        ConfigError: naming the file and the problem.
    """
    path = Path(path)
    overrides = load_yaml_model(path, ThresholdOverrides)

    known = set((taxonomy or load_taxonomy()).queue_ids)
    unknown = sorted(set(overrides.queues) - known)
    if unknown:
        raise ConfigError(
            f"{path}: queues: unknown queue(s) {', '.join(unknown)}; "
            f"known queues are {', '.join(sorted(known))}"
        )
    return overrides


def load_proposed_model(settings: Settings, ref: str) -> ProposedModel:
    """Load a registered version (number or alias) to replay tickets with.

    It is the service's own classifier code, so each text is scored exactly
    as the service would score it with that version as champion.

    Raises:
        RegistryError: no such version or alias, or it cannot be loaded.
    """
    from serving.classifier import ClassifierCore

    core = ClassifierCore.pinned(settings, ref)
    # pinned() either loads or raises, so a loaded model is there.
    assert core.loaded is not None
    version = core.loaded.version.version
    log.info("replay model loaded", extra={"model_version": version, "ref": ref})
    return ProposedModel(version=version, classify=core.classify)


def replay_range(
    since: str, until: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until) from the command's options; `until` defaults to `now`.

    Each is an ISO date or date and time, UTC unless it carries an offset.

    Raises:
        InvalidInputError: naming each option that cannot be read, or
            `--since` when it is not before `--until`.
    """
    problems: list[FieldProblem] = []
    start = _parse_moment("--since", since, problems)
    end = _parse_moment("--until", until, problems) if until else now
    if start is not None and end is not None and start >= end:
        problems.append(
            FieldProblem(
                "--since",
                f"{start.isoformat()} is not before --until {end.isoformat()}",
            )
        )
    if problems or start is None or end is None:
        raise InvalidInputError(problems, subject="option")
    return start, end


def stored_cases(store: DecisionStore, since: datetime, until: datetime) -> list[Case]:
    """The cases opened in [since, until), oldest first.

    Known limitation: `CaseStore.cases_since` has no upper bound, so cases
    opened after `until` are read and dropped here; a replay of an old week
    in a long history reads everything since that week.
    """
    cases = CaseStore(store).cases_since(since)
    return [case for case in cases if case.opened_at < until]


def replay(
    cases: Iterable[Case],
    *,
    baseline: RouterCore,
    proposal: ReplayProposal,
    feedback: Iterable[Mapping[str, Any]] | None = None,
) -> ReplayReport:
    """Decide each case under the live settings and under the proposal.

    Args:
        cases: Stored cases; each is replayed from its ticket, context and
            classifier answer.
        baseline: The live rules and automation policy (the service's own
            `RouterCore.from_settings`).
        proposal: What to change; unset parts stay live.
        feedback: Stored feedback rows (`DecisionStore.iter_feedback`) for
            first-touch accuracy; rows about other tickets are ignored.

    Returns:
        The report; pure: nothing is written anywhere.
    """
    tally = _Tally(final_queues=_final_queues(feedback))
    for chunk in _chunks(cases, CLASSIFY_BATCH_SIZE):
        loaded = [(case, _prepare(case)) for case in chunk]
        usable = [(case, prepared) for case, prepared in loaded if prepared]
        tally.skipped += len(chunk) - len(usable)
        fresh = _classify(proposal.model, [prepared for _, prepared in usable])
        for index, (case, prepared) in enumerate(usable):
            before = _decide_baseline(case, prepared, baseline)
            answer = fresh[index] if fresh is not None else case.classifier_result
            after = _decide_proposed(case, prepared, answer, baseline, proposal)
            tally.add(case, before, after)

    report = tally.report(_summary(baseline, proposal))
    log.info(
        "replay done",
        extra={
            "tickets": report.tickets,
            "skipped": report.skipped,
            "changed": report.changed,
            "model_version": report.proposal.model_version,
            "rule_set_version": report.proposal.rule_set_after,
        },
    )
    return report


@dataclass(frozen=True)
class _Prepared:
    ticket: Ticket
    # The model, not its rule view: rules read `rule_view()` from it, and the
    # policy also records which sources were missing, as it does live.
    context: Context | None


@dataclass
class _Tally:
    final_queues: dict[str, str]
    tickets: int = 0
    skipped: int = 0
    changed: int = 0
    priority_changed: int = 0
    mode_changed: int = 0
    stored_differs: int = 0
    auto_before: int = 0
    auto_after: int = 0
    suggest_before: int = 0
    suggest_after: int = 0
    reviewed: int = 0
    correct_before: int = 0
    correct_after: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: list[TicketChange] = field(default_factory=list)

    def add(self, case: Case, before: Decision, after: Decision) -> None:
        self.tickets += 1
        self.stored_differs += before.queue != case.queue
        self.auto_before += before.mode == "auto"
        self.auto_after += after.mode == "auto"
        self.suggest_before += before.mode == "suggest"
        self.suggest_after += after.mode == "suggest"
        self._add_changes(before, after)

        final_queue = self.final_queues.get(case.ticket_id)
        if final_queue is not None:
            self.reviewed += 1
            self.correct_before += before.queue == final_queue
            self.correct_after += after.queue == final_queue

    def report(self, summary: ProposalSummary) -> ReplayReport:
        ordered = sorted(self.transitions.items(), key=lambda item: (-item[1], item[0]))
        accuracy = None
        if self.reviewed:
            accuracy = AccuracyChange(
                **_share_change(
                    self.correct_before, self.correct_after, self.reviewed
                ).model_dump(),
                tickets=self.reviewed,
            )
        return ReplayReport(
            proposal=summary,
            tickets=self.tickets,
            skipped=self.skipped,
            changed=self.changed,
            transitions=[
                QueueTransition(from_queue=source, to_queue=target, tickets=count)
                for (source, target), count in ordered
            ],
            priority_changed=self.priority_changed,
            mode_changed=self.mode_changed,
            stored_queue_differs=self.stored_differs,
            coverage=_share_change(self.auto_before, self.auto_after, self.tickets),
            suggest_share=_share_change(
                self.suggest_before, self.suggest_after, self.tickets
            ),
            first_touch_accuracy=accuracy,
            examples=self.examples,
        )

    def _add_changes(self, before: Decision, after: Decision) -> None:
        queue_moved = before.queue != after.queue
        priority_moved = before.priority != after.priority
        mode_moved = before.mode != after.mode
        if queue_moved:
            self.changed += 1
            self.transitions[(before.queue, after.queue)] += 1
        self.priority_changed += priority_moved
        self.mode_changed += mode_moved
        if (queue_moved or priority_moved or mode_moved) and len(
            self.examples
        ) < EXAMPLE_LIMIT:
            self.examples.append(
                TicketChange(
                    ticket_id=before.ticket_id,
                    queue_before=before.queue,
                    queue_after=after.queue,
                    priority_before=before.priority,
                    priority_after=after.priority,
                    mode_before=before.mode,
                    mode_after=after.mode,
                )
            )


def _parse_moment(
    option: str, text: str, problems: list[FieldProblem]
) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        problems.append(
            FieldProblem(option, f"cannot read {text[:64]!r}; give {_MOMENT_FORMS}")
        )
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _final_queues(feedback: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """Each ticket's final queue, by the same fold process metrics use."""
    if feedback is None:
        return {}
    return {
        ticket_id: outcome.final_queue
        for ticket_id, outcome in fold_feedback(feedback).items()
        if outcome.final_queue is not None
    }


def _chunks(cases: Iterable[Case], size: int) -> Iterator[list[Case]]:
    iterator = iter(cases)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _prepare(case: Case) -> _Prepared | None:
    """The ticket and the context rules see, or None when they no longer load.

    A stored ticket that today's schema refuses must not stop a replay of
    thousands; it is counted as skipped instead.
    """
    try:
        ticket = Ticket.model_validate(case.ticket)
        context = (
            Context.model_validate(case.context) if case.context is not None else None
        )
    except ValidationError as err:
        log.warning(
            "stored case unusable, skipped",
            extra={"ticket_id": case.ticket_id, "errors": err.error_count()},
        )
        return None
    return _Prepared(ticket, context)


def _classify(
    model: ProposedModel | None, prepared: list[_Prepared]
) -> list[dict[str, Any]] | None:
    """Fresh answers from the proposed version, or None to reuse stored ones."""
    if model is None or not prepared:
        return None
    # The same text the router builds, so the version sees what it would live.
    texts = [build_text(p.ticket.subject, p.ticket.body).text for p in prepared]
    answers = model.classify(texts)
    if len(answers) != len(texts):
        raise ValueError(f"{len(answers)} classifier answers for {len(texts)} texts")
    return answers


def _decide_baseline(case: Case, prepared: _Prepared, live: RouterCore) -> Decision:
    proposal, state = _outcome(case.classifier_result, None)
    return _decide(case, prepared, proposal, state, live.rules, live.automation)


def _decide_proposed(
    case: Case,
    prepared: _Prepared,
    answer: dict[str, Any] | None,
    live: RouterCore,
    change: ReplayProposal,
) -> Decision:
    proposal, state = _outcome(answer, change.thresholds)
    rules = change.rules or live.rules
    automation = change.automation or live.automation
    return _decide(case, prepared, proposal, state, rules, automation)


def _outcome(
    answer: dict[str, Any] | None, overrides: ThresholdOverrides | None
) -> tuple[ModelProposal | None, ModelState]:
    if answer is None:
        return None, _NO_ANSWER
    proposal, state = proposal_from_result(answer)
    if proposal is not None and overrides is not None:
        thresholds = overrides.apply(proposal.thresholds)
        # The model's threshold set no longer applies: name the tried one.
        proposal = proposal.model_copy(
            update={"thresholds": thresholds, "thresholds_version": None}
        )
    return proposal, state


def _decide(
    case: Case,
    prepared: _Prepared,
    proposal: ModelProposal | None,
    state: ModelState,
    rules: RuleBook,
    automation: AutomationPolicy,
) -> Decision:
    # Fixed id and clock: a replay of the same history gives the same report.
    return decide(
        prepared.ticket,
        proposal=proposal,
        state=state,
        rules=rules,
        automation=automation,
        context=prepared.context,
        decision_id=f"replay:{case.decision_id}",
        now=case.updated_at,
    )


def _share_change(before: int, after: int, whole: int) -> ShareChange:
    if not whole:
        return ShareChange(before=None, after=None, change=None)
    return ShareChange(
        before=before / whole, after=after / whole, change=(after - before) / whole
    )


def _summary(live: RouterCore, proposal: ReplayProposal) -> ProposalSummary:
    rules = proposal.rules or live.rules
    thresholds = proposal.thresholds.queues if proposal.thresholds else {}
    return ProposalSummary(
        rule_set_before=live.rules.version,
        rule_set_after=rules.version,
        thresholds=dict(thresholds),
        model_version=proposal.model.version if proposal.model else None,
    )


def _text_parts(report: ReplayReport) -> Iterator[Any]:
    summary = report.proposal
    yield (
        f"Replay of {report.tickets} tickets"
        + (
            f" ({report.skipped} skipped: stored ticket unusable)"
            if report.skipped
            else ""
        )
    )
    if summary.rule_set_before == summary.rule_set_after:
        yield f"rule set: live {summary.rule_set_before} (unchanged)"
    else:
        yield f"rule set: live {summary.rule_set_before} -> {summary.rule_set_after}"
    if summary.thresholds:
        tried = ", ".join(
            f"{queue} {_describe_override(override)}"
            for queue, override in summary.thresholds.items()
        )
        yield f"thresholds tried: {tried}"
    yield f"model: {_describe_model(summary.model_version)}"
    yield (
        f"queue changed for {report.changed} tickets "
        f"({_pct(_ratio(report.changed, report.tickets))}); priority changed "
        f"{report.priority_changed}; mode changed {report.mode_changed}"
    )
    if report.stored_queue_differs:
        yield (
            f"note: the live baseline differs from the stored decision for "
            f"{report.stored_queue_differs} tickets (rules or policy changed "
            "since, or drift then)"
        )
    if report.transitions:
        yield _transition_table(report.transitions)
    yield _share_table(report)
    if report.examples:
        yield _examples_table(report.examples)


def _transition_table(transitions: list[QueueTransition]) -> Table:
    table = Table(title="queue transitions")
    table.add_column("from")
    table.add_column("to")
    table.add_column("tickets", justify="right")
    for row in transitions:
        table.add_row(row.from_queue, row.to_queue, str(row.tickets))
    return table


def _share_table(report: ReplayReport) -> Table:
    table = Table(title="live vs proposed")
    for column in ("measure", "live", "proposed", "change"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    rows: list[tuple[str, ShareChange]] = [
        ("coverage (model auto-routes)", report.coverage),
        ("suggested by the model", report.suggest_share),
    ]
    accuracy = report.first_touch_accuracy
    if accuracy is not None:
        rows.append((f"first-touch accuracy ({accuracy.tickets} reviewed)", accuracy))
    for name, share in rows:
        table.add_row(
            name, _pct(share.before), _pct(share.after), _points(share.change)
        )
    if accuracy is None:
        table.add_row("first-touch accuracy", "-", "-", "no feedback")
    return table


def _examples_table(examples: list[TicketChange]) -> Table:
    table = Table(title=f"changed tickets (at most {EXAMPLE_LIMIT} shown)")
    for column in ("ticket", "queue", "priority", "mode"):
        table.add_column(column)
    for row in examples:
        table.add_row(
            row.ticket_id,
            _arrow(row.queue_before, row.queue_after),
            _arrow(row.priority_before, row.priority_after),
            _arrow(row.mode_before, row.mode_after),
        )
    return table


def _describe_override(override: QueueThresholdOverride) -> str:
    parts = []
    if override.threshold is not None:
        parts.append(f"{override.threshold:.2f}")
    if override.routable is not None:
        parts.append("routable" if override.routable else "not routable")
    return " ".join(parts)


def _describe_model(version: str | None) -> str:
    if version is None:
        return "each ticket's stored classifier answer"
    return f"version {version}, classifying every ticket afresh"


def _arrow(before: str, after: str) -> str:
    return before if before == after else f"{before} -> {after}"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} pts"
