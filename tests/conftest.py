"""Shared fixtures. Unit tests stay offline; integration fixtures start real parts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# One ONNX export of the encoder for the whole run, shared by every state
# folder (and the processes tests start), instead of one per test folder.
_ENCODER_DIR = tempfile.mkdtemp(prefix="switchboard-test-encoders-")
os.environ.setdefault("SWITCHBOARD_ENCODER_DIR", _ENCODER_DIR)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_ENCODER_DIR, ignore_errors=True)


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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole test session: dashboard off, 2 CPUs."""
    from serving.local import shutdown, start_ray

    start_ray(num_cpus=2)
    yield
    shutdown()


@pytest.fixture(scope="session")
def champion_settings(tmp_path_factory):
    """A state folder whose registry has a champion trained on generated tickets."""
    from features.sample_data import generate_frame
    from serving.settings import ServingSettings
    from training.service import DataOptions, promote_version, train

    home = tmp_path_factory.mktemp("champion-home")
    data = home / "tickets.parquet"
    generate_frame(1500, seed=5).to_parquet(data)
    settings = ServingSettings(home=home, port=free_port())
    trained = train(settings, data, DataOptions())
    promote_version(settings, trained["model_version"], reason="test champion")
    settings.home_dir.joinpath("train-data.txt").write_text(str(data))
    return settings


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Debian's Chromium, headless, driven by Playwright: a context on a new profile.

    The system binary only (`SWITCHBOARD_CHROMIUM` names another): never a
    browser downloaded by `playwright install`. Offline and quiet: no
    first-run pages, updates, sync or background fetches.
    """
    import shutil

    binary = (
        os.environ.get("SWITCHBOARD_CHROMIUM")
        or shutil.which("chromium")
        or "/usr/bin/chromium"
    )
    if not Path(binary).exists():
        pytest.fail(
            f"Chromium not found at {binary}: browser tests need Debian's chromium "
            "package (`apt-get install -y chromium`), or SWITCHBOARD_CHROMIUM "
            "naming a Chromium binary."
        )
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=binary,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield context
        context.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackWebhook:
    """A collaboration webhook on 127.0.0.1 that fails its first `failures` posts."""

    def __init__(self, failures: int = 0) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.failures = failures
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                failed = len(hook.bodies) <= hook.failures
                self.send_response(503 if failed else 200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def make_webhook():
    """Start loopback webhooks (`make_webhook(failures=1)`); all stop after the test."""
    started: list[LoopbackWebhook] = []

    def make(failures: int = 0) -> LoopbackWebhook:
        hook = LoopbackWebhook(failures)
        started.append(hook)
        return hook

    yield make
    for hook in started:
        hook.close()
