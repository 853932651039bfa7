"""Process metrics: how routing worked out, from decisions and feedback.

`load_process_data` reads one time range from the decision store: the
decisions made in it, every feedback event about those tickets, and the
service-state history. `compute_process_metrics` turns that into a
`ProcessMetrics` report, overall and per group of one dimension (queue,
channel, mode or model version). It is a pure function of its inputs, so the
API, the CLI and the Prometheus gauges compute the same numbers.

Definitions (a ticket is counted once, by its first decision in the range):

- reviewed: tickets whose feedback names a final queue (an override always
  does). First-touch accuracy, reassignment rate and override frequency are
  shares of the reviewed tickets; a ticket nobody reported on is not assumed
  right.
- first-touch correct: the first decision's queue equals the final queue;
  reassigned: it does not; overridden: an agent override was recorded.
- fallback rate: decisions with a fallback reason over all decisions, overall
  and per reason (decision level: each decision in its own group).
- time to escalate: escalated_at minus the ticket's start, where the start is
  opened_at from feedback if known, else the first decision's time.
- queue aging: tickets not resolved by `as_of`, by time since their start;
  `queue_aging` groups them by the queue they are in now (the final queue if
  known, else the decided one).
- SLA attainment: first-response targets per priority (configs/sla.yaml);
  met / (met + breached). An unanswered ticket past its target is breached,
  one still within it is pending and not counted.
- exceptions: fallbacks (per decision), overrides and reassignments (per
  ticket), by source system: the ticket's channel, and for alerts also the
  alert source when feedback recorded one ("alert/alertmanager").
- time series: each ticket and decision counts in the bucket of its decision
  time.

Known limitation: the first decision is the first one inside the range, so a
ticket first routed before `since` and routed again inside it is counted as
if the later decision were its first touch.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, Field

from features.errors import FieldProblem, InvalidInputError
from monitoring.feedback import Outcome, fold_feedback
from monitoring.sla import SlaPolicy
from monitoring.store import DecisionStore

log = logging.getLogger(__name__)

Dimension = Literal["queue", "channel", "mode", "model_version"]
DIMENSIONS: tuple[str, ...] = get_args(Dimension)
BucketSize = Literal["hour", "day"]
BUCKET_SECONDS: dict[str, int] = {"hour": 3_600, "day": 86_400}
STATE_EVENT_KIND = "drift_state"
OVERALL = "all"
# Where no value is recorded, e.g. decisions made without a model version.
NONE_LABEL = "none"
# Upper bounds of the age bands of open tickets; the last band is open-ended.
AGE_BANDS: tuple[tuple[str, timedelta | None], ...] = (
    ("under_1h", timedelta(hours=1)),
    ("1h_to_4h", timedelta(hours=4)),
    ("4h_to_24h", timedelta(hours=24)),
    ("1d_to_3d", timedelta(days=3)),
    ("3d_to_7d", timedelta(days=7)),
    ("over_7d", None),
)
DEFAULT_RANGE = timedelta(days=7)
# Ranges up to this long get hourly buckets by default, longer ones daily.
_HOURLY_UP_TO = timedelta(days=3)
MAX_BUCKETS = 2_000
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TIME_FORMATS = "an ISO 8601 date or time (UTC if no offset), or a duration like 7d"
# Decision fields enrichment fills: sources that answered, and those that
# failed or timed out. A source in neither was not asked (no account id, or
# enrichment off).
ANSWERED_FIELD = "context_sources_answered"
MISSING_FIELD = "context_sources_missing"


class DurationStats(BaseModel):
    """Count and spread of a duration, in seconds; None when count is 0."""

    count: int = 0
    mean_s: float | None = None
    p50_s: float | None = None
    p90_s: float | None = None
    max_s: float | None = None


class SlaCounts(BaseModel):
    met: int = 0
    breached: int = 0
    pending: int = 0
    attainment: float | None = Field(
        default=None, description="met / (met + breached); None with neither."
    )


class SlaSummary(SlaCounts):
    no_target: int = Field(default=0, description="Tickets whose priority has none.")
    by_priority: dict[str, SlaCounts] = Field(default_factory=dict)


class GroupMetrics(BaseModel):
    """The metrics of one group (or of everything, group "all")."""

    group: str
    decisions: int = 0
    tickets: int = 0
    reviewed: int = Field(default=0, description="Tickets with a final queue.")
    first_touch_correct: int = 0
    first_touch_accuracy: float | None = None
    reassigned: int = 0
    reassignment_rate: float | None = None
    overridden: int = 0
    override_rate: float | None = None
    fallbacks: int = 0
    fallback_rate: float | None = None
    fallbacks_by_reason: dict[str, int] = Field(default_factory=dict)
    fallback_rate_by_reason: dict[str, float] = Field(default_factory=dict)
    escalated: int = 0
    time_to_escalate: DurationStats = Field(default_factory=DurationStats)
    open_tickets: int = 0
    open_by_age: dict[str, int] = Field(default_factory=dict)
    sla_first_response: SlaSummary = Field(default_factory=SlaSummary)


class QueueAging(BaseModel):
    queue: str
    open_tickets: int
    open_by_age: dict[str, int]


class SourceExceptions(BaseModel):
    source_system: str
    fallbacks: int = 0
    overrides: int = 0
    reassignments: int = 0
    total: int = 0


class SourceRate(BaseModel):
    attempted: int = 0
    succeeded: int = 0
    success_rate: float | None = None


class EnrichmentMetrics(BaseModel):
    """Enrichment success: per ticket (every source asked answered) and per source."""

    available: bool
    attempted: int = 0
    succeeded: int = 0
    success_rate: float | None = None
    by_source: dict[str, SourceRate] = Field(default_factory=dict)
    note: str | None = None


class TimeSeries(BaseModel):
    """Values per time bucket: `values[name][i]` belongs to `starts[i]`."""

    bucket: BucketSize
    starts: list[datetime]
    values: dict[str, list[float | None]]


class ProcessSeries(BaseModel):
    fallback_reasons: TimeSeries
    reassignments: TimeSeries
    escalation_latency: TimeSeries


class StateChange(BaseModel):
    seq: int
    at: datetime
    state: str | None = Field(description="payload['state'], if the event has one.")
    payload: dict[str, Any]


class ServiceStateHistory(BaseModel):
    initial: StateChange | None = Field(
        default=None, description="The last state event before the range."
    )
    changes: list[StateChange] = Field(default_factory=list)


class ProcessMetrics(BaseModel):
    """Everything the process-metrics JSON, CLI and gauges show."""

    since: datetime
    until: datetime
    as_of: datetime = Field(description="Open tickets and SLAs are judged here.")
    by: Dimension
    sla_version: str
    overall: GroupMetrics
    groups: list[GroupMetrics]
    queue_aging: list[QueueAging]
    exceptions_by_source: list[SourceExceptions]
    enrichment: EnrichmentMetrics
    series: ProcessSeries
    service_state: ServiceStateHistory


@dataclass
class ProcessData:
    """The rows one report is computed from, read once."""

    since: datetime
    until: datetime
    decisions: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    state_events: list[dict[str, Any]] = field(default_factory=list)


def load_process_data(
    store: DecisionStore, since: datetime, until: datetime
) -> ProcessData:
    """Decisions in [since, until), all feedback on their tickets, state events."""
    decisions = list(store.iter_decisions(since=since, until=until))
    ticket_ids = sorted({row["ticket_id"] for row in decisions})
    feedback = list(store.iter_feedback(ticket_ids=ticket_ids)) if ticket_ids else []
    events = store.events(kind=STATE_EVENT_KIND)
    log.info(
        "process data loaded",
        extra={"decisions": len(decisions), "feedback": len(feedback)},
    )
    return ProcessData(since, until, decisions, feedback, events)


def compute_process_metrics(
    data: ProcessData,
    sla: SlaPolicy,
    *,
    by: str = "queue",
    now: datetime | None = None,
    bucket: str | None = None,
) -> ProcessMetrics:
    """The process metrics of `data`, overall and per group of `by`.

    Args:
        data: What `load_process_data` read.
        sla: First-response targets.
        by: The dimension groups are formed on.
        now: The current time; open tickets are judged at min(now, until).
        bucket: Series bucket size; default hourly up to 3 days, else daily.

    Raises:
        InvalidInputError: an unknown dimension or bucket size, or too many
            buckets.
    """
    dimension, size = check_query(by, bucket)
    as_of = min(now or datetime.now(UTC), data.until)
    size = size or ("hour" if data.until - data.since <= _HOURLY_UP_TO else "day")
    starts = bucket_starts(data.since, data.until, size)

    tickets = _tickets(data.decisions, fold_feedback(data.feedback), as_of)
    groups: dict[str, _GroupTally] = defaultdict(_GroupTally)
    overall = _GroupTally()
    for decision in data.decisions:
        for tally in (overall, groups[_dimension_value(decision, by)]):
            tally.add_decision(decision)
    for ticket in tickets:
        for tally in (overall, groups[_dimension_value(ticket.first, by)]):
            tally.add_ticket(ticket, sla, as_of)

    return ProcessMetrics(
        since=data.since,
        until=data.until,
        as_of=as_of,
        by=dimension,
        sla_version=sla.version,
        overall=overall.metrics(OVERALL),
        groups=[groups[name].metrics(name) for name in sorted(groups)],
        queue_aging=_queue_aging(tickets),
        exceptions_by_source=_exceptions_by_source(data.decisions, tickets),
        enrichment=_enrichment(data.decisions),
        series=_series(data.decisions, tickets, starts, size),
        service_state=_service_state(data.state_events, data.since, data.until),
    )


def check_query(by: str, bucket: str | None) -> tuple[Dimension, BucketSize | None]:
    """`by` and `bucket` as their types, or one error naming both if bad.

    Raises:
        InvalidInputError: an unknown dimension or bucket size.
    """
    problems = []
    if by not in DIMENSIONS:
        problems.append(FieldProblem("by", f"unknown {by!r}", ", ".join(DIMENSIONS)))
    if bucket is not None and bucket not in BUCKET_SECONDS:
        problems.append(
            FieldProblem("bucket", f"unknown {bucket!r}", ", ".join(BUCKET_SECONDS))
        )
    if problems:
        raise InvalidInputError(problems, subject="query")
    return cast(Dimension, by), cast(BucketSize | None, bucket)


def parse_time_range(
    since: str | None, until: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until) from text: ISO dates or times, or durations back from now.

    `since` "7d" means seven days before `until`; `until` defaults to now and
    `since` to seven days before it.

    Raises:
        InvalidInputError: naming `since` or `until` and the formats allowed.
    """
    problems = []
    end, start = now, None
    try:
        end = _parse_moment(until, now) if until else now
    except ValueError:
        problems.append(FieldProblem("until", f"cannot read {until!r}", _TIME_FORMATS))
    try:
        start = _parse_moment(since, end) if since else end - DEFAULT_RANGE
    except ValueError:
        problems.append(FieldProblem("since", f"cannot read {since!r}", _TIME_FORMATS))
    if not problems and start is not None and start >= end:
        problems.append(
            FieldProblem("since", f"{start.isoformat()} is not before until", "< until")
        )
    if problems or start is None:
        raise InvalidInputError(problems, subject="query")
    return start, end


def bucket_starts(
    since: datetime, until: datetime, bucket: BucketSize
) -> list[datetime]:
    """Starts of the UTC-aligned buckets covering [since, until)."""
    size = BUCKET_SECONDS[bucket]
    first = math.floor(since.timestamp() / size) * size
    count = math.ceil((until.timestamp() - first) / size)
    if count > MAX_BUCKETS:
        problem = FieldProblem(
            "bucket", f"{count} {bucket} buckets in the range", f"{MAX_BUCKETS}"
        )
        raise InvalidInputError([problem], subject="query")
    return [datetime.fromtimestamp(first + i * size, UTC) for i in range(count)]


@dataclass
class _Ticket:
    """One ticket in the range: its first decision and its merged feedback."""

    ticket_id: str
    first: dict[str, Any]
    outcome: Outcome | None
    started_at: datetime
    is_open: bool
    age: timedelta

    @property
    def decided_at(self) -> datetime:
        return self.first["decided_at"]

    @property
    def final_queue(self) -> str | None:
        return self.outcome.final_queue if self.outcome else None

    @property
    def is_reviewed(self) -> bool:
        return self.final_queue is not None

    @property
    def is_reassigned(self) -> bool:
        return self.is_reviewed and self.final_queue != self.first["queue"]

    @property
    def is_overridden(self) -> bool:
        return self.outcome is not None and self.outcome.is_overridden

    @property
    def current_queue(self) -> str:
        return self.final_queue or self.first["queue"]

    @property
    def priority(self) -> str | None:
        if self.outcome and self.outcome.priority:
            return self.outcome.priority
        return self.first.get("priority")

    @property
    def escalation_s(self) -> float | None:
        if self.outcome is None or self.outcome.escalated_at is None:
            return None
        # Escalated before the start we know of (no opened_at, escalated
        # before routing) counts as immediate rather than negative.
        return max(0.0, (self.outcome.escalated_at - self.started_at).total_seconds())

    @property
    def source_system(self) -> str:
        channel = str(self.first.get("channel") or NONE_LABEL)
        source = self.outcome.source_system if self.outcome else None
        return f"{channel}/{source}" if channel == "alert" and source else channel


@dataclass
class _GroupTally:
    decisions: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    tickets: int = 0
    reviewed: int = 0
    correct: int = 0
    reassigned: int = 0
    overridden: int = 0
    escalations_s: list[float] = field(default_factory=list)
    open_by_age: Counter[str] = field(default_factory=Counter)
    sla: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    no_target: int = 0

    def add_decision(self, decision: Mapping[str, Any]) -> None:
        self.decisions += 1
        if decision.get("fallback_reason"):
            self.fallbacks[decision["fallback_reason"]] += 1

    def add_ticket(self, ticket: _Ticket, sla: SlaPolicy, as_of: datetime) -> None:
        self.tickets += 1
        if ticket.is_reviewed:
            self.reviewed += 1
            self.reassigned += ticket.is_reassigned
            self.correct += not ticket.is_reassigned
        self.overridden += ticket.is_overridden
        if ticket.escalation_s is not None:
            self.escalations_s.append(ticket.escalation_s)
        if ticket.is_open:
            self.open_by_age[_age_band(ticket.age)] += 1

        responded = ticket.outcome.first_response_at if ticket.outcome else None
        verdict = sla.first_response_verdict(
            ticket.priority, ticket.started_at, responded, as_of
        )
        if verdict == "no_target":
            self.no_target += 1
        else:
            self.sla[str(ticket.priority).upper()][verdict] += 1

    def metrics(self, group: str) -> GroupMetrics:
        fallbacks = sum(self.fallbacks.values())
        by_priority = {
            priority: _sla_counts(counts)
            for priority, counts in sorted(self.sla.items())
        }
        everything: Counter[str] = Counter()
        for counts in self.sla.values():
            everything.update(counts)
        return GroupMetrics(
            group=group,
            decisions=self.decisions,
            tickets=self.tickets,
            reviewed=self.reviewed,
            first_touch_correct=self.correct,
            first_touch_accuracy=_share(self.correct, self.reviewed),
            reassigned=self.reassigned,
            reassignment_rate=_share(self.reassigned, self.reviewed),
            overridden=self.overridden,
            override_rate=_share(self.overridden, self.reviewed),
            fallbacks=fallbacks,
            fallback_rate=_share(fallbacks, self.decisions),
            fallbacks_by_reason=dict(sorted(self.fallbacks.items())),
            fallback_rate_by_reason={
                reason: count / self.decisions
                for reason, count in sorted(self.fallbacks.items())
            },
            escalated=len(self.escalations_s),
            time_to_escalate=_duration_stats(self.escalations_s),
            open_tickets=sum(self.open_by_age.values()),
            open_by_age=_all_bands(self.open_by_age),
            sla_first_response=SlaSummary(
                **_sla_counts(everything).model_dump(),
                no_target=self.no_target,
                by_priority=by_priority,
            ),
        )


def _parse_moment(text: str, reference: datetime) -> datetime:
    text = text.strip()
    relative = _DURATION.match(text.lower())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return reference - timedelta(**{_DURATION_UNITS[unit]: amount})
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _tickets(
    decisions: Iterable[Mapping[str, Any]],
    outcomes: Mapping[str, Outcome],
    as_of: datetime,
) -> list[_Ticket]:
    first: dict[str, dict[str, Any]] = {}
    for decision in decisions:
        known = first.get(decision["ticket_id"])
        if known is None or decision["decided_at"] < known["decided_at"]:
            first[decision["ticket_id"]] = dict(decision)

    tickets = []
    for ticket_id, decision in first.items():
        outcome = outcomes.get(ticket_id)
        opened_at = outcome.opened_at if outcome else None
        started_at = opened_at or decision["decided_at"]
        resolved_at = outcome.resolved_at if outcome else None
        is_open = resolved_at is None or resolved_at > as_of
        tickets.append(
            _Ticket(
                ticket_id=ticket_id,
                first=decision,
                outcome=outcome,
                started_at=started_at,
                is_open=is_open,
                age=max(timedelta(0), as_of - started_at),
            )
        )
    return tickets


def _dimension_value(decision: Mapping[str, Any], by: str) -> str:
    value = decision.get(by)
    return NONE_LABEL if value is None else str(value)


def _age_band(age: timedelta) -> str:
    for name, upper in AGE_BANDS:
        if upper is None or age < upper:
            return name
    raise AssertionError("the last age band is open-ended")


def _all_bands(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: counts.get(name, 0) for name, _ in AGE_BANDS}


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _sla_counts(counts: Mapping[str, int]) -> SlaCounts:
    met, breached = counts.get("met", 0), counts.get("breached", 0)
    return SlaCounts(
        met=met,
        breached=breached,
        pending=counts.get("pending", 0),
        attainment=_share(met, met + breached),
    )


def _duration_stats(values_s: Sequence[float]) -> DurationStats:
    if not values_s:
        return DurationStats()
    ordered = sorted(values_s)
    return DurationStats(
        count=len(ordered),
        mean_s=sum(ordered) / len(ordered),
        p50_s=_quantile(ordered, 0.5),
        p90_s=_quantile(ordered, 0.9),
        max_s=ordered[-1],
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _queue_aging(tickets: Iterable[_Ticket]) -> list[QueueAging]:
    by_queue: dict[str, Counter[str]] = defaultdict(Counter)
    for ticket in tickets:
        if ticket.is_open:
            by_queue[ticket.current_queue][_age_band(ticket.age)] += 1
    return [
        QueueAging(
            queue=queue,
            open_tickets=sum(counts.values()),
            open_by_age=_all_bands(counts),
        )
        for queue, counts in sorted(by_queue.items())
    ]


def _exceptions_by_source(
    decisions: Iterable[Mapping[str, Any]], tickets: Sequence[_Ticket]
) -> list[SourceExceptions]:
    source_of = {ticket.ticket_id: ticket.source_system for ticket in tickets}
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for decision in decisions:
        if decision.get("fallback_reason"):
            tally[source_of[decision["ticket_id"]]]["fallbacks"] += 1
    for ticket in tickets:
        tally[ticket.source_system]["overrides"] += ticket.is_overridden
        tally[ticket.source_system]["reassignments"] += ticket.is_reassigned

    rows = [
        SourceExceptions(source_system=source, **counts, total=sum(counts.values()))
        for source, counts in tally.items()
        if sum(counts.values())
    ]
    return sorted(rows, key=lambda row: (-row.total, row.source_system))


def _enrichment(decisions: Sequence[Mapping[str, Any]]) -> EnrichmentMetrics:
    tickets: list[bool] = []
    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    for row in decisions:
        answered = row.get(ANSWERED_FIELD) or []
        missing = row.get(MISSING_FIELD) or []
        if not answered and not missing:
            continue  # not enriched: decided before enrichment, or with it off
        tickets.append(not missing)
        for source in answered:
            per_source[source]["succeeded"] += 1
        for source in [*answered, *missing]:
            per_source[source]["attempted"] += 1
    if not tickets:
        return EnrichmentMetrics(
            available=False,
            note="no decision in the range was enriched",
        )
    succeeded = sum(tickets)
    return EnrichmentMetrics(
        available=True,
        attempted=len(tickets),
        succeeded=succeeded,
        success_rate=succeeded / len(tickets),
        by_source={
            source: SourceRate(
                attempted=counts["attempted"],
                succeeded=counts["succeeded"],
                success_rate=counts["succeeded"] / counts["attempted"],
            )
            for source, counts in sorted(per_source.items())
        },
    )


def _series(
    decisions: Iterable[Mapping[str, Any]],
    tickets: Sequence[_Ticket],
    starts: Sequence[datetime],
    bucket: BucketSize,
) -> ProcessSeries:
    size = BUCKET_SECONDS[bucket]
    origin = starts[0].timestamp() if starts else 0.0

    def index(moment: datetime) -> int:
        return min(len(starts) - 1, max(0, int((moment.timestamp() - origin) // size)))

    fallbacks: dict[str, list[int]] = {}
    for decision in decisions:
        reason = decision.get("fallback_reason")
        if reason:
            counts = fallbacks.setdefault(reason, [0] * len(starts))
            counts[index(decision["decided_at"])] += 1

    reviewed, reassigned, overridden = ([0] * len(starts) for _ in range(3))
    escalations: list[list[float]] = [[] for _ in starts]
    for ticket in tickets:
        slot = index(ticket.decided_at)
        reviewed[slot] += ticket.is_reviewed
        reassigned[slot] += ticket.is_reassigned
        overridden[slot] += ticket.is_overridden
        if ticket.escalation_s is not None:
            escalations[slot].append(ticket.escalation_s)
    stats = [_duration_stats(values) for values in escalations]

    return ProcessSeries(
        fallback_reasons=TimeSeries(
            bucket=bucket,
            starts=list(starts),
            values={
                reason: list(map(float, counts))
                for reason, counts in sorted(fallbacks.items())
            },
        ),
        reassignments=TimeSeries(
            bucket=bucket,
            starts=list(starts),
            values={
                "reviewed": list(map(float, reviewed)),
                "reassigned": list(map(float, reassigned)),
                "overridden": list(map(float, overridden)),
            },
        ),
        escalation_latency=TimeSeries(
            bucket=bucket,
            starts=list(starts),
            values={
                "escalated": [float(s.count) for s in stats],
                "mean_s": [s.mean_s for s in stats],
                "p90_s": [s.p90_s for s in stats],
            },
        ),
    )


def _service_state(
    events: Iterable[Mapping[str, Any]], since: datetime, until: datetime
) -> ServiceStateHistory:
    history = ServiceStateHistory()
    for event in events:
        payload = dict(event.get("payload") or {})
        change = StateChange(
            seq=int(event["seq"]),
            at=event["at"],
            state=_state_name(payload),
            payload=payload,
        )
        if change.at < since:
            history.initial = change
        elif change.at < until:
            history.changes.append(change)
    return history


def _state_name(payload: Mapping[str, Any]) -> str | None:
    state = payload.get("state")
    return None if state is None else str(state)
