"""Service-level targets (configs/sla.yaml): how long a ticket may wait.

`SlaPolicy` holds the targets per priority (first response and resolution,
tighter for some account tiers), the calendars their clocks run on, the
statuses that stop a clock, the escalation path per target and the queues
that have an on-call rota after hours. `monitoring.escalation` measures open
cases against it; `first_response_verdict` is the simpler wall-clock verdict
that process metrics use.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from features.config import bundled_config_path, file_hash, load_yaml_model
from features.errors import ConfigError
from features.schema import AccountTier
from features.taxonomy import Taxonomy
from monitoring.calendar import (
    TWENTY_FOUR_SEVEN,
    TWENTY_FOUR_SEVEN_NAME,
    BusinessCalendar,
    Calendar,
    after_hours,
    load_zone,
    parse_interval,
    union,
)
from monitoring.cases import OPEN_STATUSES, SlaTarget

SlaVerdict = Literal["met", "breached", "pending", "no_target"]
# Least to most severe: `serving.decision.ESCALATION_LEVELS` without "none",
# repeated because monitoring may not import serving.
EscalationLevelName = Literal["team_lead", "incident_commander", "executive"]
ESCALATION_ORDER: tuple[str, ...] = get_args(EscalationLevelName)
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# The taxonomy's priority id pattern (features.taxonomy.Priority).
_PRIORITY_ID = re.compile(r"^P[1-9]$")
_QUEUE_ID = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
# A status that stops the clock must leave the case open: resolving stops
# every clock anyway.
_PAUSABLE_STATUSES = OPEN_STATUSES - {"open"}
_TIERS = frozenset(tier.value for tier in AccountTier)


def _priority_id(value: str) -> str:
    normalized = value.strip().upper()
    if not _PRIORITY_ID.match(normalized):
        raise ValueError(f"{value!r} is not a priority id (P1 ... P9)")
    return normalized


def _queue_id(value: str) -> str:
    if not _QUEUE_ID.match(value):
        raise ValueError(f"{value!r} is not a queue id (lower-case, digits, _)")
    return value


def _opening_hours(value: str) -> str:
    parse_interval(value)
    return value


def _pause_status(value: str) -> str:
    if value not in _PAUSABLE_STATUSES:
        raise ValueError(
            f"{value!r} cannot pause a clock; use one of "
            f"{', '.join(sorted(_PAUSABLE_STATUSES))}"
        )
    return value


PriorityId = Annotated[str, AfterValidator(_priority_id)]
QueueId = Annotated[str, AfterValidator(_queue_id)]
OpeningHours = Annotated[str, AfterValidator(_opening_hours)]
PauseStatus = Annotated[str, AfterValidator(_pause_status)]


class CalendarConfig(BaseModel):
    """One business-hours calendar as `sla.yaml` declares it."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(description="IANA timezone of the hours and holidays.")
    hours: dict[Weekday, list[OpeningHours]] = Field(
        description="Opening intervals per weekday, 'HH:MM-HH:MM'; absent: closed."
    )
    holidays: list[date] = Field(
        default_factory=list, description="Dates in the zone, closed all day."
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        load_zone(value)
        return value

    @model_validator(mode="after")
    def _check_week(self) -> CalendarConfig:
        # Overlaps and a week never open (or never closed) are the
        # calendar's own checks; building it once here runs them at load.
        self.build("check")
        return self

    def build(self, name: str) -> BusinessCalendar:
        """The calendar this declares, under `name`."""
        hours = {str(weekday): texts for weekday, texts in self.hours.items()}
        return BusinessCalendar(name, self.timezone, hours, self.holidays)


class TierTargets(BaseModel):
    """Targets of one account tier that differ from the priority's own."""

    model_config = ConfigDict(extra="forbid")

    first_response_minutes: dict[PriorityId, PositiveInt] = Field(
        default_factory=dict, description="Working minutes to first response."
    )
    resolution_minutes: dict[PriorityId, PositiveInt] = Field(
        default_factory=dict, description="Working minutes to resolution."
    )


class QueueClock(BaseModel):
    """Which calendar one queue's clocks run on."""

    model_config = ConfigDict(extra="forbid")

    calendar: str = Field(description="A name from `calendars`, or 24x7.")


class EscalationLevel(BaseModel):
    """One step of an escalation path."""

    model_config = ConfigDict(extra="forbid")

    level: EscalationLevelName = Field(description="Who is brought in.")
    at_fraction: float = Field(
        gt=0, description="Share of the target elapsed that triggers it (1.0: due)."
    )
    notify: list[str] = Field(
        default_factory=list,
        description="Notification targets (configs/notifications.yaml) to tell.",
    )


class EscalationPaths(BaseModel):
    """The escalation path of each target, in the order its levels trigger."""

    model_config = ConfigDict(extra="forbid")

    first_response: list[EscalationLevel] = Field(default_factory=list)
    resolution: list[EscalationLevel] = Field(default_factory=list)

    @field_validator("first_response", "resolution")
    @classmethod
    def _check_order(cls, levels: list[EscalationLevel]) -> list[EscalationLevel]:
        for index, (before, after) in enumerate(pairwise(levels), start=1):
            is_later = after.at_fraction > before.at_fraction
            is_more_severe = ESCALATION_ORDER.index(
                after.level
            ) > ESCALATION_ORDER.index(before.level)
            if not (is_later and is_more_severe):
                raise ValueError(
                    f"level {index} ({after.level} at {after.at_fraction}) is out "
                    f"of order after {before.level} at {before.at_fraction}; list "
                    "levels least severe first, each at a larger at_fraction"
                )
        return levels


class OnCallRule(BaseModel):
    """After-hours cover of one queue by an on-call rota."""

    model_config = ConfigDict(extra="forbid")

    rota: str = Field(min_length=1, description="On-call rota escalations go to.")
    priorities: list[PriorityId] = Field(
        min_length=1, description="Priorities the rota covers."
    )
    calendar: str | None = Field(
        default=None,
        description="Outside this calendar's hours is after hours; None: the "
        "queue's own calendar.",
    )


class SlaPolicy(BaseModel):
    """Validated content of `sla.yaml`.

    Targets are working minutes on the ticket's clock: the queue's calendar
    (or the default one), 24x7 for the `always_24x7` priorities, and, for a
    ticket its queue's on-call rota covers, also every after-hours minute.

    Known limitation: `first_response_verdict`, which process metrics use,
    still measures wall-clock time against the per-priority target and knows
    no queue, tier or pause, so in those metrics a business-hours ticket
    opened on a Friday evening counts as breached over the weekend;
    `monitoring.escalation.sla_status` gives the calendar-aware answer.
    """

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, description="Recorded beside the metrics.")
    _content_version: str | None = PrivateAttr(default=None)
    calendar: str = Field(
        default=TWENTY_FOUR_SEVEN_NAME,
        description="Calendar of queues `queues` does not list.",
    )
    calendars: dict[str, CalendarConfig] = Field(
        default_factory=dict, description="Business-hours calendars by name."
    )
    first_response_minutes: dict[PriorityId, PositiveInt] = Field(
        default_factory=dict,
        description="Longest wait from open to first response, per priority id; "
        "its keys are the priorities this policy knows.",
    )
    resolution_minutes: dict[PriorityId, PositiveInt] = Field(
        default_factory=dict,
        description="Longest time from open to resolution, per priority id.",
    )
    tiers: dict[AccountTier, TierTargets] = Field(
        default_factory=dict, description="Per account tier, targets that differ."
    )
    always_24x7: list[PriorityId] = Field(
        default_factory=list,
        description="Priorities whose clocks run 24x7 whatever the queue's calendar.",
    )
    queues: dict[QueueId, QueueClock] = Field(
        default_factory=dict, description="Per queue, the calendar its clocks use."
    )
    pause_statuses: list[PauseStatus] = Field(
        default_factory=lambda: ["waiting_on_customer"],
        description="Case statuses in which every clock of the case stops.",
    )
    at_risk_fraction: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Share of a target elapsed from which a clock is at risk.",
    )
    escalation: EscalationPaths = Field(
        default_factory=EscalationPaths, description="Levels per target."
    )
    on_call: dict[QueueId, OnCallRule] = Field(
        default_factory=dict, description="Queues with an after-hours rota."
    )

    _calendars: dict[str, Calendar] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self) -> SlaPolicy:
        problems = [*self._calendar_problems(), *self._priority_problems()]
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "sla_reference", "{reason}", {"reason": reason}
                        ),
                        loc=loc,
                        input=value,
                    )
                    for loc, value, reason in problems
                ],
            )
        self._calendars = {
            TWENTY_FOUR_SEVEN_NAME: TWENTY_FOUR_SEVEN,
            **{name: config.build(name) for name, config in self.calendars.items()},
        }
        return self

    @property
    def priorities(self) -> list[str]:
        """The priorities this policy has targets for."""
        return list(self.first_response_minutes)

    @property
    def content_version(self) -> str:
        """A hash of the file it came from (what `config record sla` records),
        else of its content."""
        if self._content_version is None:
            content = self.model_dump_json().encode("utf-8")
            self._content_version = hashlib.sha256(content).hexdigest()[:12]
        return self._content_version

    def target(self, priority: str | None) -> timedelta | None:
        """The first-response target for a priority, None if it has none."""
        if priority is None:
            return None
        minutes = self.first_response_minutes.get(priority.upper())
        return timedelta(minutes=minutes) if minutes is not None else None

    def first_response_verdict(
        self,
        priority: str | None,
        opened_at: datetime,
        first_response_at: datetime | None,
        as_of: datetime,
    ) -> SlaVerdict:
        """Met or breached once answered; unanswered, breached once past due.

        Wall-clock time against the priority's own target (no calendar, tier
        or pause). A response recorded after `as_of` is treated as not yet
        given.
        """
        target = self.target(priority)
        if target is None:
            return "no_target"
        due = opened_at + target
        if first_response_at is not None and first_response_at <= as_of:
            return "met" if first_response_at <= due else "breached"
        return "breached" if as_of > due else "pending"

    def target_minutes(
        self, target: SlaTarget, priority: str | None, tier: str | None = None
    ) -> int | None:
        """Working minutes allowed for `target`: the tier's, else the priority's.

        None when the priority has no such target.
        """
        if priority is None:
            return None
        priority = priority.upper()
        field = f"{target}_minutes"
        overrides = self.tiers.get(AccountTier(tier)) if tier in _TIERS else None
        if overrides is not None:
            minutes = getattr(overrides, field).get(priority)
            if minutes is not None:
                return int(minutes)
        minutes = getattr(self, field).get(priority)
        return int(minutes) if minutes is not None else None

    def calendar_named(self, name: str) -> Calendar:
        """The calendar of this name ("24x7" is always there).

        Raises:
            KeyError: no calendar of that name.
        """
        return self._calendars[name]

    def calendar_for(self, queue: str, priority: str | None) -> Calendar:
        """The calendar a ticket's clock runs on, on-call cover aside."""
        if priority is not None and priority.upper() in self.always_24x7:
            return TWENTY_FOUR_SEVEN
        clock = self.queues.get(queue)
        return self._calendars[clock.calendar if clock else self.calendar]

    def on_call_for(self, queue: str, priority: str | None) -> OnCallRule | None:
        """The on-call rule covering this queue and priority, if any."""
        rule = self.on_call.get(queue)
        if rule is None or priority is None or priority.upper() not in rule.priorities:
            return None
        return rule

    def on_call_hours(self, queue: str) -> Calendar:
        """The calendar outside whose hours the queue's on-call rota takes over."""
        rule = self.on_call[queue]
        clock = self.queues.get(queue)
        name = rule.calendar or (clock.calendar if clock else self.calendar)
        return self._calendars[name]

    def clock_for(self, queue: str, priority: str | None) -> Calendar:
        """The calendar a ticket's SLA clock runs on.

        The queue's (or the priority's 24x7) calendar; for a ticket the
        queue's on-call rota covers, every after-hours minute runs as well.
        """
        calendar = self.calendar_for(queue, priority)
        if self.on_call_for(queue, priority) is None:
            return calendar
        return union(
            f"{calendar.name} + on-call {queue}",
            calendar,
            after_hours(self.on_call_hours(queue)),
        )

    def on_call_rota(
        self, queue: str, priority: str | None, at: datetime
    ) -> str | None:
        """The rota escalations of this ticket go to at `at`; None: the queue's."""
        rule = self.on_call_for(queue, priority)
        if rule is None or self.on_call_hours(queue).is_open(at):
            return None
        return rule.rota

    def escalation_path(self, target: SlaTarget) -> list[EscalationLevel]:
        """The levels of `target`, in the order they trigger."""
        return list(getattr(self.escalation, target))

    def _calendar_problems(self) -> list[tuple[tuple[str | int, ...], Any, str]]:
        known = {TWENTY_FOUR_SEVEN_NAME, *self.calendars}
        listed = ", ".join(sorted(known))
        problems: list[tuple[tuple[str | int, ...], Any, str]] = []
        if TWENTY_FOUR_SEVEN_NAME in self.calendars:
            problems.append(
                (
                    ("calendars", TWENTY_FOUR_SEVEN_NAME),
                    TWENTY_FOUR_SEVEN_NAME,
                    "24x7 is built in; give your calendar another name",
                )
            )
        references: list[tuple[tuple[str | int, ...], str | None]] = [
            (("calendar",), self.calendar),
            *(
                (("queues", queue, "calendar"), clock.calendar)
                for queue, clock in self.queues.items()
            ),
            *(
                (("on_call", queue, "calendar"), rule.calendar)
                for queue, rule in self.on_call.items()
            ),
        ]
        for loc, name in references:
            if name is not None and name not in known:
                problems.append(
                    (loc, name, f"unknown calendar {name!r}; known: {listed}")
                )

        for queue, rule in self.on_call.items():
            clock = self.queues.get(queue)
            name = rule.calendar or (clock.calendar if clock else self.calendar)
            if name == TWENTY_FOUR_SEVEN_NAME:
                problems.append(
                    (
                        ("on_call", queue, "calendar"),
                        name,
                        "a 24x7 calendar has no after hours; name the business "
                        "calendar outside whose hours the rota takes over",
                    )
                )
        return problems

    def _priority_problems(self) -> list[tuple[tuple[str | int, ...], Any, str]]:
        known = set(self.first_response_minutes)
        listed = ", ".join(sorted(known)) or "none"
        reason = "unknown priority {!r}; first_response_minutes defines: " + listed
        references: list[tuple[tuple[str | int, ...], str]] = [
            *(
                (("resolution_minutes", priority), priority)
                for priority in self.resolution_minutes
            ),
            *(
                (("always_24x7", index), priority)
                for index, priority in enumerate(self.always_24x7)
            ),
        ]
        for tier, targets in self.tiers.items():
            for field in ("first_response_minutes", "resolution_minutes"):
                references.extend(
                    (("tiers", str(tier), field, priority), priority)
                    for priority in getattr(targets, field)
                )
        for queue, rule in self.on_call.items():
            references.extend(
                (("on_call", queue, "priorities", index), priority)
                for index, priority in enumerate(rule.priorities)
            )
        return [
            (loc, priority, reason.format(priority))
            for loc, priority in references
            if priority not in known
        ]


def load_sla_policy(
    path: Path | str | None = None, *, taxonomy: Taxonomy | None = None
) -> SlaPolicy:
    """Load and validate an SLA file (the bundled one by default).

    Args:
        path: The YAML file.
        taxonomy: If given, every priority and queue the file names must be
            one of the taxonomy's.

    Raises:
        ConfigError: naming the file, the path inside it and the problem.
    """
    path = Path(path or bundled_config_path("sla.yaml"))
    policy = load_yaml_model(path, SlaPolicy)
    policy._content_version = file_hash(path)
    if taxonomy is not None:
        problems = _taxonomy_problems(policy, taxonomy)
        if problems:
            raise ConfigError(f"{path}: {'; '.join(problems)}")
    return policy


def _taxonomy_problems(policy: SlaPolicy, taxonomy: Taxonomy) -> list[str]:
    priorities = set(taxonomy.priority_ids)
    queues = set(taxonomy.queue_ids)
    problems = [
        f"first_response_minutes.{priority}: priority {priority} is not in "
        f"taxonomy {taxonomy.version}"
        for priority in policy.first_response_minutes
        if priority not in priorities
    ]
    for section in ("queues", "on_call"):
        problems.extend(
            f"{section}.{queue}: queue {queue!r} is not in taxonomy {taxonomy.version}"
            for queue in getattr(policy, section)
            if queue not in queues
        )
    return problems
