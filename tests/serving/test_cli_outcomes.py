"""The feedback, metrics and export-feedback commands, through typer's runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.settings import Settings
from monitoring.store import DecisionRecord, open_store
from serving.cli import app

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _invoke(home: Path, *args: str) -> Any:
    runner = CliRunner()
    # Wide enough that rich neither wraps messages nor squeezes tables.
    env = {"SWITCHBOARD_HOME": str(home), "COLUMNS": "200"}
    return runner.invoke(app, list(args), env=env)


def _record(number: int, queue: str, **fields: Any) -> DecisionRecord:
    decision = {
        "decision_id": f"dec-{number}",
        "ticket_id": f"T-{number}",
        "queue": queue,
        "priority": "P3",
        "mode": "auto",
        "model_version": "7",
        "rule_set_version": "2026.11",
        "decided_at": NOW - timedelta(hours=3),
        **fields,
    }
    return DecisionRecord(decision, f"req-{number}", "email", "http")


def _store_decisions(home: Path, records: list[DecisionRecord]) -> None:
    with open_store(Settings(home=home)) as store:
        store.append(records)


def test_feedback_import_stores_valid_rows_and_reports_rejects(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "feedback.csv"
    path.write_text(
        "feedback_id,ticket_id,final_queue,override_by,override_reason\n"
        "fb-1,T-1,collections,,\n"
        "fb-2,T-2,nowhere,,\n"
        "fb-3,T-3,security,ana,phishing report\n"
    )
    rejects = tmp_path / "rejects.jsonl"

    result = _invoke(
        home, "feedback", "import", str(path), "--rejects", str(rejects), "--json"
    )

    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert (payload["rows"], payload["stored"], payload["rejected"]) == (3, 2, 1)
    [reject] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["row"] == 2
    assert reject["problems"][0]["field"] == "final_queue"
    assert "collections" in reject["problems"][0]["limit"]
    with open_store(Settings(home=home)) as store:
        rows = list(store.iter_feedback())
    assert [row["feedback_id"] for row in rows] == ["fb-1", "fb-3"]
    assert rows[0]["submitted_by"].startswith("cli:")


def test_feedback_import_again_stores_nothing_new(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text(
        json.dumps(
            {"feedback_id": "fb-1", "ticket_id": "T-1", "final_queue": "security"}
        )
        + "\n"
    )
    _invoke(home, "feedback", "import", str(path))

    result = _invoke(home, "feedback", "import", str(path), "--submitted-by", "ops")

    assert result.exit_code == 0, result.output
    assert "stored 0, already stored 1, rejected 0" in result.stdout


def test_feedback_import_table_names_rejected_rows(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "feedback.csv"
    path.write_text("feedback_id,ticket_id,final_queue\nfb-1,T-1,nowhere\n")

    result = _invoke(home, "feedback", "import", str(path))

    assert result.exit_code == 1
    assert "row 1" in result.stdout
    assert "final_queue: unknown queue" in result.stdout


def test_feedback_import_of_a_missing_file_fails_cleanly(
    home: Path, tmp_path: Path
) -> None:
    result = _invoke(home, "feedback", "import", str(tmp_path / "none.csv"))

    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_metrics_json_is_the_process_metrics_report(home: Path, tmp_path: Path) -> None:
    _store_decisions(
        home,
        [
            _record(1, "billing_invoicing"),
            _record(2, "security", mode="rules", fallback_reason="low_confidence"),
        ],
    )
    path = tmp_path / "feedback.jsonl"
    path.write_text(
        json.dumps(
            {"feedback_id": "fb-1", "ticket_id": "T-1", "final_queue": "collections"}
        )
        + "\n"
    )
    _invoke(home, "feedback", "import", str(path))

    result = _invoke(home, "metrics", "--since", "7d", "--by", "mode", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["by"] == "mode"
    assert report["overall"]["decisions"] == 2
    assert report["overall"]["reassignment_rate"] == 1.0
    assert report["overall"]["fallback_rate_by_reason"] == {"low_confidence": 0.5}
    assert {group["group"] for group in report["groups"]} == {"auto", "rules"}
    assert report["series"]["fallback_reasons"]["bucket"] == "day"


def test_metrics_table_shows_groups_and_sections(home: Path) -> None:
    _store_decisions(
        home,
        [
            _record(1, "billing_invoicing"),
            _record(2, "security", mode="rules", fallback_reason="drift"),
        ],
    )

    result = _invoke(home, "metrics", "--since", "1d")

    assert result.exit_code == 0, result.output
    for text in (
        "billing_invoicing",
        "security",
        "fallbacks by reason: drift 1",
        "open tickets by age",
        "exceptions by source system",
        "not available",
    ):
        assert text in result.stdout


def test_metrics_with_a_bad_range_or_dimension_exits_2(home: Path) -> None:
    bad_since = _invoke(home, "metrics", "--since", "someday")
    bad_by = _invoke(home, "metrics", "--by", "colour")

    assert bad_since.exit_code == 2
    assert "since" in bad_since.stderr
    assert bad_by.exit_code == 2
    assert "queue, channel, mode, model_version" in bad_by.stderr


def test_export_feedback_writes_confirmed_labels_and_counts_unmatched(
    home: Path, tmp_path: Path
) -> None:
    tickets = tmp_path / "tickets.csv"
    pd.DataFrame(
        {"id": ["T-1", "T-2"], "subject": ["Invoice", "Login"], "body": ["a", "b"]}
    ).to_csv(tickets, index=False)
    feedback = tmp_path / "feedback.csv"
    feedback.write_text(
        "feedback_id,ticket_id,final_queue\n"
        "fb-1,T-1,billing_invoicing\n"
        "fb-3,T-3,security\n"
    )
    _invoke(home, "feedback", "import", str(feedback))
    out = tmp_path / "labelled.csv"

    result = _invoke(
        home,
        "export-feedback",
        "--since",
        "2000-01-01",
        "--tickets",
        str(tickets),
        "--out",
        str(out),
    )

    assert result.exit_code == 0, result.output
    assert "1 labelled tickets" in result.stdout
    assert "1 confirmed tickets not found" in result.stdout
    assert pd.read_csv(out)[["id", "label"]].values.tolist() == [
        ["T-1", "billing_invoicing"]
    ]


@pytest.mark.integration
def test_train_accepts_the_exported_feedback(home: Path, tmp_path: Path) -> None:
    from features.sample_data import generate_frame

    frame = generate_frame(400, seed=17)
    tickets = tmp_path / "tickets.parquet"
    frame.to_parquet(tickets)
    # People confirmed the first 360 tickets' queues; the last 40 have only
    # the model's decision and must stay out of the training set.
    reviewed, unreviewed = frame.iloc[:360], frame.iloc[360:]
    feedback = tmp_path / "feedback.parquet"
    pd.DataFrame(
        {
            "feedback_id": [f"fb-{ticket_id}" for ticket_id in reviewed["id"]],
            "ticket_id": reviewed["id"],
            "final_queue": reviewed["label"],
        }
    ).to_parquet(feedback)
    _store_decisions(
        home,
        [
            _record(n, "general_support", ticket_id=ticket_id)
            for n, ticket_id in enumerate(unreviewed["id"])
        ],
    )
    assert _invoke(home, "feedback", "import", str(feedback)).exit_code == 0
    out = tmp_path / "labelled.parquet"

    exported = _invoke(
        home, "export-feedback", "--tickets", str(tickets), "--out", str(out), "--json"
    )
    trained = _invoke(home, "train", "--data", str(out), "--json")

    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["exported"] == 360
    assert set(pd.read_parquet(out)["id"]).isdisjoint(unreviewed["id"])
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    assert result["model_version"] == "1"
    assert result["metrics"]["accuracy"] > 0.6
