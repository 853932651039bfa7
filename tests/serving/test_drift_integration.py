"""Drift on real Ray Serve: the DriftMonitor deployment switches routing to rules.

The application runs with a small drift window (40 decisions, a check every
second) so that one batch of foreign-language tickets fills it; the checks
run on the monitor's own thread, as in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from features.sample_data import LABEL_COLUMNS, generate_frame
from serving.local import deploy

pytestmark = pytest.mark.integration

WINDOW = 40


@pytest.fixture(scope="module")
def drift_settings(champion_settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("drift-serve")
    config = {
        "window_size": WINDOW,
        "min_window": WINDOW,
        "min_new_observations": WINDOW,
        "check_interval_s": 1,
        "clean_checks_to_recover": 2,
        "embedding_plot": False,
        "write_html": False,
        "reports_dir": str(folder / "drift-reports"),
    }
    path = folder / "drift.yaml"
    path.write_text(yaml.safe_dump(config))
    return champion_settings.model_copy(
        update={
            "database_url": f"sqlite:///{folder / 'decisions.db'}",
            "drift_path": path,
        }
    )


@pytest.fixture(scope="module")
def service(ray_cluster, drift_settings):
    deploy(drift_settings)
    base = f"http://127.0.0.1:{drift_settings.port}"
    with httpx.Client(base_url=base, timeout=60) as client:
        _wait_ready(client)
        yield client
    from ray import serve

    serve.shutdown()  # frees the CPUs other modules' Ray jobs need


@pytest.fixture(scope="module")
def tickets() -> dict[str, list[dict[str, Any]]]:
    foreign = generate_frame(5000, seed=23)
    foreign = foreign[foreign["language"] != "en"].head(WINDOW)
    clean = generate_frame(3 * WINDOW, seed=11)
    return {"foreign": _as_tickets(foreign), "clean": _as_tickets(clean)}


def test_forced_drift_routes_by_rules_until_released_and_is_audited(
    service, drift_settings, tickets
) -> None:
    probes = iter(tickets["clean"])
    forced = service.post(
        "/v1/admin/drift",
        json={"state": "drift", "actor": "dana", "reason": "incident 12"},
    )
    try:
        during = _route_until(
            service, probes, lambda d: d["fallback_reason"] == "drift"
        )
    finally:
        service.post(
            "/v1/admin/drift",
            json={"state": "auto", "actor": "dana", "reason": "incident 12 over"},
        )
    after = _route_until(service, probes, lambda d: d["fallback_reason"] != "drift")

    assert forced.json()["forced"]["actor"] == "dana"
    assert (during["mode"], during["fallback_reason"]) == ("rules", "drift")
    assert during["top_queues"], "shadow keeps the model's proposal"
    assert after["fallback_reason"] != "drift"
    from monitoring.store import open_store

    with open_store(drift_settings) as store:
        forces = [e["payload"] for e in store.events("drift_force")]
    assert [(f["target"], f["actor"]) for f in forces[-2:]] == [
        ("drift", "dana"),
        ("auto", "dana"),
    ]


def test_foreign_tickets_switch_routing_to_rules_and_clean_ones_switch_it_back(
    service, tickets
) -> None:
    clean = tickets["clean"]

    service.post("/v1/route/batch", json={"tickets": tickets["foreign"]})
    drifted = _drift_until(service, lambda s: s["state"] == "drift")
    during = _route_until(
        service, iter(clean[:10]), lambda d: d["fallback_reason"] == "drift"
    )
    states = []
    for start in (10, 10 + WINDOW):
        seen = service.get("/v1/drift").json()["last_check"]["checked_at"]
        service.post("/v1/route/batch", json={"tickets": clean[start : start + WINDOW]})
        checked = _drift_until(service, _checked_after(seen))
        states.append((checked["last_check"]["is_drift"], checked["state"]))
    recovered = service.get("/v1/drift").json()
    after = _route_until(
        service, iter(clean[10 + 2 * WINDOW :]), lambda d: d["mode"] != "rules"
    )

    evidence = drifted["last_change"]["evidence"]["check"]
    assert evidence["is_drift"] and evidence["embedding_score"] is not None
    assert drifted["last_change"]["cause"] == "check"
    assert (during["mode"], during["fallback_reason"]) == ("rules", "drift")
    assert states == [(False, "drift"), (False, "model")], "two clean checks"
    assert recovered["last_change"]["previous"] == "drift"
    assert after["fallback_reason"] is None
    exported = service.get("/metrics").text
    assert 'switchboard_drift_state{state="model"} 1.0' in exported
    assert 'switchboard_drift_checks_total{outcome="drift"}' in exported


def _as_tickets(frame: Any) -> list[dict[str, Any]]:
    columns = ["id", "channel", "subject", "body"]
    rows = frame.drop(columns=list(LABEL_COLUMNS))[columns]
    return [
        {**row, "channel": "email" if row["channel"] == "alert" else row["channel"]}
        for row in rows.to_dict("records")
    ]


def _checked_after(checked_at: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status["last_check"]["checked_at"] > checked_at


def _route_until(
    client: httpx.Client,
    probes: Any,
    accept: Callable[[dict[str, Any]], bool],
    timeout_s: float = 30,
) -> dict[str, Any]:
    # The router re-reads the drift state in the background at most every
    # second, so the first decisions after a change may still show the old one.
    deadline = time.monotonic() + timeout_s
    while True:
        decision = client.post("/v1/route", json=next(probes)).json()
        if accept(decision) or time.monotonic() > deadline:
            return decision
        time.sleep(0.5)


def _drift_until(
    client: httpx.Client,
    accept: Callable[[dict[str, Any]], bool],
    timeout_s: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get("/v1/drift").json()
        if status.get("last_check") and accept(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"drift status never matched: {status}")
        time.sleep(0.5)


def _wait_ready(client: httpx.Client, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("service did not become ready")
