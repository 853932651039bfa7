"""Drift monitoring against the champion's reference profile, with real Evidently.

Windows are built the way the router builds observations, from embeddings of
the real encoder (cached in the champion's state folder): fresh tickets from
the training generator (the training distribution), generator tickets in
other languages, and assistant requests from CLINC150 (another topic mix).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.errors import ConfigError
from features.language import detect_language
from features.sample_data import generate_frame
from features.text import build_texts
from monitoring.drift import (
    CHECK_EVENT,
    FORCE_EVENT,
    STATE_EVENT,
    DriftCheck,
    DriftConfig,
    DriftMonitorCore,
    DriftStateMachine,
    load_drift_config,
    run_drift_check,
)
from monitoring.store import DecisionStore
from training.profile import ReferenceProfile

pytestmark = pytest.mark.integration

WINDOW = 200
CLINC_PATH = Path("/work/shared/data/clinc150.parquet")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

Observations = list[dict[str, Any]]


class Clock:
    """An injected clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def champion(champion_settings):
    from training.registry import load_bundle, load_reference_profile

    version, bundle = load_bundle(champion_settings, "champion")
    profile = load_reference_profile(champion_settings, version.version)
    assert profile is not None, "train must log a reference profile"
    return version.version, bundle, profile


@pytest.fixture(scope="module")
def observe(champion_settings, champion) -> Callable[[list[str]], Observations]:
    """Texts -> observations, as the classifier and router make them."""
    from training.service import make_encoder

    version, bundle, profile = champion
    encoder = make_encoder(champion_settings)

    def make(texts: list[str]) -> Observations:
        embeddings = encoder.encode(texts)
        predictions = bundle.predict(embeddings)
        projections = profile.project(embeddings)
        rows = []
        for i, text in enumerate(texts):
            queue = predictions.queues[i]
            confidence = float(predictions.confidence[i])
            similarity = float(predictions.similarity[i])
            rows.append(
                {
                    "model_version": version,
                    "queue": queue,
                    "confidence": confidence,
                    "margin": float(predictions.margin[i]),
                    "text_length": len(text),
                    "is_low_confidence": not bundle.thresholds.may_route(
                        queue, confidence, similarity
                    ),
                    "text_sample": text[:160],
                    "language": None,
                    "projection": projections[i].tolist(),
                }
            )
        return rows

    return make


@pytest.fixture(scope="module")
def clean_pool(observe) -> Observations:
    """Fresh tickets from the training generator (another seed), languages known."""
    rows = observe(_ticket_texts(generate_frame(800, seed=11)))
    for row in rows:
        row["language"] = detect_language(row.pop("text_sample"))
    return rows


@pytest.fixture(scope="module")
def drift_pools(observe) -> dict[str, Observations]:
    tickets = generate_frame(5000, seed=23)
    foreign = tickets[tickets["language"] != "en"].head(WINDOW)
    clinc = pd.read_parquet(CLINC_PATH)
    requests = clinc[clinc["split"] == "test"].sample(WINDOW, random_state=3)
    return {
        "language": observe(_ticket_texts(foreign)),
        "topic": observe(requests["text"].tolist()),
    }


@pytest.fixture
def event_store(tmp_path: Path):
    store = DecisionStore(f"sqlite:///{tmp_path / 'decisions.db'}")
    yield store
    store.close()


def test_training_logs_a_reference_profile_beside_the_bundle(champion) -> None:
    _, bundle, profile = champion

    summary = profile.summary()
    assert len(profile.frame) == summary["rows"] >= 200
    assert set(summary["queue_share"]) <= set(bundle.labels)
    assert "en" in profile.languages
    assert 0.0 < profile.low_confidence_rate < 0.5
    assert profile.project(np.ones((3, 384), dtype=np.float32)).shape == (3, 16)


@pytest.mark.parametrize("shift", [pytest.param("language"), pytest.param("topic")])
def test_window_from_another_distribution_switches_to_drift_in_one_check(
    champion_settings, champion, drift_pools, event_store, tmp_path, shift
) -> None:
    version, _, profile = champion
    config = _config(tmp_path, embedding_plot=shift == "language")
    monitor = _monitor(champion_settings, config, event_store, profile)

    monitor.observe(drift_pools[shift])
    check = monitor.check_now()

    assert check is not None and check.is_drift
    assert monitor.state()["state"] == "drift"
    assert check.reasons, "a drift verdict names what fired"
    [stored] = event_store.events(CHECK_EVENT)
    assert stored["payload"]["is_drift"] is True
    [change] = event_store.events(STATE_EVENT)
    assert (change["payload"]["previous"], change["payload"]["state"]) == (
        "model",
        "drift",
    )
    assert change["payload"]["evidence"]["check"]["reasons"] == check.reasons
    report = json.loads(Path(check.report_json or "").read_text())
    assert report["summary"]["model_version"] == version
    assert report["evidently"]["metrics"]
    if config.write_html and config.embedding_plot:
        html = Path(check.report_html or "").read_text()
        assert "Drift in embeddings" in html


def test_drift_returns_to_model_after_the_clean_checks_and_not_before(
    champion_settings, champion, drift_pools, clean_pool, event_store, tmp_path
) -> None:
    _, _, profile = champion
    config = _config(tmp_path, clean_checks_to_recover=3)
    monitor = _monitor(champion_settings, config, event_store, profile)
    monitor.observe(drift_pools["language"])
    assert monitor.check_now().is_drift  # type: ignore[union-attr]

    states = []
    for window in _windows(clean_pool, count=3, seed=1):
        monitor.observe(window)
        check = monitor.check_now()
        assert check is not None and not check.is_drift
        states.append(monitor.state()["state"])

    assert states == ["drift", "drift", "model"]
    changes = [e["payload"] for e in event_store.events(STATE_EVENT)]
    assert [(c["previous"], c["state"], c["cause"]) for c in changes] == [
        ("model", "drift", "check"),
        ("drift", "model", "check"),
    ]
    assert changes[1]["evidence"]["clean_checks_needed"] == 3
    assert len(event_store.events(CHECK_EVENT)) == 4


def test_twenty_windows_from_the_training_distribution_raise_at_most_one_alarm(
    champion, clean_pool
) -> None:
    version, _, profile = champion
    config = DriftConfig(min_window=WINDOW, window_size=WINDOW, embedding_plot=False)

    checks = [
        run_drift_check(window, profile, config, model_version=version)
        for window in _windows(clean_pool, count=20, seed=7)
    ]

    alarms = [check.reasons for check in checks if check.is_drift]
    assert len(alarms) <= 1, alarms
    # The checks did look: scores were computed, not skipped.
    assert all(check.embedding_score is not None for check in checks)
    assert all(len(check.columns) == 5 for check in checks)


def test_window_smaller_than_the_minimum_is_not_checked(
    champion_settings, champion, clean_pool, event_store, tmp_path
) -> None:
    _, _, profile = champion
    monitor = _monitor(champion_settings, _config(tmp_path), event_store, profile)

    monitor.observe(clean_pool[: WINDOW - 1])

    assert monitor.check_now() is None
    assert event_store.events(CHECK_EVENT) == []


def test_scheduled_checks_wait_for_the_interval_and_fresh_observations(
    champion_settings, champion, clean_pool, event_store, tmp_path
) -> None:
    _, _, profile = champion
    clock = Clock()
    config = _config(tmp_path, check_interval_s=60, min_new_observations=50)
    monitor = _monitor(champion_settings, config, event_store, profile, clock=clock)
    monitor.observe(clean_pool[:WINDOW])

    assert monitor.check_if_due() is None, "the first check waits one interval"
    clock.advance(61)
    assert monitor.check_if_due() is not None
    clock.advance(61)
    assert monitor.check_if_due() is None, "no fresh observations since"
    monitor.observe(clean_pool[WINDOW : WINDOW + 50])
    assert monitor.check_if_due() is not None


def test_version_without_profile_still_loads_and_monitor_stays_in_model_mode(
    tmp_path, clean_pool, caplog
) -> None:
    from features.settings import Settings
    from training.config import load_training_config
    from training.datasets import load_labelled
    from training.pipeline import train_model
    from training.registry import (
        load_bundle,
        load_reference_profile,
        log_training_run,
    )
    from training.service import make_encoder

    settings = Settings(home=tmp_path / "old-home")
    data_path = tmp_path / "tickets.parquet"
    generate_frame(300, seed=2).to_parquet(data_path)
    config = load_training_config(settings.training_path)
    data = load_labelled(data_path, min_train_examples=2, seed=config.seed)
    result = train_model(data, make_encoder(settings), config)
    # What a version trained before profiles existed looks like.
    old = log_training_run(
        replace(result, reference_profile=None),
        settings,
        taxonomy_version="test",
        data_source=str(data_path),
    )

    _, bundle = load_bundle(settings, old.version)
    with caplog.at_level(logging.WARNING):
        assert load_reference_profile(settings, old.version) is None
        monitor = DriftMonitorCore(settings, _config(tmp_path))
        monitor.observe([{**row, "model_version": old.version} for row in clean_pool])
        check = monitor.check_now()

    assert bundle.labels
    assert check is None
    status = monitor.status()
    assert (status["state"], status["reference_profile"]) == ("model", "missing")
    assert status["detail"] == "no reference profile"
    assert "no reference profile, drift monitoring stays in model mode" in (caplog.text)


def test_each_model_version_keeps_its_own_window(
    champion_settings, champion, clean_pool, event_store, tmp_path
) -> None:
    version, _, profile = champion
    monitor = _monitor(champion_settings, _config(tmp_path), event_store, profile)
    newer = str(int(version) + 1)

    monitor.observe(clean_pool[:150])
    monitor.observe([{**row, "model_version": newer} for row in clean_pool[:10]])
    monitor.observe(clean_pool[150:160])  # replicas still on the old version
    interleaved = monitor.status()
    monitor.observe([{**row, "model_version": newer} for row in clean_pool[10:15]])
    swapped = monitor.status()

    assert (interleaved["model_version"], interleaved["window"]["observations"]) == (
        version,
        160,
    )
    assert (swapped["model_version"], swapped["window"]["observations"]) == (newer, 15)


def test_hysteresis_needs_consecutive_clean_checks(event_store, tmp_path) -> None:
    machine = DriftStateMachine(
        _config(tmp_path, clean_checks_to_recover=2), event_store
    )

    seen = []
    for is_drift in (True, False, True, False, False):
        machine.apply(_check(is_drift))
        seen.append(machine.state)

    assert seen == ["drift", "drift", "drift", "drift", "model"]
    changes = [e["payload"] for e in event_store.events(STATE_EVENT)]
    assert [(c["state"], c["evidence"]["clean_checks"]) for c in changes] == [
        ("drift", 0),
        ("model", 0),
    ]


def test_force_pins_the_state_until_released_and_is_audited(
    event_store, tmp_path
) -> None:
    clock = Clock()
    machine = DriftStateMachine(_config(tmp_path), event_store, clock=clock)

    machine.force("drift", "dana", "vendor migration this week", via="ops-key")
    clock.advance(60)
    machine.apply(_check(False, at=clock()))
    pinned = machine.state
    clock.advance(60)
    machine.force("auto", "dana", "migration done")

    assert (pinned, machine.state) == ("drift", "model")
    forces = [e["payload"] for e in event_store.events(FORCE_EVENT)]
    assert [(f["target"], f["actor"], f["reason"]) for f in forces] == [
        ("drift", "dana", "vendor migration this week"),
        ("auto", "dana", "migration done"),
    ]
    assert forces[0]["via"] == "ops-key"
    changes = [e["payload"] for e in event_store.events(STATE_EVENT)]
    assert [(c["state"], c["cause"]) for c in changes] == [
        ("drift", "force"),
        ("model", "force"),
    ]
    assert changes[0]["forced"]["actor"] == "dana"


def test_force_needs_an_actor_and_a_reason(event_store, tmp_path) -> None:
    machine = DriftStateMachine(_config(tmp_path), event_store)

    with pytest.raises(ValueError, match="actor and a reason"):
        machine.force("drift", "dana", " ")
    assert event_store.events() == []


def test_a_restarted_monitor_keeps_the_recorded_state(event_store, tmp_path) -> None:
    DriftStateMachine(_config(tmp_path), event_store).force(
        "drift", "dana", "incident 42"
    )

    restarted = DriftStateMachine(_config(tmp_path), event_store)
    restarted.restore()

    assert restarted.state == "drift"
    assert restarted.forced is not None and restarted.forced.actor == "dana"


def test_metrics_export_the_state_and_the_last_check(
    champion_settings, champion, drift_pools, event_store, tmp_path
) -> None:
    _, _, profile = champion
    monitor = _monitor(
        champion_settings, _config(tmp_path, write_html=False), event_store, profile
    )
    monitor.observe(drift_pools["topic"])
    monitor.check_now()

    exported = monitor.metrics.export().decode()

    assert 'switchboard_drift_state{state="drift"} 1.0' in exported
    assert 'switchboard_drift_checks_total{outcome="drift"} 1.0' in exported
    assert 'switchboard_drift_state_changes_total{cause="check",state="drift"}' in (
        exported
    )
    assert "switchboard_drift_embedding_score" in exported


def test_bundled_drift_config_loads_with_a_window_it_can_check() -> None:
    config = load_drift_config()

    assert config.min_window <= config.window_size
    assert config.clean_checks_to_recover >= 1


def test_config_with_minimum_over_window_fails_naming_the_file(tmp_path) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text("window_size: 100\nmin_window: 300\n")

    with pytest.raises(ConfigError, match=r"drift\.yaml.*min_window 300"):
        load_drift_config(path)


def _config(tmp_path: Path, **changes: Any) -> DriftConfig:
    values: dict[str, Any] = {
        "window_size": WINDOW,
        "min_window": WINDOW,
        "reports_dir": tmp_path / "drift-reports",
        "embedding_plot": False,
        **changes,
    }
    return DriftConfig.model_validate(values)


def _monitor(
    settings: Any,
    config: DriftConfig,
    store: DecisionStore,
    profile: ReferenceProfile,
    clock: Clock | None = None,
) -> DriftMonitorCore:
    return DriftMonitorCore(
        settings,
        config,
        store=store,
        profile_loader=lambda _version: profile,
        clock=clock,
    )


def _windows(pool: Observations, *, count: int, seed: int) -> list[Observations]:
    """Windows sampled without replacement within each, fresh dicts each time."""
    rng = np.random.default_rng(seed)
    return [
        [dict(pool[i]) for i in rng.choice(len(pool), WINDOW, replace=False)]
        for _ in range(count)
    ]


def _ticket_texts(frame: pd.DataFrame) -> list[str]:
    return build_texts(frame["subject"].tolist(), frame["body"].tolist())


def _check(is_drift: bool, at: datetime = T0) -> DriftCheck:
    return DriftCheck(
        checked_at=at,
        model_version="1",
        window_rows=WINDOW,
        reference_rows=400,
        columns=[],
        drifted_column_share=0.6 if is_drift else 0.0,
        embedding_method="model",
        embedding_score=0.9 if is_drift else 0.5,
        low_confidence_rate=0.2,
        reference_low_confidence_rate=0.16,
        is_drift=is_drift,
        reasons=["60% of profile columns drifted (bound 50%)"] if is_drift else [],
        duration_s=0.1,
    )
