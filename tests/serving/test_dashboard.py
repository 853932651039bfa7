"""The operations dashboard in headless Chromium against a running service.

The service is uvicorn over `create_api` on 127.0.0.1 and a free port, with
the in-process backend (the real router and drift monitor; no champion, so
tickets go by rules) and API keys configured. Its decision store is seeded
with hand-built decisions, feedback and drift-state events, and two tickets
are routed through the API. The page is then driven like an operator would:
enter the key, read the charts, change the range, force the state, refresh.

Every chart must hold what the JSON it was drawn from says, and draw it; no
request may leave the service's origin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from monitoring.store import DecisionRecord, DecisionStore, open_store
from serving.app import create_api
from serving.auth import KeyRing, hash_key
from serving.settings import ServingSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

READ_KEY, ADMIN_KEY = "ops-read-key", "ops-admin-key"
KEYS = f"ops:{hash_key(READ_KEY)}:route,lead:{hash_key(ADMIN_KEY)}:admin"
NOW = datetime.now(UTC).replace(microsecond=0)
CHARTS = (
    "serviceState",
    "queueAging",
    "escalationLatency",
    "reassignments",
    "fallbackReasons",
    "exceptions",
    "groups",
)

# (ticket, channel, queue, mode, fallback reason, priority, decided hours ago)
DECISIONS = [
    ("T-1", "email", "billing_invoicing", "auto", None, "P3", 3.0),
    ("T-2", "email", "billing_invoicing", "auto", None, "P2", 5.0),
    ("T-3", "chat", "identity_access", "rules", "low_confidence", "P3", 4.2),
    ("T-4", "alert", "platform_operations", "rules", "drift", "P2", 3.5),
    ("T-5", "portal", "general_support", "rules", "drift", "P4", 2.5),
    ("T-6", "email", "security", "suggest", None, "P1", 1.2),
    ("T-OLD", "api", "integrations_api", "auto", None, "P3", 72.0),
    ("T-OLDEST", "portal", "general_support", "rules", "low_confidence", "P4", 480.0),
]
# What happened after routing; times are how long ago.
FEEDBACK: list[dict[str, Any]] = [
    {
        "ticket_id": "T-1",
        "final_queue": "billing_invoicing",
        "first_response_at": timedelta(hours=2.8),
        "resolved_at": timedelta(hours=1),
    },
    {
        "ticket_id": "T-2",
        "final_queue": "collections",
        "escalated_at": timedelta(hours=4),
    },
    {
        "ticket_id": "T-3",
        "final_queue": "provisioning_entitlements",
        "override_by": "ana",
        "override_reason": "entitlement, not login",
        "escalated_at": timedelta(hours=3.75),
    },
    {
        "ticket_id": "T-4",
        "final_queue": "security",
        "source_system": "alertmanager",
        "escalated_at": timedelta(hours=3.25),
    },
    {
        "ticket_id": "T-OLD",
        "final_queue": "billing_invoicing",
        "escalated_at": timedelta(days=2.9),
    },
]
# Drift-state history: model before the range, drift 6 h ago, model 2 h ago.
STATE_CHANGES = [
    (timedelta(days=10), "drift", "model", "check"),
    (timedelta(hours=6), "model", "drift", "check"),
    (timedelta(hours=2), "drift", "model", "check"),
]
TICKETS = [
    {"id": "L-1", "channel": "portal", "subject": "Invoice VAT", "body": "VAT wrong."},
    {"id": "L-2", "channel": "chat", "subject": "Locked out", "body": "MFA reset."},
]

# Each chart as the page holds it: labels, datasets, and how many of each
# dataset's elements were drawn (a bar with length, a line point placed).
CHART_STATE_JS = """
(name) => {
  const chart = window.switchboardDashboard.charts[name];
  const across = chart.options.indexAxis === "y";
  const isDrawn = (meta, element) => {
    if (meta.type === "bar") {
      const length = across ? element.x - element.base : element.y - element.base;
      return Math.abs(length) > 0.5;
    }
    return !element.skip && Number.isFinite(element.x) && Number.isFinite(element.y);
  };
  return {
    labels: chart.data.labels || [],
    datasets: chart.data.datasets.map((dataset, index) => {
      const meta = chart.getDatasetMeta(index);
      const drawn = meta.data.filter((element) => isDrawn(meta, element)).length;
      return { label: dataset.label, data: dataset.data, drawn: drawn };
    }),
  };
}
"""
PAINTED_PIXELS_JS = """
(id) => {
  const canvas = document.getElementById(id);
  const context = canvas.getContext("2d");
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  let painted = 0;
  for (let i = 3; i < pixels.data.length; i += 4) {
    if (pixels.data[i] > 0) painted += 1;
  }
  return painted;
}
"""


@pytest.fixture(scope="module")
def browser(chromium: Any) -> Any:
    """The shared headless Chromium context (tests/conftest.py)."""
    return chromium


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The API with keys, over the in-process backend, with a seeded store."""
    from serving.local import InProcessBackend

    home = tmp_path_factory.mktemp("dashboard-home")
    settings = ServingSettings(home=home, api_keys=KEYS)
    with open_store(settings) as store:
        _seed(store)  # before the drift monitor starts, so it restores the state
    backend = InProcessBackend(settings)
    api = create_api(backend, settings, KeyRing.load(None, KEYS))
    try:
        with _running(api) as base_url:
            client = httpx.Client(base_url=base_url, timeout=30)
            routed = client.post(
                "/v1/route/batch",
                json={"tickets": TICKETS},
                headers={"X-API-Key": READ_KEY},
            )
            assert routed.status_code == 200, routed.text
            _wait_until(lambda: api.state.store.get().count() >= 10, "routed tickets")
            yield {"url": base_url, "client": client}
            client.close()
    finally:
        backend.close()
        api.state.store.close()


def test_charts_show_the_process_metrics_and_follow_the_range_and_state(
    browser: Any, service: dict[str, Any]
) -> None:
    page, outside, errors = _open(browser, service["url"])

    _wait_for(page, "needs-key")
    message = page.locator("#message").text_content() or ""
    assert "API key" in message

    page.fill("#api-key", READ_KEY)
    page.click("#key-form button[type=submit]")
    _wait_for(page, "ready", loads=1)
    report = page.evaluate("window.switchboardDashboard.report")
    served = _metrics(service["client"], "since=24h&by=queue")
    assert report["overall"]["tickets"] == served["overall"]["tickets"] == 8
    assert report["queue_aging"] == served["queue_aging"]
    assert report["exceptions_by_source"] == served["exceptions_by_source"]
    assert report["service_state"] == served["service_state"]
    assert _assert_charts_match(page, report) == set(CHARTS)
    assert set(report["series"]["fallback_reasons"]["values"]) == {
        "drift",
        "low_confidence",
        "no_model",
    }
    assert _state_levels(page) == [0, 1, 0, 0]  # model, drift 6 h ago, model
    assert page.get_attribute("#state-badge", "data-state") == "model"
    assert page.evaluate("sessionStorage.getItem('switchboard.apiKey')") == READ_KEY
    assert page.evaluate("localStorage.length") == 0

    page.click("button[data-range='7d']")
    _wait_for(page, "ready", loads=2)
    week = page.evaluate("window.switchboardDashboard")
    assert "since=7d" in week["query"]
    assert week["report"]["overall"]["tickets"] == 9  # T-OLD, three days ago
    assert week["report"]["series"]["fallback_reasons"]["bucket"] == "day"
    assert "integrations_api" in _chart(page, "groups")["labels"]
    assert _assert_charts_match(page, week["report"]) == set(CHARTS)

    forced = service["client"].post(
        "/v1/admin/drift",
        json={"state": "drift", "actor": "ops-lead", "reason": "vendor outage drill"},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert forced.status_code == 200, forced.text
    page.click("#refresh")
    _wait_for(page, "ready", loads=3)
    assert _state_levels(page) == [0, 1, 0, 1, 1]  # the forced change, now
    assert page.get_attribute("#state-badge", "data-state") == "rules"
    assert "ops-lead" in (page.locator("#drift-note").text_content() or "")
    assert "vendor outage drill" in (
        page.locator("#state-changes").text_content() or ""
    )

    since, until = NOW - timedelta(days=21), NOW - timedelta(days=19)
    page.fill("#range-from", since.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#range-to", until.strftime("%Y-%m-%dT%H:%M"))
    page.click("#custom-range button[type=submit]")
    _wait_for(page, "ready", loads=4)
    old = page.evaluate("window.switchboardDashboard.report")
    assert old["overall"]["tickets"] == 1  # T-OLDEST alone
    assert list(old["series"]["fallback_reasons"]["values"]) == ["low_confidence"]
    _assert_charts_match(page, old)

    assert outside == []
    assert errors == []
    page.close()


def test_without_keys_or_a_drift_endpoint_the_page_still_draws(
    browser: Any, tmp_path: Path
) -> None:
    settings = ServingSettings(home=tmp_path / "home")
    with open_store(settings) as store:
        _seed(store)
    api = create_api(_NoBackend(), settings, KeyRing([]))
    # A service from before GET /v1/drift existed.
    api.router.routes[:] = [
        route
        for route in api.router.routes
        if getattr(route, "path", "") != "/v1/drift"
    ]
    try:
        with _running(api) as base_url:
            page, outside, errors = _open(browser, base_url)
            _wait_for(page, "ready", loads=1)

            report = page.evaluate("window.switchboardDashboard.report")
            assert page.evaluate("window.switchboardDashboard.driftAvailable") is False
            assert _assert_charts_match(page, report) == set(CHARTS)
            note = page.locator("#drift-note").text_content() or ""
            assert "no drift endpoint" in note
            # The badge falls back to the last recorded change: model, 2 h ago.
            assert page.get_attribute("#state-badge", "data-state") == "model"
            assert outside == []
            assert errors == []
            page.close()
    finally:
        api.state.store.close()


def test_dashboard_assets_are_a_fixed_list_and_the_page_allows_only_its_origin(
    service: dict[str, Any],
) -> None:
    client = service["client"]

    page = client.get("/dashboard")
    script = client.get("/dashboard/assets/chart.umd.min.js")
    unknown = client.get("/dashboard/assets/..%2Fdashboard.py")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert script.status_code == 200
    assert script.text.startswith("/*!\n * Chart.js v4")
    assert unknown.status_code == 404


class _NoBackend:
    """A backend for a page that only reads the store: nothing to route."""

    async def route(self, tickets: list[Any], request_id: str) -> list[dict[str, Any]]:
        raise AssertionError("the dashboard must not route")

    async def model_info(self) -> dict[str, Any]:
        return {"state": "no_model"}

    async def drift_metrics(self) -> bytes:
        return b""


def _seed(store: DecisionStore) -> None:
    records = [
        DecisionRecord(
            {
                "decision_id": f"dec-{ticket}",
                "ticket_id": ticket,
                "queue": queue,
                "priority": priority,
                "mode": mode,
                "model_version": None if mode == "rules" else "7",
                "rule_set_version": "2026.11",
                "fallback_reason": reason,
                "decided_at": NOW - timedelta(hours=hours_ago),
            },
            f"seed-{ticket}",
            channel,
            "http",
        )
        for ticket, channel, queue, mode, reason, priority, hours_ago in DECISIONS
    ]
    store.append(records)
    events = [
        {
            "feedback_id": f"fb-{event['ticket_id']}",
            **{
                name: NOW - value if isinstance(value, timedelta) else value
                for name, value in event.items()
            },
        }
        for event in FEEDBACK
    ]
    store.append_feedback(events, "seed")
    for ago, previous, state, cause in STATE_CHANGES:
        at = NOW - ago
        payload = {
            "at": at.isoformat(),
            "previous": previous,
            "state": state,
            "cause": cause,
            "evidence": {"check": {"reasons": [f"seeded {state}"]}},
            "checked_state": state,
            "forced": None,
        }
        store.append_event("drift_state", payload, at=at)


@contextmanager
def _running(api: FastAPI) -> Iterator[str]:
    """uvicorn serving `api` on 127.0.0.1 and a port the OS picks."""
    config = uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard-uvicorn", daemon=True)
    thread.start()
    _wait_until(lambda: server.started or not thread.is_alive(), "uvicorn start")
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _open(browser: Any, base_url: str) -> tuple[Any, list[str], list[str]]:
    """A new tab on the dashboard; what it asked of other origins; its errors."""
    page = browser.new_page()
    page.set_default_timeout(20_000)
    outside: list[str] = []
    errors: list[str] = []

    def only_the_service(route: Any) -> None:
        if route.request.url.startswith(base_url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    def on_console(message: Any) -> None:
        # A 401 or 404 answer is logged by Chromium; the page handles both.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    page.route("**/*", only_the_service)
    page.on("console", on_console)
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base_url + "/dashboard")
    return page, outside, errors


def _wait_for(page: Any, status: str, loads: int = 0) -> None:
    page.wait_for_function(
        "([status, loads]) => window.switchboardDashboard"
        " && window.switchboardDashboard.status === status"
        " && window.switchboardDashboard.loads >= loads",
        arg=[status, loads],
    )


def _chart(page: Any, name: str) -> dict[str, Any]:
    return page.evaluate(CHART_STATE_JS, name)


def _assert_charts_match(page: Any, report: dict[str, Any]) -> set[str]:
    """Every chart holds the JSON's numbers and has drawn each non-zero one.

    Returns:
        The charts that drew something.
    """
    charts = {name: _chart(page, name) for name in CHARTS}
    series = report["series"]

    aging = charts["queueAging"]
    assert aging["labels"] == [row["queue"] for row in report["queue_aging"]]
    bands = list(report["queue_aging"][0]["open_by_age"]) if aging["labels"] else []
    assert [d["data"] for d in aging["datasets"]] == [
        [row["open_by_age"][band] for row in report["queue_aging"]] for band in bands
    ]

    fallbacks = charts["fallbackReasons"]
    reasons = series["fallback_reasons"]["values"]
    assert [d["label"] for d in fallbacks["datasets"]] == list(reasons)
    assert [d["data"] for d in fallbacks["datasets"]] == list(reasons.values())
    assert len(fallbacks["labels"]) == len(series["fallback_reasons"]["starts"])

    moves = {d["label"]: d["data"] for d in charts["reassignments"]["datasets"]}
    assert moves == series["reassignments"]["values"]

    latency = {d["label"]: d["data"] for d in charts["escalationLatency"]["datasets"]}
    values = series["escalation_latency"]["values"]
    assert latency["escalated tickets"] == values["escalated"]
    assert latency["mean (min)"] == [
        None if value is None else pytest.approx(value / 60)
        for value in values["mean_s"]
    ]

    exceptions = charts["exceptions"]
    rows = report["exceptions_by_source"]
    assert exceptions["labels"] == [row["source_system"] for row in rows]
    by_kind = {d["label"]: d["data"] for d in exceptions["datasets"]}
    assert by_kind == {
        kind: [row[kind] for row in rows]
        for kind in ("fallbacks", "overrides", "reassignments")
    }

    groups = charts["groups"]
    assert groups["labels"] == [group["group"] for group in report["groups"]]

    drawn = set()
    for name, chart in charts.items():
        assert chart["datasets"], f"{name} has no datasets"
        for dataset in chart["datasets"]:
            nonzero = sum(1 for value in dataset["data"] if _is_nonzero(value))
            assert dataset["drawn"] >= nonzero, (name, dataset["label"])
            if dataset["drawn"]:
                drawn.add(name)
    for canvas in (
        "chart-service-state",
        "chart-queue-aging",
        "chart-fallback-reasons",
        "chart-exceptions",
    ):
        assert page.evaluate(PAINTED_PIXELS_JS, canvas) > 500, canvas
    return drawn


def _state_levels(page: Any) -> list[int]:
    [dataset] = _chart(page, "serviceState")["datasets"]
    return [point["y"] for point in dataset["data"]]


def _is_nonzero(value: Any) -> bool:
    if isinstance(value, dict):  # a state point
        return True
    return value is not None and value != 0


def _metrics(client: httpx.Client, query: str) -> dict[str, Any]:
    response = client.get(
        f"/v1/metrics/process?{query}", headers={"X-API-Key": READ_KEY}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = 20
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
