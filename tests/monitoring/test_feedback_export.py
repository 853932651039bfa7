"""export_feedback: confirmed queues joined with the original ticket text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from features.errors import DataError
from monitoring.feedback_export import export_feedback
from monitoring.store import DecisionStore
from training.datasets import load_labelled

if TYPE_CHECKING:
    from conftest import RecordFactory

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _feedback(ticket_id: str, hour: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "feedback_id": f"fb-{ticket_id}-{hour}",
        "ticket_id": ticket_id,
        "occurred_at": AT + timedelta(hours=hour),
        **fields,
    }


@pytest.fixture
def tickets_file(tmp_path: Path) -> Path:
    path = tmp_path / "tickets.csv"
    pd.DataFrame(
        {
            "id": ["T-1", "T-2", "T-3", "T-4", "T-1"],
            "subject": ["Invoice", "Login", "Outage", "Refund", "Invoice again"],
            "body": ["VAT wrong", "SSO fails", "500s", "Please refund", "dup"],
            "label": ["wrong"] * 5,  # the tickets' own label column is ignored
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def reviewed_store(store: DecisionStore, make_record: RecordFactory) -> DecisionStore:
    # T-4 has a decision but nobody reported on it: it must not be exported.
    store.append([make_record(n, ticket_id=f"T-{n}") for n in range(1, 5)])
    store.append_feedback(
        [
            _feedback("T-1", 0, final_queue="collections"),
            _feedback("T-1", 2, final_queue="billing_invoicing"),
            _feedback(
                "T-2",
                1,
                final_queue="identity_access",
                override_by="ana",
                override_reason="SSO, not billing",
            ),
            _feedback("T-3", 1, resolved_at=AT + timedelta(hours=1)),
            _feedback("T-9", 1, final_queue="security"),  # not in the tickets file
        ],
        submitted_by="test",
    )
    return store


def test_export_labels_confirmed_tickets_and_counts_the_unmatched(
    reviewed_store: DecisionStore, tickets_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export" / "labelled.parquet"

    report = export_feedback(reviewed_store, tickets_file, out)

    frame = pd.read_parquet(out)
    assert frame["id"].tolist() == ["T-1", "T-2"]
    assert frame["label"].tolist() == ["billing_invoicing", "identity_access"]
    assert frame["label_source"].tolist() == ["final_queue", "override"]
    assert frame["subject"].tolist() == ["Invoice", "Login"]  # first of repeated ids
    assert report.confirmed_tickets == 3
    assert report.exported == 2
    assert (report.unmatched, report.unmatched_sample) == (1, ["T-9"])
    assert report.duplicate_ticket_rows == 1
    assert report.labels == {"billing_invoicing": 1, "identity_access": 1}


def test_since_keeps_only_labels_confirmed_after_it(
    reviewed_store: DecisionStore, tickets_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labelled.csv"

    report = export_feedback(
        reviewed_store, tickets_file, out, since=AT + timedelta(hours=2)
    )

    assert pd.read_csv(out)["id"].tolist() == ["T-1"]
    assert report.unmatched == 0


def test_a_text_column_is_carried_as_it_is(
    reviewed_store: DecisionStore, tmp_path: Path
) -> None:
    tickets = tmp_path / "tickets.jsonl"
    pd.DataFrame({"ticket": ["T-1", "T-2"], "text": ["a", "b"]}).to_json(
        tickets, orient="records", lines=True
    )
    out = tmp_path / "labelled.jsonl"

    export_feedback(reviewed_store, tickets, out, id_column="ticket")

    frame = pd.read_json(out, lines=True)
    assert list(frame.columns) == ["id", "text", "label", "label_source"]


def test_export_is_readable_as_a_labelled_data_set(
    store: DecisionStore, tmp_path: Path
) -> None:
    queues = ["billing_invoicing", "identity_access"]
    ids = [f"T-{n}" for n in range(40)]
    tickets = tmp_path / "tickets.parquet"
    pd.DataFrame(
        {"id": ids, "subject": [f"s{n}" for n in range(40)], "body": ["b"] * 40}
    ).to_parquet(tickets)
    store.append_feedback(
        [_feedback(t, final_queue=queues[n % 2]) for n, t in enumerate(ids)], "test"
    )
    out = tmp_path / "labelled.parquet"

    export_feedback(store, tickets, out)
    data = load_labelled(out)

    assert set(data.frame["label"]) == set(queues)
    assert set(data.frame["split"]) == {"train", "validation", "test"}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        pytest.param({"ticket": ["T-1"], "text": ["a"]}, "no ticket id column"),
        pytest.param({"id": ["T-1"], "subject": ["a"]}, "subject and body"),
        pytest.param({"id": ["T-7"], "text": ["a"]}, "nothing written"),
    ],
)
def test_unusable_tickets_files_are_data_errors(
    reviewed_store: DecisionStore,
    tmp_path: Path,
    columns: dict[str, list[str]],
    message: str,
) -> None:
    tickets = tmp_path / "tickets.csv"
    pd.DataFrame(columns).to_csv(tickets, index=False)
    out = tmp_path / "labelled.parquet"

    with pytest.raises(DataError, match=message):
        export_feedback(reviewed_store, tickets, out)

    assert not out.exists()


def test_unknown_output_format_is_refused_before_reading(
    reviewed_store: DecisionStore, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match=r"use \.parquet, \.csv or \.jsonl"):
        export_feedback(reviewed_store, tmp_path / "missing.csv", tmp_path / "x.xlsx")
