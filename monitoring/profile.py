"""The reference profile as Evidently sees it, and live windows in its shape.

The profile itself is a training artifact (`training.profile`, logged with
every version, read back by `training.registry.load_reference_profile`); this
module turns it and a window of live observations into Evidently datasets
with one data definition, so both sides are compared column for column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from training.profile import (
    CATEGORICAL_COLUMNS,
    LOW_CONFIDENCE_COLUMN,
    NUMERICAL_COLUMNS,
    PROFILE_COLUMNS,
    ReferenceProfile,
)

EMBEDDING_NAME = "projection"


def data_definition(profile: ReferenceProfile, *, with_embeddings: bool) -> Any:
    """Evidently's `DataDefinition` of the profile columns (and embedding)."""
    from evidently import DataDefinition

    embeddings = (
        {EMBEDDING_NAME: profile.embedding_columns} if with_embeddings else None
    )
    return DataDefinition(
        numerical_columns=list(NUMERICAL_COLUMNS),
        categorical_columns=list(CATEGORICAL_COLUMNS),
        embeddings=embeddings,
    )


def as_dataset(frame: pd.DataFrame, definition: Any) -> Any:
    """A reference or window frame as an Evidently `Dataset`."""
    from evidently import Dataset

    return Dataset.from_pandas(frame, data_definition=definition)


def reference_frame(
    profile: ReferenceProfile, *, with_embeddings: bool
) -> pd.DataFrame:
    columns = list(PROFILE_COLUMNS)
    if with_embeddings:
        columns += profile.embedding_columns
    return profile.frame[columns]


def window_frame(
    rows: Sequence[dict[str, Any]], profile: ReferenceProfile, *, with_embeddings: bool
) -> pd.DataFrame:
    """Observations (profile columns, `projection` list) as a profile-shaped frame."""
    frame = pd.DataFrame(
        {column: [row[column] for row in rows] for column in PROFILE_COLUMNS}
    )
    frame["text_length"] = frame["text_length"].astype(int)
    frame["language"] = frame["language"].map(profile.bucket_language)
    if with_embeddings:
        projected = pd.DataFrame(
            [row["projection"] for row in rows], columns=profile.embedding_columns
        )
        frame = pd.concat([frame, projected], axis=1)
    return frame


def low_confidence_rate(rows: Sequence[Mapping[str, Any]]) -> float:
    """Share of observations the model would not have been allowed to route."""
    if not rows:
        return 0.0
    return sum(bool(row[LOW_CONFIDENCE_COLUMN]) for row in rows) / len(rows)
