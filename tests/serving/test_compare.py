"""`switchboard compare`: a challenger and the champion on the same tickets.

The challenger is trained here on the session champion's data with a
stricter target precision (its embeddings come from the cache, so this is
quick): same head, same test rows, other thresholds, so every difference in
routing comes from the thresholds and can be counted independently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from features.encoder import Encoder
from serving.cli import app
from serving.settings import ServingSettings
from training.evaluation import routed_mask
from training.registry import (
    configure_mlflow,
    get_version,
    load_bundle,
    load_test_frame,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def challenger(champion_settings: ServingSettings) -> str:
    from training.service import DataOptions, train

    data = champion_settings.home_dir.joinpath("train-data.txt").read_text()
    trained = train(
        champion_settings, data, DataOptions(), overrides={"target_precision": 0.99}
    )
    return str(trained["model_version"])


def test_both_versions_are_scored_on_the_challengers_test_rows(
    champion_settings: ServingSettings, challenger: str
) -> None:
    champion = get_version(champion_settings, "champion")

    result = _invoke(champion_settings, "compare", challenger, "--json")

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["challenger"]["version"] == challenger
    assert found["champion"]["version"] == champion.version
    test = load_test_frame(
        champion_settings, get_version(champion_settings, challenger)
    )
    assert found["data"]["rows"] == len(test)
    # Same data and seed: the test rows are each version's own, so the scores
    # are the ones registered with each version at training.
    ours = get_version(champion_settings, challenger).metrics
    for name in ("accuracy", "macro_f1", "coverage", "precision_covered"):
        row = found["metrics"][name]
        assert row["challenger"] == pytest.approx(ours[name], abs=1e-4), name
        assert row["champion"] == pytest.approx(champion.metrics[name], abs=1e-4)
        assert row["delta"] == pytest.approx(row["challenger"] - row["champion"])
    assert set(found["per_queue"]) >= {"billing_invoicing", "security"}

    expected = _routes_that_differ(champion_settings, challenger, champion)
    routing = found["routing"]
    assert routing["routed_differently"] == expected
    assert expected > 0, "the stricter thresholds should change some routes"
    assert routing["both_auto_other_queue"] == 0  # one head: same proposals
    assert routing["only_challenger_auto"] + routing["only_champion_auto"] == expected


def test_a_labelled_file_is_scored_instead_when_given(
    champion_settings: ServingSettings, challenger: str, tmp_path: Path
) -> None:
    champion = get_version(champion_settings, "champion")
    version = get_version(champion_settings, challenger)
    rows = load_test_frame(champion_settings, version).head(40)
    path = tmp_path / "labelled.csv"
    rows[["id", "text", "label"]].to_csv(path, index=False)

    result = _invoke(
        champion_settings,
        "compare",
        challenger,
        "--champion",
        champion.version,
        "--data",
        str(path),
    )

    assert result.exit_code == 0, result.output
    assert f"challenger {challenger} vs champion {champion.version}" in result.stdout
    assert f"on 40 rows ({path}, split all)" in result.stdout
    assert "macro_f1" in result.stdout
    assert "would route differently" in result.stdout


def test_without_a_champion_compare_says_so(
    champion_settings: ServingSettings,
) -> None:
    # A registered model with one version and no champion alias, in the same
    # registry: the version's files are the session champion's.
    champion = get_version(champion_settings, "champion")
    client = configure_mlflow(champion_settings)
    name = "compare-without-champion"
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
        source = client.get_model_version(
            champion_settings.registered_model, champion.version
        ).source
        client.create_model_version(name, source, run_id=champion.run_id)

    result = _invoke(
        champion_settings, "compare", "1", env={"SWITCHBOARD_REGISTERED_MODEL": name}
    )

    assert result.exit_code == 2
    assert "there is no champion" in result.stderr
    assert "--champion VERSION" in result.stderr


def _routes_that_differ(
    settings: ServingSettings, challenger: str, champion: Any
) -> int:
    version = get_version(settings, challenger)
    test = load_test_frame(settings, version)
    # Both versions were trained on the same encoder and backend: embed once,
    # as the version's own encoder does.
    _, trained = load_bundle(settings, challenger)
    own = Encoder(
        trained.encoder,
        backend=trained.encoder_backend,
        export_dir=settings.encoder_export_dir,
    )
    embeddings = own.encode(test["text"].tolist())
    routes = []
    for ref in (challenger, champion.version):
        _, bundle = load_bundle(settings, ref)
        predictions = bundle.predict(embeddings)
        routed = routed_mask(predictions, bundle.thresholds)
        routes.append(np.where(routed, np.array(predictions.queues), ""))
    return int((routes[0] != routes[1]).sum())


def _invoke(
    settings: ServingSettings, *args: str, env: dict[str, str] | None = None
) -> Any:
    variables = {
        "SWITCHBOARD_HOME": str(settings.home),
        "COLUMNS": "200",
        **(env or {}),
    }
    return CliRunner().invoke(app, list(args), env=variables)
