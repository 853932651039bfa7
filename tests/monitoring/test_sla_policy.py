"""The SLA policy file: targets by priority and tier, clocks, on-call, validation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from features.config import bundled_config_path
from features.errors import ConfigError
from features.taxonomy import load_taxonomy
from monitoring.sla import SlaPolicy, load_sla_policy

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def policy() -> SlaPolicy:
    return load_sla_policy(taxonomy=load_taxonomy())


@pytest.fixture(scope="module")
def bundled() -> dict[str, Any]:
    return yaml.safe_load(bundled_config_path("sla.yaml").read_text(encoding="utf-8"))


def test_bundled_policy_knows_the_taxonomy_priorities(policy: SlaPolicy) -> None:
    assert policy.version == "2026.12"
    assert policy.priorities == ["P1", "P2", "P3", "P4"]
    assert policy.pause_statuses == ["waiting_on_customer"]


@pytest.mark.parametrize(
    ("target", "priority", "tier", "minutes"),
    [
        pytest.param("first_response", "P2", None, 60, id="no-tier"),
        pytest.param("first_response", "p2", "strategic", 30, id="strategic-tighter"),
        pytest.param("first_response", "P2", "enterprise", 45, id="enterprise"),
        pytest.param("first_response", "P4", "enterprise", 1440, id="tier-falls-back"),
        pytest.param("resolution", "P1", "strategic", 120, id="resolution-tier"),
        pytest.param("resolution", "P3", "free", 4800, id="tier-without-overrides"),
        pytest.param("resolution", "P5", None, None, id="unknown-priority"),
    ],
)
def test_targets_come_from_the_tier_before_the_priority(
    policy: SlaPolicy, target: Any, priority: str, tier: str | None, minutes: int
) -> None:
    assert policy.target_minutes(target, priority, tier) == minutes


@pytest.mark.parametrize(
    ("queue", "priority", "calendar"),
    [
        pytest.param("billing_invoicing", "P3", "business_eu", id="default"),
        pytest.param("integrations_api", "P3", "business_us", id="queue-calendar"),
        pytest.param("integrations_api", "P1", "24x7", id="p1-runs-24x7"),
    ],
)
def test_each_queue_runs_on_its_calendar_and_p1_on_24x7(
    policy: SlaPolicy, queue: str, priority: str, calendar: str
) -> None:
    assert policy.calendar_for(queue, priority).name == calendar


def test_on_call_covers_only_its_priorities_and_only_after_hours(
    policy: SlaPolicy,
) -> None:
    friday_8pm = datetime(2026, 12, 4, 20, 0, tzinfo=BERLIN)
    friday_noon = datetime(2026, 12, 4, 12, 0, tzinfo=BERLIN)

    assert policy.on_call_rota("platform_operations", "P2", friday_8pm) == "sre-primary"
    assert policy.on_call_rota("platform_operations", "P2", friday_noon) is None
    assert policy.on_call_rota("platform_operations", "P3", friday_8pm) is None
    assert policy.on_call_rota("billing_invoicing", "P2", friday_8pm) is None


def test_a_covered_ticket_clock_runs_after_hours(policy: SlaPolicy) -> None:
    friday_8pm = datetime(2026, 12, 4, 20, 0, tzinfo=BERLIN)
    covered = policy.clock_for("platform_operations", "P2")
    uncovered = policy.clock_for("platform_operations", "P3")

    assert covered.add_working_time(friday_8pm, 3600) == friday_8pm + timedelta(hours=1)
    assert uncovered.add_working_time(friday_8pm, 3600) == datetime(
        2026, 12, 7, 9, 0, tzinfo=BERLIN
    )


def test_first_response_verdict_stays_wall_clock(policy: SlaPolicy) -> None:
    # What process metrics rely on: no calendar, the priority's own target.
    opened = datetime(2026, 12, 4, 17, 30, tzinfo=UTC)
    as_of = opened + timedelta(minutes=61)

    assert policy.target("p2") == timedelta(minutes=60)
    assert policy.first_response_verdict("P2", opened, None, as_of) == "breached"
    assert policy.first_response_verdict("P5", opened, None, as_of) == "no_target"


def test_escalation_paths_are_in_trigger_order(policy: SlaPolicy) -> None:
    levels = [
        (level.level, level.at_fraction)
        for level in policy.escalation_path("resolution")
    ]

    assert levels == [
        ("team_lead", 0.75),
        ("incident_commander", 1.0),
        ("executive", 1.5),
    ]


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        document = document.setdefault(part, {})
    document[last] = value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(
            "tiers.strategic.first_response_minutes",
            {"P9": 5},
            "tiers.strategic.first_response_minutes.P9: unknown priority 'P9'",
            id="unknown-priority-in-tier",
        ),
        pytest.param(
            "on_call.platform_operations.priorities",
            ["P1", "P7"],
            "on_call.platform_operations.priorities.1: unknown priority 'P7'",
            id="unknown-priority-on-call",
        ),
        pytest.param(
            "always_24x7",
            ["urgent"],
            "always_24x7.0: Value error, 'urgent' is not a priority id",
            id="not-a-priority-id",
        ),
        pytest.param(
            "calendars.business_eu.timezone",
            "Europe/Berln",
            "calendars.business_eu.timezone: Value error, unknown IANA timezone",
            id="bad-timezone",
        ),
        pytest.param(
            "calendars.business_eu.hours.mon",
            ["8-18"],
            "calendars.business_eu.hours.mon.0: Value error, opening hours '8-18'",
            id="bad-hours",
        ),
        pytest.param(
            "calendars.business_eu.hours.tue",
            ["08:00-13:00", "12:00-18:00"],
            "calendars.business_eu: Value error, tue: opening hours overlap",
            id="overlapping-hours",
        ),
        pytest.param(
            "escalation.resolution",
            [
                {"level": "team_lead", "at_fraction": 0.75},
                {"level": "executive", "at_fraction": 1.0},
                {"level": "incident_commander", "at_fraction": 1.5},
            ],
            "escalation.resolution: Value error, level 2 (incident_commander at 1.5)"
            " is out of order",
            id="levels-out-of-order",
        ),
        pytest.param(
            "escalation.first_response",
            [
                {"level": "team_lead", "at_fraction": 1.0},
                {"level": "incident_commander", "at_fraction": 0.75},
            ],
            "escalation.first_response: Value error, level 1",
            id="fractions-out-of-order",
        ),
        pytest.param(
            "queues.integrations_api.calendar",
            "business_apac",
            "queues.integrations_api.calendar: unknown calendar 'business_apac'",
            id="unknown-calendar",
        ),
        pytest.param(
            "calendars.24x7",
            {"timezone": "UTC", "hours": {"mon": ["08:00-09:00"]}},
            "calendars.24x7: 24x7 is built in",
            id="reserved-calendar-name",
        ),
        pytest.param(
            "tiers.gold",
            {"first_response_minutes": {"P1": 5}},
            "tiers.gold.[key]: Input should be 'strategic'",
            id="unknown-tier",
        ),
        pytest.param(
            "pause_statuses",
            ["resolved"],
            "pause_statuses.0: Value error, 'resolved' cannot pause a clock",
            id="pause-on-resolved",
        ),
        pytest.param(
            "first_response_minutes.P3",
            0,
            "first_response_minutes.P3: Input should be greater than 0",
            id="non-positive-target",
        ),
        pytest.param(
            "on_call.security.calendar",
            "24x7",
            "on_call.security.calendar: a 24x7 calendar has no after hours",
            id="on-call-without-after-hours",
        ),
    ],
)
def test_invalid_policy_names_file_and_path(
    tmp_path: Path, bundled: dict[str, Any], path: str, value: Any, expected: str
) -> None:
    document = copy.deepcopy(bundled)
    _set(document, path, value)
    file = tmp_path / "sla.yaml"
    file.write_text(yaml.safe_dump(document), encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_sla_policy(file)

    assert str(caught.value).startswith(f"{file}: ")
    assert expected in str(caught.value)


def test_queues_outside_the_taxonomy_are_refused(
    tmp_path: Path, bundled: dict[str, Any]
) -> None:
    document = copy.deepcopy(bundled)
    document["queues"]["integration_api"] = {"calendar": "business_us"}
    file = tmp_path / "sla.yaml"
    file.write_text(yaml.safe_dump(document), encoding="utf-8")

    with pytest.raises(ConfigError, match=r"queues\.integration_api: queue"):
        load_sla_policy(file, taxonomy=load_taxonomy())


def test_a_minimal_policy_runs_every_clock_24x7() -> None:
    policy = SlaPolicy.model_validate({"version": "1", "first_response_minutes": {}})

    assert policy.calendar_for("any_queue", "P3").name == "24x7"
    assert policy.target_minutes("first_response", "P3") is None
