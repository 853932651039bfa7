"""What goes into the decision policy and the `Decision` that comes out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training.thresholds import RoutingThresholds

Escalation = Literal["none", "team_lead", "incident_commander", "executive"]
# Least to most severe; `serving.rules.more_severe` compares along this order.
ESCALATION_LEVELS: tuple[Escalation, ...] = (
    "none",
    "team_lead",
    "incident_commander",
    "executive",
)
# context: a context rule overrode or redirected what the model or the
# fallback rules proposed (see `Decision.context_effect`).
DecisionMode = Literal["auto", "suggest", "rules", "override", "context"]
ContextEffect = Literal["confirm", "override", "redirect"]
FallbackReason = Literal[
    "low_confidence",
    "out_of_scope",
    "rules_only_queue",
    "model_unavailable",
    "model_timeout",
    "no_model",
    "drift",
]
ModelStatus = Literal["ready", "no_model", "unavailable", "timeout", "drift"]

TOP_QUEUE_COUNT = 3
_CONSISTENCY_TOLERANCE = 1e-6


class QueueScore(BaseModel):
    """One queue the model ranked, with its calibrated probability."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str
    probability: float = Field(ge=0.0, le=1.0)


class ModelProposal(BaseModel):
    """What the classifier proposed for one ticket, and the thresholds it must meet.

    `top_queues` accepts (queue, probability) pairs or `QueueScore`s in any
    order; it is kept sorted, most probable first, and cut to three.
    `confidence` and `margin` are derived from it when not given, and must
    agree with it when they are.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    top_queues: tuple[QueueScore, ...] = Field(min_length=1)
    confidence: float = Field(ge=0.0, le=1.0, description="Top-1 probability.")
    margin: float = Field(ge=0.0, le=1.0, description="Top-1 minus top-2.")
    similarity: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="Cosine similarity to the nearest training ticket.",
    )
    thresholds: RoutingThresholds
    thresholds_version: str | None = Field(
        default=None,
        description=(
            "Hash of the model version's whole threshold set; `thresholds` may "
            "hold only the queues this proposal needs."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_scores(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("top_queues"):
            return data
        ranked = sorted(
            (_as_score(item) for item in data["top_queues"]),
            key=lambda score: score.probability,
            reverse=True,
        )
        second = ranked[1].probability if len(ranked) > 1 else 0.0
        derived = {
            "confidence": ranked[0].probability,
            "margin": ranked[0].probability - second,
        }
        for name, value in derived.items():
            given = data.get(name)
            if given is not None and abs(given - value) > _CONSISTENCY_TOLERANCE:
                raise ValueError(
                    f"{name} {given} disagrees with top_queues, which give {value}"
                )
        return {**data, **derived, "top_queues": tuple(ranked[:TOP_QUEUE_COUNT])}

    @property
    def top_queue(self) -> str:
        return self.top_queues[0].queue


class ModelState(BaseModel):
    """Whether the classifier may be asked at all, and why not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ModelStatus
    detail: str = Field(default="", description="For the reviewer: what happened.")

    @property
    def is_ready(self) -> bool:
        return self.status == "ready"


class Decision(BaseModel):
    """Where one ticket went, with everything a reviewer needs to see why."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    decision_id: str = Field(min_length=1)
    ticket_id: str = Field(min_length=1)
    queue: str
    priority: str
    escalation: Escalation = "none"
    escalation_reason: str | None = None
    mode: DecisionMode
    confidence: float | None = Field(
        default=None, description="The model's top-1 probability, when it ran."
    )
    top_queues: list[QueueScore] = Field(
        default_factory=list, description="Empty when the model did not run."
    )
    model_name: str | None = None
    model_version: str | None = None
    rule_id: str | None = Field(
        default=None, description="Override or fallback rule that chose the queue."
    )
    rule_set_version: str
    fallback_reason: FallbackReason | None = None
    reasons: list[str] = Field(default_factory=list)
    context_effect: ContextEffect | None = Field(
        default=None,
        description=(
            "What a context rule did to the proposed queue: confirm it, override "
            "it whatever it was, or redirect it from the queue it names."
        ),
    )
    context_rule_id: str | None = None
    proposed_queue: str | None = Field(
        default=None, description="Queue before a context rule changed it."
    )
    context_sources_answered: list[str] = Field(
        default_factory=list,
        description="Enrichment sources that answered, with a record or without.",
    )
    context_sources_missing: list[str] = Field(
        default_factory=list,
        description="Enrichment sources that failed or timed out for this ticket.",
    )
    context_sources_used: list[str] = Field(
        default_factory=list,
        description=(
            "Sources whose facts the deciding rules read; a change to one of "
            "them re-decides the ticket while it is open."
        ),
    )
    notify: list[str] = Field(
        default_factory=list, description="Notification targets the rules asked for."
    )
    versions: dict[str, str] = Field(
        default_factory=dict,
        description="Version of each governed input: rules, automation, thresholds.",
    )
    latency_ms: float = Field(default=0.0, ge=0.0, description="Set by the caller.")
    decided_at: datetime

    @field_validator("decided_at")
    @classmethod
    def _require_timezone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("decided_at needs a timezone (use UTC)")
        return value


def _as_score(item: Any) -> QueueScore:
    if isinstance(item, QueueScore):
        return item
    if isinstance(item, dict):
        return QueueScore.model_validate(item)
    try:
        queue, probability = item
    except (TypeError, ValueError) as err:
        raise ValueError(f"expected a (queue, probability) pair, got {item!r}") from err
    return QueueScore(queue=queue, probability=probability)
