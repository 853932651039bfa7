"""The governance report: a model card of the session champion, read in Chromium.

The card is written by `switchboard report` from the real registry (the
session champion's MLflow tags, params and artifacts) and a decision store
seeded by hand, so the live rates in it can be checked against values
counted here: four decisions by the champion, one of them a fallback, two
reviewed and one of those overridden.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from features.encoder import Encoder
from monitoring.report import redraw_with_encoder, write_model_card
from monitoring.store import DecisionRecord, open_store
from serving.cli import app
from serving.settings import ServingSettings
from training.registry import get_version

pytestmark = pytest.mark.integration

SECTIONS = (
    "summary",
    "training-data",
    "metrics",
    "thresholds",
    "plots",
    "drift",
    "operations",
    "promotion",
)

PLOT_NAMES = ["confusion.png", "reliability.png"]


@pytest.fixture(scope="module")
def card(
    champion_settings: ServingSettings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("report")
    settings = champion_settings.model_copy(
        update={"database_url": f"sqlite:///{folder / 'decisions.db'}"}
    )
    version = get_version(settings, "champion")
    promoted_at = datetime.fromisoformat(version.tags["promoted_at"])
    _seed(settings, version.version, promoted_at)

    out = folder / "card"
    env = {
        "SWITCHBOARD_HOME": str(settings.home),
        "SWITCHBOARD_DATABASE_URL": str(settings.database_url),
    }
    result = CliRunner().invoke(
        app,
        ["report", "--model", version.version, "--out", str(out), "--json"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    return {
        "version": version,
        "out": out,
        "files": json.loads(result.stdout),
        "data": json.loads((out / "model_card.json").read_text()),
    }


def test_the_card_holds_the_live_rates_counted_from_the_store(
    card: dict[str, Any],
) -> None:
    operations = card["data"]["operations"]
    metrics = operations["metrics"]

    assert (metrics["decisions"], metrics["fallbacks"]) == (4, 1)
    assert metrics["fallback_rate"] == pytest.approx(0.25)
    assert metrics["fallback_rate_by_reason"] == {"low_confidence": 0.25}
    assert (metrics["reviewed"], metrics["overridden"]) == (2, 1)
    assert metrics["override_rate"] == pytest.approx(0.5)
    assert operations["decisions_without_model"] == 1


def test_the_card_describes_the_version_from_the_registry(
    card: dict[str, Any],
) -> None:
    data, version = card["data"], card["version"]

    assert data["version"]["version"] == version.version
    assert data["version"]["is_current_champion"] is True
    rows = data["training_data"]["rows"]
    assert rows["train"] > 0 and rows["test"] > 0
    assert data["training_data"]["source"].endswith("tickets.parquet")
    assert sum(q["train"] for q in data["training_data"]["per_queue"]) == rows["train"]
    assert data["metrics"]["macro_f1"] == pytest.approx(
        float(version.tags["macro_f1"]), abs=1e-4
    )
    assert {row["queue"] for row in data["thresholds"]} >= {
        "billing_invoicing",
        "security",
    }
    assert data["promotion"]["reason"] == version.tags["promoted_reason"]
    assert {gate["gate"] for gate in data["promotion"]["gates"]} >= {
        "min_macro_f1",
        "max_ece",
        "min_coverage",
    }
    # Only the checks of this version, not those of another one.
    assert data["drift"]["check_count"] == 2
    assert [change["state"] for change in data["drift"]["changes"]] == [
        "drift",
        "model",
    ]
    assert sorted(Path(p).name for p in card["files"]["plots"]) == PLOT_NAMES


def test_chromium_shows_every_section_and_draws_every_plot(
    card: dict[str, Any], chromium: Any
) -> None:
    page = chromium.new_page()
    page.goto((card["out"] / "model_card.html").as_uri())
    page.wait_for_load_state("load")

    for section in SECTIONS:
        assert page.locator(f"#{section}").count() == 1, section
        assert page.locator(f"#{section}").is_visible(), section
    images = page.evaluate(
        "() => [...document.images].map(i => ({src: i.getAttribute('src'), "
        "complete: i.complete, width: i.naturalWidth}))"
    )
    assert {image["src"] for image in images} == {"reliability.png", "confusion.png"}
    assert all(image["complete"] and image["width"] > 0 for image in images), images

    rates = page.locator("#operations-rates").inner_text()
    assert "fallback rate\t25.0%" in rates
    assert "override rate (of reviewed)\t50.0%" in rates
    assert page.locator("#drift-changes tbody tr").count() == 2
    assert page.locator("#drift-checks tbody tr").count() == 2
    assert "embedding drift score 0.91" in page.locator("#drift-changes").inner_text()
    history = page.locator("#promotion-history").inner_text()
    assert card["version"].tags["promoted_reason"] in history
    page.close()


def test_a_version_logged_without_plots_gets_them_drawn_again(
    champion_settings: ServingSettings,
    encoder: Encoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    download = mlflow.artifacts.download_artifacts

    def without_plots(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("artifact_path") == "plots":
            raise MlflowException("no artifact plots")
        return download(*args, **kwargs)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", without_plots)
    redraw = redraw_with_encoder(lambda _bundle, texts: encoder.encode(texts))

    files = write_model_card(
        champion_settings, "champion", tmp_path, None, redraw_plots=redraw
    )

    assert sorted(path.name for path in files.plots) == PLOT_NAMES
    for path in files.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads(files.data.read_text())
    assert card["drift"]["store_read"] is False
    assert "decision store was not read" in files.html.read_text()


def _seed(settings: ServingSettings, version: str, promoted_at: datetime) -> None:
    """Decisions inside the champion period (by this version, another, none)."""

    def at(seconds: int) -> datetime:
        # Milliseconds after promotion: inside the period whenever the test runs.
        return promoted_at + timedelta(milliseconds=seconds)

    decisions = [
        _record(1, version, at(1)),
        _record(2, version, at(2)),
        _record(3, version, at(3)),
        _record(4, version, at(4), mode="rules", fallback_reason="low_confidence"),
        _record(5, "999", at(5)),
        _record(6, None, at(6), mode="rules", fallback_reason="model_unavailable"),
    ]
    feedback = [
        {"feedback_id": "fb-1", "ticket_id": "T-1", "final_queue": "billing_invoicing"},
        {
            "feedback_id": "fb-2",
            "ticket_id": "T-2",
            "final_queue": "security",
            "override_by": "ana",
            "override_reason": "phishing, not billing",
        },
    ]
    # The fields of a `drift_check` summary that the card shows.
    check = {
        "model_version": version,
        "is_drift": True,
        "reasons": ["embedding drift score 0.91 over 0.70"],
        "drifted_column_share": 0.6,
        "embedding_score": 0.91,
        "low_confidence_rate": 0.3,
        "window_rows": 200,
    }
    with open_store(settings) as store:
        store.append(decisions)
        store.append_feedback(feedback, "test")
        store.append_event("drift_check", check, at=at(1))
        store.append_event("drift_check", {**check, "is_drift": False}, at=at(2))
        store.append_event("drift_check", {**check, "model_version": "999"}, at=at(3))
        for previous, state, when in (("model", "drift", 1), ("drift", "model", 2)):
            store.append_event(
                "drift_state",
                {
                    "previous": previous,
                    "state": state,
                    "cause": "check",
                    "evidence": {"check": check},
                },
                at=at(when),
            )


def _record(
    number: int, version: str | None, decided_at: datetime, **fields: Any
) -> DecisionRecord:
    decision = {
        "decision_id": f"dec-{number}",
        "ticket_id": f"T-{number}",
        "queue": "billing_invoicing",
        "priority": "P3",
        "mode": "auto",
        "model_version": version,
        "rule_set_version": "test",
        "decided_at": decided_at,
        **fields,
    }
    return DecisionRecord(decision, f"req-{number}", "email", "http")
