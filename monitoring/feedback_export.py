"""A labelled data set from the queues people confirmed, for retraining.

A ticket's label is its final queue from feedback (an agent's override or a
reported final queue); tickets nobody reported on are left out, so the model
never learns from its own unreviewed decisions. The decision store keeps only
a hash of each ticket's text, so the text comes from a file of the original
tickets, matched by ticket id; tickets with a label but no row there are
counted and named in the report.

The file written has an `id` and a `label` column beside the ticket's text
(`text`, or `subject` and `body`, as the tickets file had them), which
`switchboard train` reads as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import DataError
from monitoring.feedback import fold_feedback
from monitoring.store import DecisionStore
from training.datasets import read_table

log = logging.getLogger(__name__)

# Unmatched ticket ids named in the report; the count is always complete.
UNMATCHED_SAMPLE = 20
_WRITERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


@dataclass
class ExportReport:
    """What `export_feedback` wrote and what it could not use."""

    out: str
    confirmed_tickets: int = 0
    exported: int = 0
    unmatched: int = 0
    unmatched_sample: list[str] = field(default_factory=list)
    duplicate_ticket_rows: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    label_sources: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def export_feedback(
    store: DecisionStore,
    tickets_path: Path | str,
    out_path: Path | str,
    *,
    since: datetime | None = None,
    id_column: str = "id",
) -> ExportReport:
    """Write the confirmed tickets as a labelled data set.

    Args:
        store: Where feedback is read from.
        tickets_path: Parquet, CSV or JSONL of the original tickets, with
            `id_column` and either `text` or `subject` and `body`.
        out_path: .parquet, .csv or .jsonl file to write.
        since: Only labels confirmed (feedback occurred) at or after this.
        id_column: The tickets file's ticket id column.

    Raises:
        DataError: an unusable tickets file or output name, or no confirmed
            ticket found in the tickets file (nothing is written then).
    """
    out_path = Path(out_path)
    writer = _WRITERS.get(out_path.suffix.lower())
    if writer is None:
        raise DataError(
            f"{out_path}: unknown output format {out_path.suffix!r}; "
            "use .parquet, .csv or .jsonl"
        )
    tickets = _ticket_texts(tickets_path, id_column)
    report = ExportReport(out=str(out_path))
    report.duplicate_ticket_rows = int(tickets.index.duplicated().sum())
    tickets = tickets[~tickets.index.duplicated(keep="first")]

    labelled = _confirmed_labels(store, since)
    report.confirmed_tickets = len(labelled)
    missing = sorted(set(labelled) - set(tickets.index))
    report.unmatched = len(missing)
    report.unmatched_sample = missing[:UNMATCHED_SAMPLE]

    matched = [ticket_id for ticket_id in labelled if ticket_id in tickets.index]
    if not matched:
        raise DataError(
            f"{tickets_path}: none of the {len(labelled)} tickets with a "
            f"confirmed queue has a row there (matched on column {id_column!r}); "
            "nothing written"
        )
    frame = tickets.loc[matched].reset_index(names="id")
    frame["label"] = [labelled[ticket_id][0] for ticket_id in matched]
    frame["label_source"] = [labelled[ticket_id][1] for ticket_id in matched]
    _write(frame, out_path, writer)

    report.exported = len(frame)
    report.labels = {k: int(v) for k, v in frame["label"].value_counts().items()}
    report.label_sources = {
        k: int(v) for k, v in frame["label_source"].value_counts().items()
    }
    log.info(
        "feedback exported",
        extra={"exported": report.exported, "unmatched": report.unmatched},
    )
    return report


def _ticket_texts(path: Path | str, id_column: str) -> pd.DataFrame:
    """The tickets file's text columns, indexed by ticket id as text."""
    table = read_table(path)
    if id_column not in table.columns:
        raise DataError(
            f"{path}: no ticket id column {id_column!r}; columns are "
            f"{', '.join(map(str, table.columns))} (set --id-column)"
        )
    if "text" in table.columns:
        columns = ["text"]
    elif {"subject", "body"} <= set(table.columns):
        columns = ["subject", "body"]
    else:
        raise DataError(f"{path}: needs a text column, or subject and body columns")
    texts = table[columns].copy()
    for column in columns:
        texts[column] = texts[column].fillna("").astype(str)
    texts.index = pd.Index(table[id_column].astype(str), name="id")
    return texts


def _confirmed_labels(
    store: DecisionStore, since: datetime | None
) -> dict[str, tuple[str, str]]:
    """Ticket id -> (final queue, "override" or "final_queue"), oldest first.

    Events before `since` are not read, so a ticket counts only if its
    latest final queue was reported since then.
    """
    outcomes = fold_feedback(store.iter_feedback(since=since))
    labels = {}
    for ticket_id, outcome in outcomes.items():
        if outcome.final_queue is None:
            continue
        source = "override" if outcome.is_overridden else "final_queue"
        labels[ticket_id] = (outcome.final_queue, source)
    return labels


def _write(frame: pd.DataFrame, path: Path, writer: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if writer == "parquet":
        frame.to_parquet(path, index=False)
    elif writer == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
