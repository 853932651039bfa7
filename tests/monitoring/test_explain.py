"""`switchboard explain`: why a stored decision went where it went.

Decisions come from the real path: the session champion (real MLflow, real
encoder) and the bundled rules decide generated tickets in process, and the
records go to a SQLite decision store of this module, as batch runs do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from features.sample_data import LABEL_COLUMNS, generate_frame
from features.schema import Ticket, ticket_from_row
from monitoring.explain import (
    DecisionNotFoundError,
    TicketText,
    bundle_encoder,
    explain_decision,
    registry_bundles,
)
from monitoring.store import DecisionStore, open_store
from serving.cli import app
from serving.decision import Decision
from serving.settings import ServingSettings
from training.registry import load_bundle

BREACH_BODY = "We think customer records leaked: a data leak from our account."


@pytest.fixture(scope="module")
def decided(
    champion_settings: ServingSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Tickets decided by the champion and rules, stored; plus their settings."""
    from serving.engine import DecisionEngine
    from serving.recording import records_for

    folder = tmp_path_factory.mktemp("explain")
    settings = champion_settings.model_copy(
        update={"database_url": f"sqlite:///{folder / 'decisions.db'}"}
    )
    frame = generate_frame(12, seed=41).drop(columns=list(LABEL_COLUMNS))
    tickets = [ticket_from_row(row) for row in frame.to_dict(orient="records")]
    tickets.append(
        Ticket(id="T-breach", channel="email", subject="Breach", body=BREACH_BODY)
    )
    decisions = DecisionEngine(settings).decide_many(tickets)
    with open_store(settings) as store:
        store.append(records_for(tickets, decisions, "batch-explain", "batch"))
        yield {
            "settings": settings,
            "store": store,
            "tickets": {ticket.id: ticket for ticket in tickets},
            "decisions": decisions,
            "folder": folder,
        }


@pytest.mark.integration
def test_a_model_decision_shows_its_queues_thresholds_and_nearest_tickets(
    decided: dict[str, Any],
) -> None:
    decision = _first(decided["decisions"], "auto")
    ticket = decided["tickets"][decision.ticket_id]
    settings = decided["settings"]
    _, bundle = load_bundle(settings, str(decision.model_version))

    found = explain_decision(
        decided["store"],
        decision.decision_id,
        ticket_text=_ticket_text(ticket, decided["folder"]),
        load_bundle=registry_bundles(settings),
        # Each version's own encoder and backend, as the CLI embeds.
        embed=bundle_encoder(settings),
    ).to_dict()

    assert found["verdict"] == f"the model routed it to {decision.queue}"
    model = found["model"]
    assert model["model_version"] == decision.model_version
    top = model["top_queues"][0]
    assert top["queue"] == decision.queue
    assert top["threshold"] == bundle.thresholds.for_queue(decision.queue).threshold
    assert top["meets_threshold"] and top["probability"] >= top["threshold"]
    assert model["min_similarity"] == bundle.thresholds.min_similarity
    assert model["is_out_of_scope"] is False
    assert found["text"]["matches_stored_hash"] is True
    assert found["warnings"] == []

    examples = found["nearest_examples"]
    assert len(examples) == 3
    assert {e["id"] for e in examples} <= set(bundle.index_ids)
    similarities = [e["similarity"] for e in examples]
    assert similarities == sorted(similarities, reverse=True)
    # The nearest example is the one the abstention signal measured.
    assert similarities[0] == pytest.approx(model["similarity"], abs=1e-5)
    assert np.mean([e["label"] == decision.queue for e in examples]) >= 2 / 3


@pytest.mark.integration
def test_an_override_names_the_rule_its_owner_and_the_rule_set(
    decided: dict[str, Any],
) -> None:
    decision = _first(decided["decisions"], "override")

    result = _invoke(decided, "explain", decision.decision_id, "--json")

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["verdict"].startswith(f"override rule {decision.rule_id} sent it")
    rule = found["rule"]
    assert rule["rule_id"] == decision.rule_id == "security-breach-words"
    assert rule["owner"] == "security-response"
    assert rule["section"] == "override"
    assert rule["description"].startswith("Reports of a breach")
    assert rule["rule_set_version"] == decision.rule_set_version
    assert rule["current_rule_set_version"] == decision.rule_set_version


@pytest.mark.integration
def test_without_the_ticket_text_it_says_nearest_examples_need_it(
    decided: dict[str, Any],
) -> None:
    decision = _first(decided["decisions"], "auto")

    result = _invoke(decided, "explain", decision.decision_id)

    assert result.exit_code == 0, result.output
    assert f"the model routed it to {decision.queue}" in result.stdout
    assert "threshold" in result.stdout
    assert "nearest training examples and similarity need the ticket text" in (
        result.stdout
    )
    assert "service state: model" in result.stdout


@pytest.mark.integration
def test_the_ticket_file_gives_nearest_examples_on_the_command_line(
    decided: dict[str, Any],
) -> None:
    decision = _first(decided["decisions"], "auto")
    path = _ticket_file(decided["tickets"][decision.ticket_id], decided["folder"])

    result = _invoke(decided, "explain", decision.decision_id, "--ticket", str(path))

    assert result.exit_code == 0, result.output
    assert "nearest labelled training tickets" in result.stdout
    assert "in scope" in result.stdout
    assert "warning" not in result.stdout


@pytest.mark.integration
def test_a_text_that_is_not_the_routed_one_is_flagged(
    decided: dict[str, Any],
) -> None:
    decision = _first(decided["decisions"], "auto")

    result = _invoke(
        decided,
        "explain",
        decision.decision_id,
        "--text",
        "Another ticket\nHi",
        "--json",
    )

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["text"]["matches_stored_hash"] is False
    assert any("does not hash to the stored text_hash" in w for w in found["warnings"])
    assert len(found["nearest_examples"]) == 3


def test_an_unknown_decision_id_fails_with_a_clear_error(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}

    result = CliRunner().invoke(app, ["explain", "no-such-decision"], env=env)

    assert result.exit_code == 2
    assert "no decision 'no-such-decision'" in result.stderr


def test_the_service_state_is_the_one_in_force_when_it_was_decided(
    tmp_path: Path, make_record: Any
) -> None:
    record = make_record(1, mode="rules", rule_id="fallback-default")
    decided_at = record.decision["decided_at"]
    with DecisionStore(f"sqlite:///{tmp_path / 'decisions.db'}") as store:
        store.append([record])
        store.append_event(
            "drift_check",
            {"model_version": "7", "is_drift": True, "reasons": ["embedding drift"]},
            at=decided_at - timedelta(minutes=10),
        )
        store.append_event(
            "drift_state",
            {"previous": "model", "state": "drift", "cause": "check"},
            at=decided_at - timedelta(minutes=10),
        )
        store.append_event(
            "drift_state",
            {"previous": "drift", "state": "model", "cause": "check"},
            at=decided_at + timedelta(minutes=5),
        )

        found = explain_decision(store, record.decision_id).to_dict()

    state = found["service_state"]
    assert state["state"] == "drift"
    assert state["last_check"]["is_drift"] is True
    assert state["last_check"]["reasons"] == ["embedding drift"]
    assert found["model"] is None and found["nearest_examples"] is None


def test_with_no_drift_events_the_state_is_the_starting_one(
    tmp_path: Path, make_record: Any
) -> None:
    with DecisionStore(f"sqlite:///{tmp_path / 'decisions.db'}") as store:
        store.append([make_record(1)])

        found = explain_decision(store, "dec-00001").to_dict()
        with pytest.raises(DecisionNotFoundError):
            explain_decision(store, "dec-00002")

    assert found["service_state"]["state"] == "model"
    assert found["service_state"]["last_check"] is None
    assert "no drift state change recorded" in found["service_state"]["note"]


def _first(decisions: list[Decision], mode: str) -> Decision:
    found = [decision for decision in decisions if decision.mode == mode]
    assert found, f"no {mode} decision among {[d.mode for d in decisions]}"
    return found[0]


def _ticket_file(ticket: Ticket, folder: Path) -> Path:
    path = folder / f"{ticket.id}.json"
    path.write_text(ticket.model_dump_json())
    return path


def _ticket_text(ticket: Ticket, folder: Path) -> TicketText:
    return TicketText.from_ticket_file(_ticket_file(ticket, folder))


def _invoke(decided: dict[str, Any], *args: str) -> Any:
    settings = decided["settings"]
    env = {
        "SWITCHBOARD_HOME": str(settings.home),
        "SWITCHBOARD_DATABASE_URL": settings.database_url,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(app, list(args), env=env)
