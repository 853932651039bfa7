"""Reading labelled ticket data and splitting it for training."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


@dataclass
class LabelledData:
    """Texts, labels and a split per row, plus what was noticed on the way."""

    frame: pd.DataFrame  # columns: text, label, split (+ the input's id column)
    source: str
    out_of_scope_label: str | None = None
    rare_labels: dict[str, int] = field(default_factory=dict)

    def part(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == split]

    @property
    def data_hash(self) -> str:
        digest = hashlib.sha256()
        for row in self.frame[["text", "label", "split"]].itertuples(index=False):
            digest.update("\x1f".join(row).encode("utf-8", "replace"))
            digest.update(b"\x1e")
        return digest.hexdigest()[:16]

    def in_scope(self, split: str) -> pd.DataFrame:
        part = self.part(split)
        if self.out_of_scope_label is None:
            return part
        return part[part["label"] != self.out_of_scope_label]


def read_table(path: Path | str) -> pd.DataFrame:
    """A parquet, CSV or JSONL file (or a folder of parquet files)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    try:
        if path.is_dir() or suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pd.read_json(path, lines=suffix != ".json")
    except (ValueError, OSError) as err:
        raise DataError(
            f"{path}: cannot be read as {suffix or 'parquet'}: {err}"
        ) from err
    raise DataError(f"{path}: unknown format {suffix!r}; use .parquet, .csv or .jsonl")


def load_labelled(
    path: Path | str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split_column: str = "split",
    out_of_scope_label: str | None = None,
    validation_share: float = 0.15,
    test_share: float = 0.15,
    seed: int = 13,
    min_train_examples: int = 8,
) -> LabelledData:
    """Load a labelled data set and give every row a split.

    A `split_column` with train / validation / test values is used as given;
    when validation is absent it is carved from train. Without the column the
    data is split stratified by label. A text column may be replaced by
    `subject` and `body` columns, which are joined.

    Raises:
        DataError: a missing column, empty data, or fewer than two labels.
    """
    table = read_table(path)
    frame = _texts_and_labels(table, text_column, label_column, str(path), split_column)
    if "split" in frame.columns:
        if not (frame["split"] == "validation").any():
            frame = _carve(frame, "train", "validation", validation_share, seed)
    else:
        frame["split"] = "train"
        frame = _carve(frame, "train", "test", test_share, seed)
        frame = _carve(
            frame, "train", "validation", validation_share / (1 - test_share), seed
        )

    data = LabelledData(
        frame=frame, source=str(path), out_of_scope_label=out_of_scope_label
    )
    _check_usable(data, min_train_examples)
    return data


def _texts_and_labels(
    table: pd.DataFrame,
    text_column: str,
    label_column: str,
    source: str,
    split_column: str | None = None,
) -> pd.DataFrame:
    if label_column not in table.columns:
        raise DataError(
            f"{source}: no label column {label_column!r}; columns are "
            f"{', '.join(map(str, table.columns))} (set --label-column)"
        )
    if text_column in table.columns:
        texts = table[text_column].fillna("").astype(str)
    elif {"subject", "body"} <= set(table.columns):
        from features.text import build_texts

        subjects = table["subject"].fillna("").astype(str).tolist()
        bodies = table["body"].fillna("").astype(str).tolist()
        texts = pd.Series(build_texts(subjects, bodies), index=table.index)
    else:
        raise DataError(
            f"{source}: no text column {text_column!r} and no subject/body columns "
            "(set --text-column)"
        )

    table = table.reset_index(drop=True)
    texts = texts.reset_index(drop=True)
    frame = pd.DataFrame({"text": texts, "label": table[label_column].astype(str)})
    if "id" in table.columns:
        frame["id"] = table["id"].astype(str)
    else:
        frame["id"] = [f"row-{i}" for i in range(len(frame))]
    if split_column and split_column in table.columns:
        frame["split"] = _normalise_splits(table[split_column], source).to_numpy()
    empty = frame["text"].str.strip() == ""
    if empty.any():
        log.warning("rows without text dropped", extra={"rows": int(empty.sum())})
        frame = frame[~empty]
    if frame.empty:
        raise DataError(f"{source}: no rows with text")
    return frame.reset_index(drop=True)


def _normalise_splits(values: pd.Series, source: str) -> pd.Series:
    mapped = values.astype(str).str.strip().str.lower().map(_SPLIT_ALIASES)
    unknown = sorted(set(values[mapped.isna()].astype(str)))
    if unknown:
        raise DataError(
            f"{source}: split column has values {unknown[:5]}; use train, "
            "validation or test"
        )
    return mapped.reset_index(drop=True)


def _carve(
    frame: pd.DataFrame, source_split: str, target: str, share: float, seed: int
) -> pd.DataFrame:
    """Move a stratified `share` of `source_split` rows to `target`.

    A label with fewer than three rows stays whole in the source split: one
    example cannot be both learnt from and tested on.
    """
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    pool = frame[frame["split"] == source_split]
    moved: list[int] = []
    for _, rows in pool.groupby("label", sort=True):
        if len(rows) < 3:
            continue
        count = max(1, round(len(rows) * share))
        moved.extend(rng.choice(rows.index.to_numpy(), size=count, replace=False))
    frame.loc[moved, "split"] = target
    return frame


def _check_usable(data: LabelledData, min_train_examples: int) -> None:
    train = data.in_scope("train")
    counts = train["label"].value_counts()
    if len(counts) < 2:
        raise DataError(
            f"{data.source}: training needs at least two labels in the train split, "
            f"found {len(counts)}"
        )
    if data.in_scope("test").empty:
        raise DataError(f"{data.source}: the test split has no in-scope rows")
    data.rare_labels = {
        str(k): int(v) for k, v in counts.items() if v < min_train_examples
    }
    if data.rare_labels:
        log.warning(
            "labels with few training rows",
            extra={"labels": sorted(data.rare_labels), "count": len(data.rare_labels)},
        )


def load_for_evaluation(
    path: Path | str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split_column: str = "split",
    split: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Rows to score a model on: one split, or every row.

    With no `split` given, a file with a split column is scored on its test
    rows and a file without one on all of them. Returns the rows and the
    split used ("all" for every row).
    """
    table = read_table(path)
    frame = _texts_and_labels(table, text_column, label_column, str(path), split_column)
    if "split" not in frame.columns:
        if split is not None:
            raise DataError(
                f"{path}: --split {split} given but no column {split_column!r}"
            )
        return frame, "all"
    wanted = _SPLIT_ALIASES.get((split or "test").lower(), split or "test")
    part = frame[frame["split"] == wanted]
    if part.empty:
        raise DataError(f"{path}: no rows in split {wanted!r}")
    return part.reset_index(drop=True), wanted
