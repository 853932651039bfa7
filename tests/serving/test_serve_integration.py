"""The application on real Ray Serve, bound to 127.0.0.1, end to end."""

from __future__ import annotations

import json
import threading
import time
from email.message import EmailMessage

import httpx
import pytest

from features.errors import ConfigError
from serving.local import deploy

pytestmark = pytest.mark.integration

SCENARIO = {
    "id": "T-OUTAGE-1",
    "channel": "alert",
    "subject": "[FIRING] APIGatewayDown production",
    "body": "api-gateway returns 503 for all requests in eu-west-1",
    "severity": "critical",
    "service": "api-gateway",
}
BILLING = {
    "id": "T-BILL-1",
    "channel": "email",
    "subject": "Refund for a double charge",
    "body": "We were charged twice for the annual plan, please refund one charge.",
}


@pytest.fixture(scope="module")
def service(ray_cluster, champion_settings):
    deploy(
        champion_settings,
        config_overrides={"Classifier": {"user_config": {"poll_interval_s": 1}}},
    )
    base = f"http://127.0.0.1:{champion_settings.port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        _wait_ready(client)
        yield client
    from ray import serve

    serve.shutdown()  # frees the CPUs other modules' Ray jobs need


def test_single_ticket_is_routed_by_the_model(service):
    decision = service.post("/v1/route", json=BILLING).json()

    assert decision["queue"] == "billing_invoicing"
    assert decision["model_version"] == "1"
    assert decision["top_queues"]


def test_sev1_alert_is_decided_by_an_override_rule(service):
    decision = service.post("/v1/route", json=SCENARIO).json()

    assert decision["mode"] == "override"
    assert decision["queue"] == "platform_operations"
    assert decision["priority"] == "P1"
    assert decision["escalation"] == "incident_commander"


def test_batch_routing_returns_one_decision_per_ticket_in_order(service):
    tickets = [{**BILLING, "id": f"B-{i}"} for i in range(20)]

    decisions = service.post("/v1/route/batch", json={"tickets": tickets}).json()

    assert [d["ticket_id"] for d in decisions["decisions"]] == [
        t["id"] for t in tickets
    ]


def test_raw_email_is_normalised_and_routed(service):
    message = EmailMessage()
    message["From"] = "Dana <dana@example.com>"
    message["To"] = "support@example.com"
    message["Subject"] = "=?utf-8?q?SSO_login_f=C3=A4ilt?="
    message["Message-ID"] = "<abc123@example.com>"
    message.set_content("Our Okta SAML login fails for every user since this morning.")

    response = service.post(
        "/v1/intake/email",
        content=message.as_bytes(),
        headers={"Content-Type": "message/rfc822"},
    )

    assert response.status_code == 200
    assert response.json()["queue"] == "identity_access"


def test_ndjson_stream_through_ray_serve_answers_every_line(service):
    lines = "\n".join(json.dumps({**BILLING, "id": f"ST-{i}"}) for i in range(40))

    with service.stream(
        "POST",
        "/v1/route/stream",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    ) as response:
        answers = [json.loads(line) for line in response.iter_lines() if line]

    assert response.status_code == 200
    assert [a["ticket_id"] for a in answers] == [f"ST-{i}" for i in range(40)]


def test_decisions_made_over_http_reach_the_decision_store(service, champion_settings):
    from monitoring.store import open_store

    service.post(
        "/v1/route",
        json={**BILLING, "id": "T-STORED"},
        headers={"X-Request-ID": "req-42"},
    )
    store = open_store(champion_settings)
    deadline = time.monotonic() + 10
    while not store.has("T-STORED", "req-42") and time.monotonic() < deadline:
        time.sleep(0.2)

    assert store.has("T-STORED", "req-42")
    stored = store.for_ticket("T-STORED")[0]
    assert stored["path"] == "http"
    assert stored["text_hash"]
    store.close()


def test_gibberish_falls_back_to_rules_with_its_reason(service):
    ticket = {"id": "T-G", "channel": "api", "subject": "qwzx", "body": "zzv plorf"}

    decision = service.post("/v1/route", json=ticket).json()

    assert decision["mode"] == "rules"
    assert decision["fallback_reason"] in ("low_confidence", "out_of_scope")
    assert decision["top_queues"], "the model's proposal is still recorded"


def test_invalid_input_through_ray_serve_is_a_4xx_not_a_500(service):
    assert service.post("/v1/route", json={"id": "x"}).status_code == 422
    assert (
        service.post("/v1/route", json={**BILLING, "channel": "fax"}).status_code == 400
    )


def test_model_endpoint_shows_version_thresholds_and_state(service):
    info = service.get("/v1/model").json()

    assert info["state"] == "ready"
    assert info["model_version"] == "1"
    assert "billing_invoicing" in info["thresholds"]["queues"]


def test_a_version_promoted_while_requests_flow_is_picked_up_without_failures(
    service, champion_settings
):
    from training.service import DataOptions, promote_version, train

    statuses, versions, stop = [], set(), threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            response = service.post("/v1/route", json=BILLING)
            statuses.append(response.status_code)
            versions.add(response.json().get("model_version"))

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        data = champion_settings.home_dir.joinpath("train-data.txt").read_text()
        trained = train(champion_settings, data, DataOptions())
        promote_version(champion_settings, trained["model_version"], reason="refresh")
        deadline = time.monotonic() + 60
        while trained["model_version"] not in versions and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        sender.join()

    assert trained["model_version"] in versions
    assert set(statuses) == {200}


def test_failing_classifier_routes_by_rules_with_model_unavailable(
    service, champion_settings
):
    deploy(
        champion_settings,
        config_overrides={"Classifier": {"user_config": {"fault": "error"}}},
    )
    try:
        decision = _post_until(
            service, BILLING, lambda d: d["fallback_reason"] is not None
        )

        assert decision["mode"] == "rules"
        assert decision["fallback_reason"] == "model_unavailable"
        assert decision["queue"] == "billing_invoicing"
    finally:
        deploy(champion_settings, config_overrides={"Classifier": {"user_config": {}}})


def test_slow_classifier_routes_by_rules_with_model_timeout(service, champion_settings):
    deploy(
        champion_settings,
        config_overrides={"Classifier": {"user_config": {"fault": "slow"}}},
        classifier_timeout_s=0.5,
    )
    try:
        started = time.monotonic()
        decision = _post_until(
            service, BILLING, lambda d: d["fallback_reason"] is not None
        )

        assert decision["fallback_reason"] == "model_timeout"
        assert time.monotonic() - started < 20
    finally:
        deploy(champion_settings, config_overrides={"Classifier": {"user_config": {}}})


def test_with_no_champion_the_service_routes_by_rules_and_says_so(
    ray_cluster, champion_settings, tmp_path
):
    empty = champion_settings.model_copy(update={"home": tmp_path / "empty-home"})
    deploy(empty)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{empty.port}", timeout=30
        ) as client:
            _wait_ready(client)
            decision = client.post("/v1/route", json=BILLING).json()
            ready = client.get("/readyz").json()

        assert decision["mode"] == "rules"
        assert decision["fallback_reason"] == "no_model"
        assert ready["ready"] is True
        assert ready["model"]["state"] == "no_model"
    finally:
        deploy(champion_settings)


def test_a_bad_rules_file_fails_start_up_naming_the_rule(champion_settings, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "override: []\nfallback:\n  - id: broken-rule\n    description: d\n"
        "    owner: o\n    condition: 'ticket.text.contains('\n"
        "    action: {queue: general_support}\n"
    )
    bad = champion_settings.model_copy(update={"rules_path": rules})

    with pytest.raises(ConfigError, match="broken-rule"):
        deploy(bad)


def _wait_ready(client: httpx.Client, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("service did not become ready")


def _post_until(client, ticket, accept, timeout_s: float = 30) -> dict:
    # A redeploy's new user_config reaches the replica within a second or two.
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.post("/v1/route", json=ticket)
        assert response.status_code == 200
        decision = response.json()
        if accept(decision) or time.monotonic() > deadline:
            return decision
        time.sleep(0.3)


def _context_scenarios():
    from features.scenarios import context_scenarios

    return context_scenarios()


@pytest.mark.parametrize("name", list(_context_scenarios()))
def test_each_context_scenario_through_ray_serve(service, name):
    scenario = _context_scenarios()[name]

    response = service.post("/v1/route", json={**scenario.ticket, "id": f"RS-{name}"})

    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["queue"] == scenario.expected_queue
    assert decision["escalation"] == scenario.expected_escalation
    assert decision["context_sources_missing"] == []
    if scenario.expected_rule_id:
        assert decision["context_rule_id"] == scenario.expected_rule_id


def test_a_context_event_through_ray_serve_redecides_the_open_ticket(service):
    ticket = {**_context_scenarios()["expansion_seat_mismatch"].ticket, "id": "RS-ev"}
    service.post("/v1/route", json=ticket)
    case = _wait_for_case(service, "RS-ev")
    account = {"account_id": ticket["account_id"]}

    suspended = service.post(
        "/v1/events/context",
        json={"event_id": "rs-ev-1", "kind": "entitlement_suspended", **account},
    )
    # Put the shared seeded store back as it was for the other tests.
    restored = service.post(
        "/v1/events/context",
        json={"event_id": "rs-ev-2", "kind": "entitlement_restored", **account},
    )

    assert suspended.status_code == 200, suspended.text
    assert restored.status_code == 200, restored.text
    redecided = suspended.json()["redecided"]
    assert "RS-ev" in [item["ticket_id"] for item in redecided]
    events = service.get("/v1/cases/RS-ev").json()["events"]
    causes = [e["payload"].get("cause") or {} for e in events]
    assert "rs-ev-1" in [cause.get("event_id") for cause in causes]
    assert case["queue"] == "provisioning_entitlements"


def test_a_notification_without_a_webhook_address_is_recorded_as_such(service):
    ticket = {**_context_scenarios()["strategic_production_impact"].ticket}
    ticket["id"] = "RS-notify"
    service.post("/v1/route", json=ticket)

    deadline = time.monotonic() + 15
    notifications = []
    while not notifications and time.monotonic() < deadline:
        response = service.get("/v1/cases/RS-notify")
        if response.status_code == 200:
            notifications = response.json()["notifications"]
        time.sleep(0.2)

    assert [(n["target"], n["status"]) for n in notifications] == [
        ("executive-bridge", "not_configured")
    ]


def _wait_for_case(service, ticket_id):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = service.get(f"/v1/cases/{ticket_id}")
        if response.status_code == 200:
            return response.json()["case"]
        time.sleep(0.2)
    raise AssertionError(f"no case for {ticket_id}")
