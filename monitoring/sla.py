"""Service-level targets (configs/sla.yaml) and whether a ticket met them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.config import bundled_config_path, load_yaml_model

SlaVerdict = Literal["met", "breached", "pending", "no_target"]


class SlaPolicy(BaseModel):
    """Validated content of `sla.yaml`: first-response targets per priority.

    Known limitation: waiting time is wall-clock time ("24x7"); a ticket
    opened on a Friday evening against a business-hours promise is counted as
    breached over the weekend until business-hours calendars exist.
    """

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, description="Recorded beside the metrics.")
    calendar: Literal["24x7"] = Field(
        default="24x7", description="How waiting time is counted; wall clock only."
    )
    first_response_minutes: dict[str, int] = Field(
        default_factory=dict,
        description="Longest wait from open to first response, per priority id.",
    )

    @field_validator("first_response_minutes")
    @classmethod
    def _check_targets(cls, value: dict[str, int]) -> dict[str, int]:
        normalized = {}
        for priority, minutes in value.items():
            if minutes <= 0:
                raise ValueError(f"{priority}: target must be positive, got {minutes}")
            normalized[priority.upper()] = minutes
        return normalized

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

        A response recorded after `as_of` is treated as not yet given.
        """
        target = self.target(priority)
        if target is None:
            return "no_target"
        due = opened_at + target
        if first_response_at is not None and first_response_at <= as_of:
            return "met" if first_response_at <= due else "breached"
        return "breached" if as_of > due else "pending"


def load_sla_policy(path: Path | str | None = None) -> SlaPolicy:
    """Load and validate an SLA file (the bundled one by default)."""
    return load_yaml_model(path or bundled_config_path("sla.yaml"), SlaPolicy)
