"""The three scenario fixtures: valid tickets with decisions the taxonomy knows."""

from __future__ import annotations

import pytest

from features.scenarios import (
    SCENARIOS,
    Scenario,
    provisioning_failed_after_expansion,
    sev1_outage_alert,
    strategic_suspended_despite_payment,
)
from features.schema import parse_ticket
from features.taxonomy import load_taxonomy

ALL = [pytest.param(scenario, id=name) for name, scenario in SCENARIOS.items()]


def test_there_are_the_three_named_scenarios() -> None:
    assert set(SCENARIOS) == {
        "strategic_suspended_despite_payment",
        "provisioning_failed_after_expansion",
        "sev1_outage_alert",
    }
    assert all(name == scenario.name for name, scenario in SCENARIOS.items())


@pytest.mark.parametrize("scenario", ALL)
def test_scenario_ticket_validates_on_its_channel(scenario: Scenario) -> None:
    ticket = parse_ticket(scenario.ticket)
    assert ticket.channel == scenario.channel


@pytest.mark.parametrize("scenario", ALL)
def test_expected_decision_is_in_the_taxonomy(scenario: Scenario) -> None:
    taxonomy = load_taxonomy()
    assert scenario.expected_queue in taxonomy.queue_ids
    assert scenario.expected_priority in taxonomy.priority_ids


def test_suspended_strategic_customer_is_a_provisioning_p1() -> None:
    scenario = strategic_suspended_despite_payment()
    ticket = parse_ticket(scenario.ticket)

    assert ticket.account_tier == "strategic"
    assert "INV-2026-0412" in ticket.subject
    assert "paid" in ticket.body.lower()
    assert scenario.expected_queue == "provisioning_entitlements"
    assert scenario.expected_priority == "P1"
    assert isinstance(scenario.payload, str)
    assert "Content-Type: multipart/mixed" in scenario.payload


def test_failed_expansion_is_a_provisioning_ticket() -> None:
    scenario = provisioning_failed_after_expansion()
    ticket = parse_ticket(scenario.ticket)

    assert "200" in ticket.body and "350" in ticket.body
    assert "SCIM" in ticket.body
    assert scenario.expected_queue == "provisioning_entitlements"


def test_outage_alert_is_an_alertmanager_v4_critical_in_production() -> None:
    scenario = sev1_outage_alert()
    payload = scenario.payload
    assert isinstance(payload, dict)
    labels = payload["alerts"][0]["labels"]

    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert labels["severity"] == "critical"
    assert labels["service"] == "api-gateway"
    assert labels["env"] == "production"
    assert set(payload["alerts"][0]["annotations"]) >= {"summary", "description"}
    assert scenario.ticket["severity"] == "critical"
    assert (scenario.expected_queue, scenario.expected_priority) == (
        "platform_operations",
        "P1",
    )


def test_scenario_functions_return_fresh_copies() -> None:
    changed = sev1_outage_alert()
    changed.ticket["subject"] = "changed"

    assert sev1_outage_alert().ticket["subject"] != "changed"
    assert SCENARIOS["sev1_outage_alert"].ticket["subject"] != "changed"
