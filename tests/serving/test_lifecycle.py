"""Model lifecycle and process behaviour: failed loads, binding, clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from serving.local import LOOPBACK, bind_host
from serving.settings import ServingSettings

pytestmark = pytest.mark.integration


def test_without_api_keys_the_service_binds_loopback_whatever_was_asked(tmp_path):
    settings = ServingSettings(home=tmp_path, host="0.0.0.0")

    assert bind_host(settings) == LOOPBACK


def test_with_api_keys_the_requested_host_is_kept(tmp_path):
    from serving.auth import hash_key

    settings = ServingSettings(
        home=tmp_path, host="0.0.0.0", api_keys=f"desk:{hash_key('k')}:route"
    )

    assert bind_host(settings) == "0.0.0.0"


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory):
    """A registry with a champion trained on 400 generated tickets."""
    from features.sample_data import generate_frame
    from training.service import DataOptions, promote_version, train

    home = tmp_path_factory.mktemp("lifecycle")
    data = home / "tickets.parquet"
    generate_frame(400, seed=17).to_parquet(data)
    settings = ServingSettings(home=home, port=_free_port())
    gates = home / "gates.yaml"
    gates.write_text(
        "min_macro_f1: 0.0\nmax_ece: 1.0\nmin_coverage: 0.0\nmax_regression: 1.0\n"
    )
    settings = settings.model_copy(update={"gates_path": gates})
    first = train(settings, data, DataOptions())
    promote_version(settings, first["model_version"], reason="first")
    return settings, data


def test_a_champion_that_fails_to_load_leaves_the_old_version_serving(small_registry):
    from serving.classifier import ClassifierCore
    from training.service import DataOptions, promote_version, train

    settings, data = small_registry
    core = ClassifierCore(settings)
    assert core.refresh()
    serving_version = core.loaded.version.version

    broken = train(settings, data, DataOptions())
    _remove_head_weights(settings, broken["model_version"])
    promote_version(settings, broken["model_version"], reason="broken on purpose")

    assert core.refresh() is False
    assert core.loaded.version.version == serving_version
    assert "failed" in core.last_error
    assert core.classify(["invoice is wrong"])[0]["model_version"] == serving_version


def test_decisions_queued_for_the_store_are_written_when_the_backend_stops(
    small_registry, tmp_path
):
    import asyncio

    from features.schema import parse_ticket
    from monitoring.store import open_store
    from serving.local import InProcessBackend

    settings = small_registry[0].model_copy(
        update={"database_url": None, "home": tmp_path}
    )
    backend = InProcessBackend(settings)
    tickets = [
        parse_ticket(
            {"id": f"Q-{i}", "channel": "api", "subject": "refund", "body": "x"}
        )
        for i in range(50)
    ]

    asyncio.run(backend.route(tickets, "req-stop"))
    backend.close()

    store = open_store(settings)
    assert sum(store.has(f"Q-{i}", "req-stop") for i in range(50)) == 50
    store.close()


def test_serve_command_answers_then_stops_on_sigterm_leaving_nothing_behind(
    small_registry,
):
    settings, _ = small_registry
    port = _free_port()
    env = {
        **os.environ,
        "SWITCHBOARD_HOME": str(settings.home),
        "SWITCHBOARD_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_ready(port, timeout_s=180)
        ticket = {
            "id": "S-1",
            "channel": "email",
            "subject": "Refund",
            "body": "Charged twice",
        }
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/route", json=ticket, timeout=30
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)

    assert code == 0
    assert _port_is_free(port)
    time.sleep(2)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no Ray process of that session is left
    # The versions it served with are on the record, put down to nobody.
    from monitoring.governance import GovernanceLog
    from monitoring.store import open_store

    store = open_store(settings)
    changes = GovernanceLog(store).config_changes()
    store.close()
    assert {row["kind"] for row in changes} >= {"rules", "automation", "sla"}
    assert {row["changed_by"] for row in changes} == {"unrecorded"}


def _remove_head_weights(settings, version: str) -> None:
    """Break a registered version for real: delete its stored head weights."""
    from pathlib import Path

    from training.registry import configure_mlflow

    client = configure_mlflow(settings)
    source = client.get_model_version(settings.registered_model, version).source
    logged = client.get_logged_model(source.removeprefix("models:/"))
    root = Path(logged.artifact_location.removeprefix("file://"))
    removed = [path.unlink() for path in root.rglob("head.npz")]
    assert removed, f"no head weights under {root}"


def _wait_ready(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError("switchboard serve did not become ready")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
