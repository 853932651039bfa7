"""Context through the HTTP API: scenarios, notifications, events and cases.

The real router, classifier and embedded context store (SQLite, seeded) in
one process behind the FastAPI app; each test gets its own decision store
and context store, so events here change nothing elsewhere.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from features.scenarios import ContextScenario, context_scenarios
from monitoring.cases import CaseStore
from monitoring.governance import GovernanceLog
from monitoring.store import open_store
from serving.app import create_api
from serving.auth import KeyRing, hash_key
from serving.local import InProcessBackend

pytestmark = pytest.mark.integration

SCENARIOS = context_scenarios()
WEBHOOK_ENV = "SWITCHBOARD_EXECUTIVE_WEBHOOK_URL"


@pytest.fixture
def webhook(make_webhook: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    hook = make_webhook(failures=1)
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    return hook


@pytest.fixture
def own_settings(champion_settings: Any, tmp_path: Path) -> Any:
    return champion_settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'decisions.db'}",
            "context_store_url": f"sqlite:///{tmp_path / 'context.db'}",
            # These tests are about what rules make of the context; a first
            # request on a busy 2-core runner can miss 150 ms (seen once), and
            # the budget has tests of its own (test_enrichment.py).
            "enrichment_budget_ms": 2000,
        }
    )


@pytest.fixture
def client(own_settings: Any, webhook: Any) -> Iterator[TestClient]:
    backend = InProcessBackend(own_settings)
    with TestClient(create_api(backend, own_settings, KeyRing([]))) as test_client:
        yield test_client
    backend.close()


def route(client: TestClient, ticket: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/route", json=ticket)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _case(client: TestClient, ticket_id: str) -> Any:
    response = client.get(f"/v1/cases/{ticket_id}")
    return response.json()["case"] if response.status_code == 200 else None


def wait_for(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize(
    "scenario", [pytest.param(s, id=name) for name, s in SCENARIOS.items()]
)
def test_each_context_scenario_routes_over_http_with_the_embedded_store(
    client: TestClient, scenario: ContextScenario
) -> None:
    decision = route(client, scenario.ticket)

    assert decision["queue"] == scenario.expected_queue
    assert decision["escalation"] == scenario.expected_escalation
    assert decision["notify"] == list(scenario.expected_notify)
    assert decision["context_sources_missing"] == []
    if scenario.expected_priority:
        assert decision["priority"] == scenario.expected_priority
    if scenario.expected_rule_id:
        assert decision["context_rule_id"] == scenario.expected_rule_id
        assert decision["context_effect"] in {scenario.expected_effect, "confirm"}


def test_an_executive_escalation_notifies_the_webhook_and_records_it(
    client: TestClient, webhook: Any, own_settings: Any
) -> None:
    scenario = SCENARIOS["strategic_production_impact"]
    decision = route(client, scenario.ticket)

    store = open_store(own_settings)
    governance = GovernanceLog(store)
    rows = wait_for(lambda: governance.notifications(scenario.ticket["id"]))
    store.close()

    assert [(r["target"], r["status"], r["attempts"]) for r in rows] == [
        ("executive-bridge", "delivered", 2)
    ]
    assert rows[0]["decision_id"] == decision["decision_id"]
    assert webhook.bodies[-1]["escalation"] == "executive"
    assert "body" not in webhook.bodies[-1]  # ids and routing only, no text


def test_an_invoice_paid_event_reroutes_the_open_ticket_it_rested_on(
    client: TestClient, own_settings: Any
) -> None:
    scenario = SCENARIOS["expansion_unpaid_invoice_hold"]
    first = route(client, scenario.ticket)
    store = open_store(own_settings)
    cases = CaseStore(store)
    wait_for(lambda: cases.get(scenario.ticket["id"]))

    response = client.post(
        "/v1/events/context",
        json={"event_id": "ev-1", "kind": "invoice_paid", "account_id": "acct_500103"},
    )

    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["open_cases"] == 1
    [redecided] = outcome["redecided"]
    assert (redecided["from_queue"], redecided["to_queue"]) == (
        "collections",
        "revenue_operations",
    )
    case = cases.get(scenario.ticket["id"])
    assert case is not None and case.queue == "revenue_operations"
    rerouted = [e for e in cases.events(case.ticket_id) if e["kind"] == "rerouted"]
    cause = rerouted[-1]["payload"]["cause"]
    assert (cause["event_id"], cause["event_kind"]) == ("ev-1", "invoice_paid")
    assert (cause["from_queue"], cause["to_queue"]) == (
        "collections",
        "revenue_operations",
    )
    stored = store.get(redecided["decision_id"])
    assert stored is not None and stored["path"] == "http"
    assert stored["request_id"] == "event:ev-1"
    assert first["decision_id"] != redecided["decision_id"]
    store.close()


def test_a_closed_incident_redecides_the_tickets_in_its_region(
    client: TestClient,
) -> None:
    ticket = SCENARIOS["strategic_production_impact"].ticket
    first = route(client, ticket)
    wait_for(lambda: _case(client, ticket["id"]))

    response = client.post(
        "/v1/events/context",
        json={
            "event_id": "ev-5",
            "kind": "incident_closed",
            "product": "Workspace",
            "region": "eu-west-1",
            "facts": {"incident_id": "INC-4411"},
        },
    )

    assert response.status_code == 200, response.text
    [redecided] = response.json()["redecided"]
    assert redecided["ticket_id"] == ticket["id"]
    assert (first["priority"], first["escalation"]) == ("P1", "executive")
    assert redecided["to_priority"] != "P1"


def test_an_incident_opening_escalates_an_open_strategic_ticket(
    client: TestClient,
) -> None:
    ticket = {**SCENARIOS["strategic_production_impact"].ticket, "id": "T-calm"}
    incident = {"product": "Workspace", "region": "eu-west-1"}
    closed = client.post(
        "/v1/events/context",
        json={
            "event_id": "ev-6",
            "kind": "incident_closed",
            **incident,
            "facts": {"incident_id": "INC-4411"},
        },
    )
    calm = route(client, ticket)
    wait_for(lambda: _case(client, ticket["id"]))

    opened = client.post(
        "/v1/events/context",
        json={
            "event_id": "ev-7",
            "kind": "incident_opened",
            **incident,
            "facts": {"incident_id": "INC-5000", "severity": "critical", **incident},
        },
    )

    assert closed.status_code == 200 and opened.status_code == 200, opened.text
    assert (calm["priority"], calm["notify"]) == ("P2", [])
    [redecided] = opened.json()["redecided"]
    assert (redecided["ticket_id"], redecided["to_priority"]) == ("T-calm", "P1")
    case = _case(client, ticket["id"])
    assert case["priority"] == "P1"


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(
            {"kind": "invoice_paid", "product": "p", "region": "r"}, id="no-account"
        ),
        pytest.param(
            {"kind": "invoice_paid", "account_id": "a", "facts": {"colour": "red"}},
            id="unknown-fact",
        ),
        pytest.param(
            {"kind": "incident_opened", "product": "p", "region": "r"},
            id="incident-without-id",
        ),
    ],
)
def test_an_event_whose_facts_cannot_apply_gets_422(
    client: TestClient, event: dict[str, Any]
) -> None:
    response = client.post("/v1/events/context", json={"event_id": "ev-x", **event})

    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("invalid context event")


def test_a_resolution_keeps_the_time_the_helpdesk_gave(client: TestClient) -> None:
    ticket = SCENARIOS["expansion_seat_mismatch"].ticket
    route(client, ticket)
    wait_for(lambda: _case(client, ticket["id"]))

    response = client.post(
        f"/v1/cases/{ticket['id']}",
        json={"status": "resolved", "resolved_at": "2026-06-18T10:00:00"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["resolved_at"].startswith("2026-06-18T10:00:00")


def test_an_event_for_another_account_redecides_nothing(
    client: TestClient,
) -> None:
    ticket = SCENARIOS["expansion_unpaid_invoice_hold"].ticket
    route(client, ticket)
    wait_for(lambda: _case(client, ticket["id"]))

    response = client.post(
        "/v1/events/context",
        json={"event_id": "ev-2", "kind": "invoice_paid", "account_id": "acct_500101"},
    )

    assert response.status_code == 200
    assert (response.json()["open_cases"], response.json()["redecided"]) == (0, [])


def test_the_same_event_twice_redecides_once(client: TestClient) -> None:
    ticket = SCENARIOS["expansion_unpaid_invoice_hold"].ticket
    route(client, ticket)
    wait_for(lambda: _case(client, ticket["id"]))
    event = {"event_id": "ev-3", "kind": "invoice_paid", "account_id": "acct_500103"}

    first = client.post("/v1/events/context", json=event).json()
    second = client.post("/v1/events/context", json=event).json()

    assert len(first["redecided"]) == 1
    assert second["redecided"] == []


def test_a_bad_event_gets_422_naming_each_field(client: TestClient) -> None:
    response = client.post(
        "/v1/events/context", json={"kind": "Invoice Paid!", "account_id": "a"}
    )

    assert response.status_code == 422
    fields = {problem["field"] for problem in response.json()["problems"]}
    assert {"event_id", "kind"} <= fields
    assert response.json()["message"].startswith("invalid context event")


def test_case_status_changes_are_recorded_and_shown(client: TestClient) -> None:
    ticket = SCENARIOS["expansion_seat_mismatch"].ticket
    route(client, ticket)
    wait_for(lambda: _case(client, ticket["id"]))

    paused = client.post(
        f"/v1/cases/{ticket['id']}", json={"status": "waiting_on_customer"}
    )
    shown = client.get(f"/v1/cases/{ticket['id']}")

    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "waiting_on_customer"
    assert shown.status_code == 200
    kinds = [event["kind"] for event in shown.json()["events"]]
    assert kinds[0] == "opened" and "status" in kinds


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param("/v1/cases/no-such-ticket", {"status": "open"}, 404, id="unknown"),
        pytest.param("/v1/cases/x", {"status": "asleep"}, 422, id="bad-status"),
        pytest.param("/v1/cases/x", {}, 422, id="nothing-to-change"),
    ],
)
def test_bad_case_updates_get_a_clear_4xx(
    client: TestClient, path: str, body: dict[str, Any], status: int
) -> None:
    response = client.post(path, json=body)

    assert response.status_code == status
    assert response.json()["message"]


def test_events_need_the_events_scope(own_settings: Any) -> None:
    keys = KeyRing.load(None, f"router:{hash_key('route-key')}:route")
    backend = InProcessBackend(own_settings.model_copy(update={"enrichment": "off"}))
    api = TestClient(create_api(backend, own_settings, keys))
    event = {"event_id": "ev-4", "kind": "invoice_paid", "account_id": "acct_1"}

    response = api.post(
        "/v1/events/context", json=event, headers={"X-API-Key": "route-key"}
    )
    backend.close()

    assert response.status_code == 403
    assert "events" in response.json()["message"]


class ContextSources:
    """HTTP context sources on loopback: CRM answers, billing hangs,
    entitlements fails, identity fails (its breaker trips), telemetry answers."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source = self.path.strip("/").split("/")[0].split("?")[0]
                if source == "billing":
                    time.sleep(3)
                if source in {"entitlements", "identity"}:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = {
                    "crm": {"tier": "strategic", "is_strategic": True},
                    "billing": {},
                    "telemetry": {"open_incidents": []},
                }[source]
                data = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the hanging source's caller gave up long ago

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def config(self, path: Path) -> Path:
        sources = {
            source: {
                "url_template": f"{self.base}/{source}/{{account_id}}",
                "timeout_s": 1.0,
                "retries": 0,
                "breaker": {"failure_threshold": 1, "reset_after_s": 600},
            }
            for source in ("crm", "billing", "entitlements", "identity", "telemetry")
        }
        # Only identity's breaker trips at once; billing keeps timing out.
        sources["billing"]["breaker"] = {"failure_threshold": 5, "reset_after_s": 600}
        sources["telemetry"]["url_template"] = (
            f"{self.base}/telemetry?product={{product}}&region={{region}}"
        )
        path.write_text(json.dumps({"sources": sources}))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_slow_failing_and_broken_sources_never_fail_or_delay_a_ticket(
    own_settings: Any, tmp_path: Path
) -> None:
    sources = ContextSources()
    settings = own_settings.model_copy(
        update={
            "enrichment": "http",
            "enrichment_budget_ms": 150,
            "connectors_path": sources.config(tmp_path / "connectors.json"),
        }
    )
    backend = InProcessBackend(settings)
    client = TestClient(create_api(backend, settings, KeyRing([])))
    tickets = [
        {**SCENARIOS["strategic_production_impact"].ticket, "id": f"T-slow-{n}"}
        for n in range(2)
    ]

    try:
        timed = []
        for ticket in tickets:
            started = time.perf_counter()
            timed.append((route(client, ticket), time.perf_counter() - started))
        second_case = wait_for(
            lambda: client.get("/v1/cases/T-slow-1").json().get("case")
        )
    finally:
        backend.close()
        sources.close()

    for decision, elapsed_s in timed:
        # A bound, not a benchmark: the billing source sleeps 3 s.
        assert elapsed_s < 2.0
        assert decision["context_sources_missing"] == [
            "billing",
            "entitlements",
            "identity",
        ]
        assert set(decision["context_sources_answered"]) == {"crm", "telemetry"}
        assert any("context sources missing" in r for r in decision["reasons"])
    outcomes = {
        source: status["outcome"]
        for source, status in second_case["context"]["sources"].items()
    }
    assert outcomes["billing"] == "timeout"
    assert outcomes["identity"] == "circuit_open"
    assert outcomes["crm"] == "ok"
