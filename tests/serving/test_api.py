"""The HTTP layer over the real router and classifier, in one process.

Every 4xx path and the auth scopes; the Ray Serve tests cover the same API
through the ingress replica and deployment handles.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from features.schema import MAX_BODY_CHARS
from serving.app import create_api
from serving.auth import KeyRing, hash_key
from serving.local import InProcessBackend

pytestmark = pytest.mark.integration

TICKET = {
    "id": "T-100",
    "channel": "portal",
    "subject": "Invoice shows the wrong VAT rate",
    "body": "Our March invoice charged 21% VAT but we are VAT-exempt.",
}


def _client(settings, keys: KeyRing | None = None, **changes) -> TestClient:
    settings = settings.model_copy(update=changes)
    backend = InProcessBackend(settings)
    return TestClient(create_api(backend, settings, keys or KeyRing([])))


@pytest.fixture(scope="module")
def client(champion_settings):
    return _client(champion_settings)


def test_one_ticket_gets_a_decision_with_every_field(client):
    response = client.post("/v1/route", json=TICKET)

    assert response.status_code == 200
    decision = response.json()
    assert decision["ticket_id"] == "T-100"
    assert decision["queue"] == "billing_invoicing"
    for field in (
        "decision_id",
        "priority",
        "escalation",
        "mode",
        "confidence",
        "top_queues",
        "model_version",
        "rule_id",
        "fallback_reason",
        "rule_set_version",
        "latency_ms",
        "reasons",
    ):
        assert field in decision


def test_invalid_ticket_gets_422_listing_every_invalid_field(client):
    response = client.post(
        "/v1/route", json={"channel": "email", "subject": "x", "account_tier": "gold"}
    )

    assert response.status_code == 422
    fields = {problem["field"] for problem in response.json()["problems"]}
    assert {"id", "account_tier"} <= fields


def test_body_over_the_limit_gets_413_naming_the_limit(client):
    response = client.post(
        "/v1/route", json={**TICKET, "body": "x" * (MAX_BODY_CHARS + 1)}
    )

    assert response.status_code == 413
    assert response.json()["problems"][0]["field"] == "body"
    assert str(MAX_BODY_CHARS) in response.json()["problems"][0]["limit"]


def test_unknown_channel_gets_400(client):
    response = client.post("/v1/route", json={**TICKET, "channel": "fax"})

    assert response.status_code == 400
    assert "email" in response.json()["problems"][0]["limit"]


def test_unknown_intake_channel_gets_400(client):
    response = client.post("/v1/intake/pigeon", content=b"{}")

    assert response.status_code == 400


def test_malformed_intake_json_gets_422(client):
    response = client.post("/v1/intake/portal", content=b"{not json")

    assert response.status_code == 422
    assert "JSON" in response.json()["message"]


def test_batch_over_the_size_limit_gets_413(champion_settings):
    small = _client(champion_settings, max_batch_tickets=2)

    response = small.post("/v1/route/batch", json={"tickets": [TICKET] * 3})

    assert response.status_code == 413
    assert response.json()["problems"][0]["field"] == "tickets"


def test_request_over_the_byte_limit_gets_413_before_parsing(champion_settings):
    small = _client(champion_settings, max_request_bytes=1000)

    response = small.post("/v1/route", json={**TICKET, "body": "y" * 2000})

    assert response.status_code == 413


def test_invalid_ticket_inside_a_batch_is_named_by_position(client):
    response = client.post("/v1/route/batch", json={"tickets": [TICKET, {"id": "x"}]})

    assert response.status_code == 422
    assert any(p["field"].startswith("tickets.1.") for p in response.json()["problems"])


@pytest.fixture(scope="module")
def secured(champion_settings):
    keys = KeyRing.load(
        None,
        f"desk:{hash_key('route-key')}:route,ops:{hash_key('admin-key')}:route+admin",
    )
    return _client(champion_settings, keys)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-key"),
        pytest.param({"X-API-Key": "wrong"}, 401, id="unknown-key"),
        pytest.param({"X-API-Key": "route-key"}, 200, id="route-scope"),
    ],
)
def test_routing_needs_a_key_with_route_scope(secured, headers, status):
    assert secured.post("/v1/route", json=TICKET, headers=headers).status_code == status


def test_admin_call_with_a_route_only_key_gets_403_naming_the_scope(secured):
    response = secured.post("/v1/admin/reload", headers={"X-API-Key": "route-key"})

    assert response.status_code == 403
    assert "admin" in response.json()["message"]


def test_admin_key_may_reload(secured):
    response = secured.post("/v1/admin/reload", headers={"X-API-Key": "admin-key"})

    assert response.status_code == 200
    assert response.json()["state"] == "ready"


def test_health_and_readiness_need_no_key(secured):
    assert secured.get("/healthz").status_code == 200
    ready = secured.get("/readyz").json()
    assert ready["ready"] is True
    assert ready["model"]["state"] == "ready"


def test_metrics_count_requests_and_decisions(client):
    client.post("/v1/route", json=TICKET)

    text = client.get("/metrics").text

    assert 'switchboard_requests_total{endpoint="/v1/route"' in text
    assert "switchboard_decisions_total" in text


def test_openapi_documents_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]

    assert {"/v1/route", "/v1/route/batch", "/v1/intake/{channel}", "/v1/model"} <= set(
        paths
    )


def test_ndjson_stream_answers_each_line_in_order_and_names_bad_lines(client):
    lines = [json.dumps({**TICKET, "id": f"S-{i}"}) for i in range(3)] + [
        "{oops",
        json.dumps({**TICKET, "id": "S-3", "channel": "fax"}),
    ]

    response = client.post(
        "/v1/route/stream",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )

    answers = [json.loads(line) for line in response.text.splitlines()]
    assert response.status_code == 200
    assert [a["ticket_id"] for a in answers if "ticket_id" in a] == [
        "S-0",
        "S-1",
        "S-2",
    ]
    failures = {a["line"]: a for a in answers if "line" in a}
    assert failures[4]["error"] == "InvalidJSON"
    assert failures[5]["problems"][0]["field"] == "channel"
