"""Feedback and process-metrics endpoints through the FastAPI app, in process.

These endpoints never touch the router or the classifier, so the app is
built over a backend that refuses to route: no model or encoder is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitoring.store import DecisionRecord
from serving.app import create_api
from serving.auth import KeyRing, hash_key
from serving.settings import ServingSettings

NOW = datetime.now(UTC).replace(microsecond=0)


class NoRouting:
    """A backend for endpoints that must not need one."""

    async def route(self, tickets: list[Any], request_id: str) -> list[dict[str, Any]]:
        raise AssertionError("feedback endpoints must not route")

    async def model_info(self) -> dict[str, Any]:
        return {"state": "no_model"}

    async def reload(self) -> dict[str, Any]:
        return {}

    async def rules_info(self) -> dict[str, Any]:
        return {}


def _event(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "feedback_id": f"fb-{number}",
        "ticket_id": f"T-{number}",
        "final_queue": "security",
        **fields,
    }


@pytest.fixture
def serving_settings(tmp_path: Path) -> ServingSettings:
    return ServingSettings(home=tmp_path / "home", process_metrics_refresh_s=0)


@pytest.fixture
def client(serving_settings: ServingSettings) -> Iterator[TestClient]:
    api = create_api(NoRouting(), serving_settings, KeyRing([]))
    with TestClient(api) as test_client:
        yield test_client
    api.state.store.close()


def test_one_event_is_stored_and_returned(client: TestClient) -> None:
    event = _event(1, override_by="ana", override_reason="wrong team")

    response = client.post("/v1/feedback", json=event)

    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["stored"], body["duplicates"]) == (1, 1, 0)
    [event] = body["events"]
    assert event["status"] == "stored"
    assert event["override_by"] == "ana"
    assert event["occurred_at"] is not None  # stamped when not given
    store = client.app.state.store.get()
    [row] = store.feedback_for_ticket("T-1")
    assert row["submitted_by"] == "anonymous"
    assert row["final_queue"] == "security"


@pytest.mark.parametrize(
    "shape",
    [pytest.param("list", id="list"), pytest.param("events", id="events-object")],
)
def test_many_events_in_one_call_and_resent_ones_are_duplicates(
    client: TestClient, shape: str
) -> None:
    events = [_event(1), _event(2, resolved_at="2026-12-01T12:00:00Z")]
    body: Any = events if shape == "list" else {"events": events}
    client.post("/v1/feedback", json=[events[0]])

    response = client.post("/v1/feedback", json=body)

    assert response.status_code == 200
    answer = response.json()
    assert (answer["stored"], answer["duplicates"]) == (1, 1)
    assert [event["status"] for event in answer["events"]] == ["duplicate", "stored"]


def test_invalid_feedback_gets_422_listing_every_invalid_field(
    client: TestClient,
) -> None:
    events = [
        _event(1, final_queue="billing", priority="P7"),
        _event(2, override_by="ana", opened_at="not a time"),
        {"ticket_id": "T-3", "final_queue": "security"},
    ]

    response = client.post("/v1/feedback", json=events)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidInputError"
    problems = {problem["field"]: problem for problem in body["problems"]}
    assert set(problems) == {
        "events.0.final_queue",
        "events.0.priority",
        "events.1.opened_at",
        "events.2.feedback_id",
    }
    assert "billing_invoicing" in problems["events.0.final_queue"]["limit"]
    assert problems["events.0.priority"]["limit"] == "P1, P2, P3, P4"
    store = client.app.state.store.get()
    assert list(store.iter_feedback()) == []  # one bad event stores none


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(b"{not json", "body", id="not-json"),
        pytest.param(b"[]", "events", id="empty-list"),
        pytest.param(b'{"events": "x"}', "events", id="events-not-a-list"),
        pytest.param(b"42", "events.0.event", id="not-an-object"),
    ],
)
def test_malformed_feedback_bodies_get_422_not_500(
    client: TestClient, content: bytes, field: str
) -> None:
    response = client.post(
        "/v1/feedback", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert [problem["field"] for problem in response.json()["problems"]] == [field]


def test_feedback_needs_the_feedback_scope_and_metrics_the_route_scope(
    serving_settings: ServingSettings,
) -> None:
    keys = KeyRing.load(
        None,
        f"desk:{hash_key('desk-key')}:route,hook:{hash_key('hook-key')}:feedback",
    )
    api = create_api(NoRouting(), serving_settings, keys)
    client = TestClient(api)

    anonymous = client.post("/v1/feedback", json=_event(1))
    wrong_scope = client.post(
        "/v1/feedback", json=_event(1), headers={"X-API-Key": "desk-key"}
    )
    allowed = client.post(
        "/v1/feedback", json=_event(1), headers={"X-API-Key": "hook-key"}
    )

    read_by_hook = client.get("/v1/metrics/process", headers={"X-API-Key": "hook-key"})
    read_by_desk = client.get("/v1/metrics/process", headers={"X-API-Key": "desk-key"})

    assert anonymous.status_code == 401
    assert wrong_scope.status_code == 403
    assert allowed.status_code == 200
    assert (read_by_hook.status_code, read_by_desk.status_code) == (403, 200)
    [row] = api.state.store.get().feedback_for_ticket("T-1")
    assert row["submitted_by"] == "hook"
    api.state.store.close()


def test_process_metrics_json_reflects_decisions_and_feedback(
    client: TestClient,
) -> None:
    store = client.app.state.store.get()
    store.append([_record(1, "billing_invoicing"), _record(2, "security", "drift")])
    client.post(
        "/v1/feedback",
        json=[_event(1, final_queue="collections"), _event(2)],
    )
    store.append_event("drift_state", {"state": "rules"}, at=NOW - timedelta(hours=1))

    response = client.get("/v1/metrics/process", params={"since": "1d", "by": "queue"})

    assert response.status_code == 200
    report = response.json()
    assert report["by"] == "queue"
    assert report["overall"]["tickets"] == 2
    assert report["overall"]["reassignment_rate"] == 0.5
    assert report["overall"]["fallbacks_by_reason"] == {"drift": 1}
    assert [group["group"] for group in report["groups"]] == [
        "billing_invoicing",
        "security",
    ]
    assert report["series"]["fallback_reasons"]["bucket"] == "hour"
    assert sum(report["series"]["fallback_reasons"]["values"]["drift"]) == 1
    assert [c["state"] for c in report["service_state"]["changes"]] == ["rules"]
    assert report["enrichment"]["available"] is False


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        pytest.param({"since": "yesterday"}, {"since"}, id="bad-since"),
        pytest.param({"by": "colour", "bucket": "week"}, {"by", "bucket"}, id="by"),
        pytest.param(
            {"since": "2026-12-02", "until": "2026-12-01"}, {"since"}, id="reversed"
        ),
    ],
)
def test_bad_process_metrics_queries_get_422(
    client: TestClient, params: dict[str, str], fields: set[str]
) -> None:
    response = client.get("/v1/metrics/process", params=params)

    assert response.status_code == 422
    assert {problem["field"] for problem in response.json()["problems"]} == fields


def test_prometheus_scrape_refreshes_the_process_gauges(client: TestClient) -> None:
    store = client.app.state.store.get()
    store.append([_record(1, "billing_invoicing"), _record(2, "security", "drift")])
    client.post("/v1/feedback", json=[_event(1, final_queue="collections")])

    text = client.get("/metrics").text

    assert 'switchboard_process_tickets{by="queue",group="all"} 2.0' in text
    reassigned = 'reassignment_rate{by="queue",group="billing_invoicing"} 1.0'
    assert f"switchboard_process_{reassigned}" in text
    assert (
        'switchboard_process_fallback_rate{by="mode",group="all",reason="drift"} 0.5'
        in text
    )
    assert (
        'switchboard_process_exceptions{kind="fallbacks",source_system="email"} 1.0'
        in text
    )
    assert "switchboard_process_window_seconds 604800.0" in text


def test_gauges_are_not_recomputed_within_the_refresh_interval(
    tmp_path: Path,
) -> None:
    settings = ServingSettings(home=tmp_path, process_metrics_refresh_s=3600)
    api = create_api(NoRouting(), settings, KeyRing([]))
    client = TestClient(api)
    client.get("/metrics")
    api.state.store.get().append([_record(1, "security")])

    text = client.get("/metrics").text

    assert 'switchboard_process_tickets{by="queue",group="all"} 0.0' in text
    api.state.store.close()


def test_metrics_answer_even_when_the_store_cannot_open(tmp_path: Path) -> None:
    settings = ServingSettings(
        home=tmp_path,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        process_metrics_refresh_s=0,
    )
    client = TestClient(create_api(NoRouting(), settings, KeyRing([])))

    response = client.get("/metrics")

    assert response.status_code == 200
    assert "switchboard_requests_total" in response.text
    assert "switchboard_process_tickets{" not in response.text


def _record(
    number: int, queue: str, fallback_reason: str | None = None
) -> DecisionRecord:
    decision = {
        "decision_id": f"dec-{number}",
        "ticket_id": f"T-{number}",
        "queue": queue,
        "priority": "P3",
        "mode": "rules" if fallback_reason else "auto",
        "model_version": "7",
        "rule_set_version": "2026.11",
        "fallback_reason": fallback_reason,
        "decided_at": NOW - timedelta(hours=2),
    }
    return DecisionRecord(decision, f"req-{number}", "email", "http")


def test_prometheus_shows_enrichment_success_per_source(client: TestClient) -> None:
    store = client.app.state.store.get()
    every = ["crm", "billing", "entitlements", "identity", "telemetry"]
    answered = _record(11, "billing_invoicing")
    answered.decision["context_sources_answered"] = every
    partial = _record(12, "collections")
    partial.decision["context_sources_answered"] = ["crm", "telemetry"]
    partial.decision["context_sources_missing"] = [
        "billing",
        "entitlements",
        "identity",
    ]
    store.append([answered, partial])

    text = client.get("/metrics").text

    assert (
        'switchboard_process_enrichment_source_success_rate{source="billing"} 0.5'
        in (text)
    )
    assert (
        'switchboard_process_enrichment_source_success_rate{source="crm"} 1.0' in text
    )
    assert "switchboard_process_enrichment_success_rate 0.5" in text
