"""Drift state and routing through the HTTP layer, in one process.

The real router, classifier and drift monitor cores; the Ray Serve test
(test_drift_integration) covers the same through deployment handles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from monitoring.drift import FORCE_EVENT, STATE_EVENT, DriftMonitorCore
from serving.app import create_api
from serving.auth import KeyRing, hash_key
from serving.drift_gate import LocalDrift
from serving.local import InProcessBackend
from serving.router import RouterCore

pytestmark = pytest.mark.integration

ROUTE_KEY = {"X-API-Key": "route-key"}
ADMIN_KEY = {"X-API-Key": "admin-key"}
BILLING = {
    "id": "T-BILL-7",
    "channel": "email",
    "subject": "Refund for a double charge",
    "body": "We were charged twice for the annual plan, please refund one charge.",
}


@pytest.fixture(scope="module")
def drift_settings(champion_settings, tmp_path_factory):
    """The champion's registry, with this module's own store and drift config."""
    folder = tmp_path_factory.mktemp("drift-routing")
    return champion_settings.model_copy(
        update={
            "database_url": f"sqlite:///{folder / 'decisions.db'}",
            "drift_path": _drift_config(folder, check_interval_s=3600),
        }
    )


@pytest.fixture(scope="module")
def backend(drift_settings):
    backend = InProcessBackend(drift_settings)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def client(backend, drift_settings):
    keys = KeyRing.load(
        None,
        f"desk:{hash_key('route-key')}:route,ops:{hash_key('admin-key')}:route+admin",
    )
    return TestClient(create_api(backend, drift_settings, keys))


@pytest.fixture(autouse=True)
def back_to_checks(backend):
    yield
    backend.drift.core.force("auto", "pytest", "reset between tests")


def test_forced_drift_routes_by_rules_and_keeps_the_model_in_shadow(
    client, backend
) -> None:
    forced = client.post(
        "/v1/admin/drift",
        json={"state": "drift", "actor": "dana", "reason": "vendor migration"},
        headers=ADMIN_KEY,
    )
    decision = client.post("/v1/route", json=BILLING, headers=ROUTE_KEY).json()
    status = client.get("/v1/drift", headers=ROUTE_KEY).json()
    exported = client.get("/metrics").text

    assert forced.status_code == 200 and forced.json()["state"] == "drift"
    assert (decision["mode"], decision["fallback_reason"]) == ("rules", "drift")
    assert decision["top_queues"][0]["queue"] == "billing_invoicing"
    assert any(r.startswith("drift shadow: model") for r in decision["reasons"])
    assert status["forced"]["actor"] == "dana"
    assert 'switchboard_drift_state{state="drift"} 1.0' in exported


def test_releasing_the_force_hands_routing_back_to_the_model(client, backend) -> None:
    client.post(
        "/v1/admin/drift",
        json={"state": "drift", "actor": "dana", "reason": "incident 7"},
        headers=ADMIN_KEY,
    )

    released = client.post(
        "/v1/admin/drift",
        json={"state": "auto", "actor": "dana", "reason": "incident 7 closed"},
        headers=ADMIN_KEY,
    )
    decision = client.post("/v1/route", json=BILLING, headers=ROUTE_KEY).json()

    assert released.json()["state"] == "model"
    assert decision["mode"] == "auto" and decision["fallback_reason"] is None
    store = backend.drift.core.store
    forces = [e["payload"] for e in store.events(FORCE_EVENT)]
    assert forces[-1]["actor"] == "dana" and forces[-1]["via"] == "ops"
    assert store.events(STATE_EVENT)[-1]["payload"]["cause"] == "force"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-key"),
        pytest.param(ROUTE_KEY, 403, id="route-key"),
    ],
)
def test_forcing_the_drift_state_needs_the_admin_scope(client, headers, status):
    response = client.post(
        "/v1/admin/drift",
        json={"state": "drift", "actor": "eve", "reason": "curious"},
        headers=headers,
    )

    assert response.status_code == status
    assert client.get("/v1/drift", headers=ROUTE_KEY).json()["state"] == "model"


def test_a_force_without_a_reason_is_refused(client) -> None:
    response = client.post(
        "/v1/admin/drift",
        json={"state": "drift", "actor": "dana", "reason": ""},
        headers=ADMIN_KEY,
    )

    assert response.status_code == 422


def test_model_run_decisions_reach_the_drift_window(client, backend) -> None:
    before = backend.drift.core.status()["window"]["observations"]
    tickets = [{**BILLING, "id": f"T-W-{i}"} for i in range(5)]

    client.post("/v1/route/batch", json={"tickets": tickets}, headers=ROUTE_KEY)

    status = backend.drift.core.status()
    assert status["window"]["observations"] == before + 5
    assert status["model_version"] == "1"


def test_without_shadow_drift_decisions_carry_no_model_proposal(
    backend, drift_settings, tmp_path
) -> None:
    import asyncio

    from features.schema import parse_ticket
    from monitoring.drift import load_drift_config

    path = _drift_config(tmp_path, shadow=False)
    core = DriftMonitorCore(drift_settings, load_drift_config(path))
    core.force("drift", "dana", "vendor migration")
    router = RouterCore.from_settings(drift_settings)

    async def classify(texts: list[str]) -> list[dict[str, Any]]:
        return backend.classifier.classify(texts)

    [decision] = asyncio.run(
        router.route([parse_ticket(BILLING)], classify, 5.0, drift=LocalDrift(core))
    )

    assert (decision.mode, decision.fallback_reason) == ("rules", "drift")
    assert decision.top_queues == []
    assert not any(r.startswith("drift shadow") for r in decision.reasons)


def _drift_config(folder: Path, **changes: Any) -> Path:
    values = {
        "window_size": 40,
        "min_window": 40,
        "min_new_observations": 40,
        "reports_dir": str(folder / "drift-reports"),
        "write_html": False,
        "embedding_plot": False,
        **changes,
    }
    path = folder / "drift.yaml"
    path.write_text(yaml.safe_dump(values))
    return path
