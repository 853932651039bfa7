"""Train on a small generated set into a temporary SQLite registry, end to end."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.errors import GateFailedError
from features.sample_data import generate_frame
from training.registry import CHALLENGER, CHAMPION, get_version, list_versions
from training.service import DataOptions, evaluate, make_encoder, promote_version, train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tickets.parquet"
    generate_frame(1500, seed=3).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def trained(small_set, tmp_path_factory):
    from features.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("home"))
    result = train(settings, small_set, DataOptions())
    return settings, result


def test_training_registers_a_challenger_version_with_tags(trained):
    settings, result = trained

    version = get_version(settings, CHALLENGER)

    assert version.version == result["model_version"] == "1"
    assert CHALLENGER in version.aliases
    assert json.loads(version.tags["thresholds"])["target_precision"] == 0.95
    assert version.tags["taxonomy_version"]
    assert len(version.tags["data_hash"]) == 16
    assert set(result["metrics"]) >= {
        "accuracy",
        "macro_f1",
        "ece",
        "coverage",
        "precision_covered",
    }
    assert result["metrics"]["accuracy"] > 0.7


def test_a_plain_mlflow_user_loads_the_champion_and_gets_queues(trained):
    import mlflow

    settings, result = trained
    promote_version(settings, result["model_version"], reason="first model")

    model = mlflow.pyfunc.load_model(f"models:/{settings.registered_model}@{CHAMPION}")
    out = model.predict(
        pd.DataFrame(
            {
                "text": [
                    "Our SSO login via Okta fails with a SAML error",
                    "Please send a copy of invoice INV-1234 with VAT",
                ]
            }
        )
    )

    assert list(out.columns)[:2] == ["queue", "confidence"]
    assert out["queue"].tolist() == ["identity_access", "billing_invoicing"]
    assert out["confidence"].between(0, 1).all()
    assert model.metadata.signature is not None


def test_promotion_records_who_why_and_when(trained):
    settings, result = trained
    promote_version(
        settings, result["model_version"], reason="looks good", promoted_by="ana"
    )

    version = get_version(settings, CHAMPION)

    assert version.tags["promoted_by"] == "ana"
    assert version.tags["promoted_reason"] == "looks good"
    assert version.tags["promoted_at"]
    assert CHAMPION in version.aliases


def test_a_failing_gate_names_itself_and_changes_nothing(trained, small_set, tmp_path):
    settings, _ = trained
    promote_version(settings, "1", reason="baseline")
    second = train(settings, small_set, DataOptions())
    strict = tmp_path / "gates.yaml"
    strict.write_text(
        "min_macro_f1: 0.999\nmax_ece: 0.5\nmin_coverage: 0.0\nmax_regression: 1\n"
    )
    strict_settings = settings.model_copy(update={"gates_path": strict})

    with pytest.raises(GateFailedError) as caught:
        promote_version(strict_settings, second["model_version"], reason="try")

    assert "min_macro_f1" in str(caught.value)
    assert "bound 0.9990" in str(caught.value)
    assert get_version(settings, CHAMPION).version == "1"
    assert CHAMPION not in get_version(settings, second["model_version"]).aliases


def test_a_second_version_passing_the_gates_replaces_the_champion(trained):
    settings, _ = trained
    newest = list_versions(settings)[0].version

    promote_version(settings, newest, reason="retrained", promoted_by="ana")

    assert get_version(settings, CHAMPION).version == newest
    assert get_version(settings, newest).tags["previous_champion"] == "1"
    assert get_version(settings, "1").tags["retired_at"]


def test_evaluate_scores_a_version_on_any_labelled_file(trained, small_set):
    settings, result = trained

    report = evaluate(settings, result["model_version"], small_set, DataOptions())

    assert report["split"] == "all"
    assert report["metrics"]["rows"] == 1500
    assert 0.0 <= report["metrics"]["coverage"] <= 1.0


def test_retraining_reuses_the_embedding_cache(trained, small_set):
    from training.datasets import load_labelled

    settings, _ = trained
    encoder = make_encoder(settings)

    encoder.encode(load_labelled(small_set).frame["text"].tolist())

    assert encoder.last_misses == 0
    assert encoder.last_hits == 1500


def test_configuring_mlflow_leaves_the_environment_as_it_was(trained, monkeypatch):
    import os

    from training.registry import configure_mlflow

    settings, _ = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    configure_mlflow(settings)

    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_a_version_keeps_the_encoder_backend_it_was_trained_on(trained):
    from training.registry import load_bundle

    settings, result = trained

    _, bundle = load_bundle(settings, result["model_version"])

    assert settings.encoder_backend == "onnx-int8"  # the default
    assert bundle.encoder_backend == "onnx-int8"
    assert bundle.encoder_identity.endswith("+onnx-int8")
    assert get_version(settings, result["model_version"]).tags["encoder"] == (
        bundle.encoder_identity
    )
