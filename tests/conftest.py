"""Shared fixtures. Unit tests stay offline; integration fixtures start real parts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def settings(tmp_path: Path):
    """Settings whose state folder, MLflow store and cache live in tmp_path."""
    from features.settings import Settings

    return Settings(home=tmp_path / "home", mlflow_tracking_uri=None)


@pytest.fixture(scope="session")
def encoder():
    """The real bundled encoder, loaded once per test session."""
    from features.encoder import Encoder

    loaded = Encoder()
    loaded.encode(["warm up"])
    return loaded
