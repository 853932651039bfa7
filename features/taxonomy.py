"""The taxonomy: which queues exist, who owns them, which priorities apply."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from features.config import bundled_config_path, load_yaml_model

_QUEUE_ID = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


class Queue(BaseModel):
    """One team-owned queue a ticket can be routed to."""

    id: str = Field(description="Stable identifier used in labels and decisions.")
    name: str = Field(min_length=1)
    owner: str = Field(min_length=1, description="Team that owns the queue.")
    description: str = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _QUEUE_ID.match(value):
            raise ValueError(
                f"queue id {value!r} must be lower-case letters, digits and "
                "underscores, 2-64 characters, starting with a letter"
            )
        return value


class Priority(BaseModel):
    id: str = Field(pattern=r"^P[1-9]$")
    description: str
    first_response_minutes: int = Field(gt=0)


class Taxonomy(BaseModel):
    """Validated content of `taxonomy.yaml`."""

    version: str = Field(min_length=1)
    queues: list[Queue] = Field(min_length=2)
    priorities: list[Priority] = Field(min_length=1)
    default_queue: str

    @model_validator(mode="after")
    def _check_consistency(self) -> Taxonomy:
        ids = [queue.id for queue in self.queues]
        duplicates = sorted({queue for queue in ids if ids.count(queue) > 1})
        if duplicates:
            raise ValueError(f"duplicate queue ids: {', '.join(duplicates)}")
        if self.default_queue not in ids:
            raise ValueError(
                f"default_queue {self.default_queue!r} is not one of the queues"
            )
        return self

    @property
    def queue_ids(self) -> list[str]:
        return [queue.id for queue in self.queues]

    @property
    def priority_ids(self) -> list[str]:
        return [priority.id for priority in self.priorities]

    def queue(self, queue_id: str) -> Queue:
        for queue in self.queues:
            if queue.id == queue_id:
                return queue
        raise KeyError(queue_id)


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Load and validate a taxonomy file (the bundled one by default)."""
    return load_yaml_model(path or bundled_config_path("taxonomy.yaml"), Taxonomy)
