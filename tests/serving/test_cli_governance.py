"""config record / history and escalate, through typer's runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from features.config import bundled_config_path
from features.settings import Settings
from monitoring.cases import Case, CaseStore
from monitoring.store import open_store
from serving.cli import app
from serving.rules import load_rules


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _invoke(home: Path, *args: str) -> Any:
    env = {"SWITCHBOARD_HOME": str(home), "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def _rules_copy(tmp_path: Path, change: dict[str, Any] | None = None) -> Path:
    content = yaml.safe_load(bundled_config_path("rules.yaml").read_text())
    if change:
        content["fallback"][0].update(change)
    path = tmp_path / "proposed-rules.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def test_config_record_keeps_who_and_why_for_a_version(
    home: Path, tmp_path: Path
) -> None:
    path = _rules_copy(tmp_path, {"description": "Phishing and CVEs, reworded."})

    first = _invoke(
        home,
        "config",
        "record",
        "rules",
        str(path),
        "--by",
        "ana",
        "--why",
        "wording",
        "--json",
    )
    again = _invoke(
        home,
        "config",
        "record",
        "rules",
        str(path),
        "--by",
        "bo",
        "--why",
        "retry",
        "--json",
    )
    history = _invoke(home, "config", "history", "--kind", "rules", "--json")

    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {
        "kind": "rules",
        "version": load_rules(path).version,
        "recorded": True,
    }
    assert json.loads(again.output)["recorded"] is False
    [change] = json.loads(history.output)["changes"]
    assert (change["changed_by"], change["reason"]) == ("ana", "wording")


def test_the_real_author_can_follow_a_version_found_unrecorded(
    home: Path, tmp_path: Path
) -> None:
    from monitoring.governance import GovernanceLog

    path = _rules_copy(tmp_path, {"description": "Found in force."})
    version = load_rules(path).version
    with open_store(Settings(home=home)) as store:
        GovernanceLog(store).ensure_recorded({"rules": (version, str(path))})

    result = _invoke(
        home,
        "config",
        "record",
        "rules",
        str(path),
        "--by",
        "ana",
        "--why",
        "late",
        "--json",
    )
    history = json.loads(_invoke(home, "config", "history", "--json").output)

    assert json.loads(result.output)["recorded"] is True
    assert [c["changed_by"] for c in history["changes"]] == ["unrecorded", "ana"]


def test_config_record_refuses_an_invalid_file_naming_the_rule(
    home: Path, tmp_path: Path
) -> None:
    path = _rules_copy(tmp_path, {"condition": "ticket.text.nosuch()"})

    result = _invoke(
        home, "config", "record", "rules", str(path), "--by", "ana", "--why", "x"
    )

    assert result.exit_code == 2
    assert "fallback-security-words" in result.output
    assert "unknown function nosuch()" in result.output


def test_config_record_refuses_an_unknown_kind(home: Path, tmp_path: Path) -> None:
    result = _invoke(
        home, "config", "record", "colours", str(tmp_path), "--by", "a", "--why", "b"
    )

    assert result.exit_code == 2
    assert "unknown kind" in result.output


def test_escalate_records_each_level_reached_once(home: Path) -> None:
    opened = datetime.now(UTC) - timedelta(days=3)
    case = Case(
        ticket_id="T-late",
        ticket={"id": "T-late", "channel": "email", "subject": "s", "body": "b"},
        decision_id="d-1",
        queue="platform_operations",
        priority="P1",
        mode="rules",
        opened_at=opened,
        updated_at=opened,
    )
    with open_store(Settings(home=home)) as store:
        CaseStore(store).upsert_decided(case, kind="opened", cause=None, actor="t")

    first = _invoke(home, "escalate", "--json")
    second = _invoke(home, "escalate", "--json")

    assert first.exit_code == 0, first.output
    steps = json.loads(first.output)["steps"]
    levels = [(s["target"], s["level"]) for s in steps]
    assert ("first_response", "team_lead") in levels
    assert len(levels) == len(set(levels))
    assert json.loads(second.output)["steps"] == []
