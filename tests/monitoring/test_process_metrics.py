"""Process metrics against values computed by hand on a small fixed fixture.

The fixture is one UTC day, 2026-12-01, judged at midnight after it:

ticket  channel  decided queue (time, mode, version)  feedback
T1      email    billing_invoicing 09:00 auto v7     final = decided; opened 08:50,
                                                     answered 09:20, resolved 12:00
T2      email    billing_invoicing 09:30 auto v7     collections (escalated 10:30),
                                                     then override to
                                                     revenue_operations, P2 -> P3,
                                                     answered 11:00; open
T3      chat     identity_access 10:00 rules v7      final = decided; answered 10:05,
                 (again 13:00, rules)                escalated 10:20, resolved 16:00
T4      alert    platform_operations 10:05 override  security, from alertmanager;
                 no version                          opened 10:00, answered 10:20,
                                                     escalated 10:10, resolved
                                                     after the range
T5      portal   general_support 11:00 rules none    final = decided; P4 unanswered
T6      alert    platform_operations 23:30 rules v7  answered 23:45, no final queue
T7      email    security 22:30 suggest v7           none; P1 unanswered
T10     api      integrations_api 16:00 auto v8      final = decided; priority P5
                                                     has no SLA target

Fallbacks: T3's two decisions (low_confidence), T5 (no_model), T6 (drift).
T8 was decided before the range and T9 exactly at its end: both left out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from features.errors import InvalidInputError
from monitoring.process_metrics import (
    ProcessData,
    ProcessMetrics,
    bucket_starts,
    compute_process_metrics,
    load_process_data,
    parse_time_range,
)
from monitoring.sla import SlaPolicy, load_sla_policy
from monitoring.store import DecisionRecord, DecisionStore

SINCE = datetime(2026, 12, 1, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=1)
NOW = UNTIL + timedelta(days=1)


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    """A time on 2026-12-<day>; day 0 is the last of November."""
    return SINCE + timedelta(days=day - 1, hours=hour, minutes=minute)


# (ticket, channel, queue, mode, model version, fallback, priority, decided at)
DECISIONS = [
    ("T1", "email", "billing_invoicing", "auto", "7", None, "P3", at(9)),
    ("T2", "email", "billing_invoicing", "auto", "7", None, "P2", at(9, 30)),
    ("T3", "chat", "identity_access", "rules", "7", "low_confidence", "P3", at(10)),
    ("T4", "alert", "platform_operations", "override", None, None, "P1", at(10, 5)),
    ("T5", "portal", "general_support", "rules", None, "no_model", "P4", at(11)),
    ("T6", "alert", "platform_operations", "rules", "7", "drift", "P2", at(23, 30)),
    ("T3", "chat", "identity_access", "rules", "7", "low_confidence", "P3", at(13)),
    ("T7", "email", "security", "suggest", "7", None, "P1", at(22, 30)),
    ("T10", "api", "integrations_api", "auto", "8", None, "P5", at(16)),
    # Outside [SINCE, UNTIL).
    ("T8", "email", "security", "auto", "7", "low_confidence", "P3", at(23, day=0)),
    ("T9", "email", "security", "auto", "7", "drift", "P3", UNTIL),
]
FEEDBACK: list[dict[str, Any]] = [
    {
        "ticket_id": "T1",
        "final_queue": "billing_invoicing",
        "opened_at": at(8, 50),
        "first_response_at": at(9, 20),
        "resolved_at": at(12),
        "occurred_at": at(12),
    },
    # Stored before the event it overrides, which happened earlier.
    {
        "ticket_id": "T2",
        "final_queue": "revenue_operations",
        "override_by": "ana",
        "override_reason": "customer is in dunning",
        "priority": "P3",
        "first_response_at": at(11),
        "occurred_at": at(11),
    },
    {
        "ticket_id": "T2",
        "final_queue": "collections",
        "escalated_at": at(10, 30),
        "occurred_at": at(10),
    },
    {
        "ticket_id": "T3",
        "final_queue": "identity_access",
        "first_response_at": at(10, 5),
        "escalated_at": at(10, 20),
        "resolved_at": at(16),
        "occurred_at": at(15),
    },
    {
        "ticket_id": "T4",
        "final_queue": "security",
        "source_system": "alertmanager",
        "opened_at": at(10),
        "first_response_at": at(10, 20),
        "escalated_at": at(10, 10),
        "resolved_at": at(1, day=2),
        "occurred_at": at(10, 30),
    },
    {"ticket_id": "T5", "final_queue": "general_support", "occurred_at": at(12)},
    {"ticket_id": "T6", "first_response_at": at(23, 45), "occurred_at": at(23, 50)},
    {
        "ticket_id": "T10",
        "final_queue": "integrations_api",
        "resolved_at": at(17),
        "occurred_at": at(17),
    },
    {"ticket_id": "T8", "final_queue": "collections", "occurred_at": at(12)},
]
STATE_EVENTS = [
    ("drift_state", {"state": "model"}, at(8, day=0)),
    ("model_swapped", {"model_version": "8"}, at(12)),
    ("drift_state", {"state": "rules", "reason": "drift"}, at(23)),
    ("drift_state", {"state": "model"}, at(1, day=2)),
]


@pytest.fixture
def filled_store(store: DecisionStore) -> DecisionStore:
    records = [_record(number, *row) for number, row in enumerate(DECISIONS, start=1)]
    store.append(records)
    events = [
        {"feedback_id": f"fb-{number}", **fields}
        for number, fields in enumerate(FEEDBACK, start=1)
    ]
    store.append_feedback(events, submitted_by="test")
    for kind, payload, moment in STATE_EVENTS:
        store.append_event(kind, payload, at=moment)
    return store


@pytest.fixture(scope="module")
def sla() -> SlaPolicy:
    return load_sla_policy()


@pytest.fixture
def report(filled_store: DecisionStore, sla: SlaPolicy) -> ProcessMetrics:
    data = load_process_data(filled_store, SINCE, UNTIL)
    return compute_process_metrics(data, sla, by="queue", now=NOW)


def test_only_decisions_in_the_range_and_their_tickets_count(
    report: ProcessMetrics,
) -> None:
    assert report.overall.decisions == 9
    assert report.overall.tickets == 8
    assert report.as_of == UNTIL


def test_first_touch_accuracy_reassignment_and_override_among_reviewed(
    report: ProcessMetrics,
) -> None:
    overall = report.overall

    assert overall.reviewed == 6  # T6 and T7 have no final queue
    assert overall.first_touch_correct == 4  # T1, T3, T5, T10
    assert overall.first_touch_accuracy == pytest.approx(4 / 6)
    assert overall.reassigned == 2  # T2 (latest value wins), T4
    assert overall.reassignment_rate == pytest.approx(2 / 6)
    assert overall.overridden == 1
    assert overall.override_rate == pytest.approx(1 / 6)


def test_fallback_rate_by_reason_counts_decisions(report: ProcessMetrics) -> None:
    overall = report.overall

    assert overall.fallbacks == 4
    assert overall.fallback_rate == pytest.approx(4 / 9)
    assert overall.fallbacks_by_reason == {
        "drift": 1,
        "low_confidence": 2,
        "no_model": 1,
    }
    assert overall.fallback_rate_by_reason == pytest.approx(
        {"drift": 1 / 9, "low_confidence": 2 / 9, "no_model": 1 / 9}
    )


def test_time_to_escalate_runs_from_opening_or_first_decision(
    report: ProcessMetrics,
) -> None:
    # T4 from opened_at: 600 s; T3 from its first decision: 1200 s; T2 from
    # its decision (no opened_at): 3600 s.
    stats = report.overall.time_to_escalate

    assert report.overall.escalated == 3
    assert stats.count == 3
    assert stats.mean_s == pytest.approx(1800)
    assert stats.p50_s == pytest.approx(1200)
    assert stats.p90_s == pytest.approx(1200 + 0.8 * 2400)
    assert stats.max_s == pytest.approx(3600)


def test_open_tickets_are_aged_at_the_end_of_the_range(report: ProcessMetrics) -> None:
    # Open at midnight: T2 (14.5 h), T4 (14 h, resolved only later), T5 (13 h),
    # T6 (0.5 h), T7 (1.5 h).
    assert report.overall.open_tickets == 5
    assert report.overall.open_by_age == {
        "under_1h": 1,
        "1h_to_4h": 1,
        "4h_to_24h": 3,
        "1d_to_3d": 0,
        "3d_to_7d": 0,
        "over_7d": 0,
    }


def test_queue_aging_uses_the_queue_a_ticket_is_in_now(report: ProcessMetrics) -> None:
    aging = {row.queue: row for row in report.queue_aging}

    assert set(aging) == {
        "general_support",
        "platform_operations",
        "revenue_operations",
        "security",
    }
    assert aging["security"].open_tickets == 2  # T4 reassigned there, T7
    assert aging["security"].open_by_age["4h_to_24h"] == 1
    assert aging["security"].open_by_age["1h_to_4h"] == 1
    assert aging["revenue_operations"].open_by_age["4h_to_24h"] == 1
    assert aging["platform_operations"].open_by_age["under_1h"] == 1


def test_sla_attainment_by_priority(report: ProcessMetrics) -> None:
    sla = report.overall.sla_first_response

    # Met: T1 (30 min of 480), T2 (90 of 480: P3 from feedback), T3 (5 of
    # 480), T6 (15 of 60). Breached: T4 (20 of 15 from opening), T7 (P1,
    # never answered). Pending: T5 (P4, 13 h of 24). No target: T10 (P5).
    assert (sla.met, sla.breached, sla.pending, sla.no_target) == (4, 2, 1, 1)
    assert sla.attainment == pytest.approx(4 / 6)
    by_priority = {
        name: (counts.met, counts.breached, counts.pending)
        for name, counts in sla.by_priority.items()
    }
    assert by_priority == {
        "P1": (0, 2, 0),
        "P2": (1, 0, 0),
        "P3": (3, 0, 0),
        "P4": (0, 0, 1),
    }
    assert sla.by_priority["P1"].attainment == 0.0
    assert sla.by_priority["P4"].attainment is None
    assert report.sla_version == "2026.12"


def test_groups_by_queue_take_tickets_by_their_first_decision(
    report: ProcessMetrics,
) -> None:
    groups = {group.group: group for group in report.groups}

    assert list(groups) == sorted(groups)
    billing = groups["billing_invoicing"]
    assert (billing.decisions, billing.tickets, billing.reviewed) == (2, 2, 2)
    assert billing.first_touch_accuracy == pytest.approx(0.5)
    assert billing.override_rate == pytest.approx(0.5)
    identity = groups["identity_access"]
    assert (identity.decisions, identity.tickets, identity.fallback_rate) == (2, 1, 1.0)
    platform = groups["platform_operations"]
    assert platform.fallbacks_by_reason == {"drift": 1}
    assert platform.reassignment_rate == 1.0  # of one reviewed ticket, T4
    assert groups["security"].reviewed == 0
    assert groups["security"].first_touch_accuracy is None


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        pytest.param(
            "model_version", {"7": (6, 5), "8": (1, 1), "none": (2, 2)}, id="version"
        ),
        pytest.param(
            "mode",
            {"auto": (3, 3), "rules": (4, 3), "override": (1, 1), "suggest": (1, 1)},
            id="mode",
        ),
        pytest.param(
            "channel",
            {
                "api": (1, 1),
                "alert": (2, 2),
                "chat": (2, 1),
                "email": (3, 3),
                "portal": (1, 1),
            },
            id="channel",
        ),
    ],
)
def test_other_dimensions_group_decisions_and_tickets(
    filled_store: DecisionStore,
    sla: SlaPolicy,
    by: str,
    expected: dict[str, tuple[int, int]],
) -> None:
    data = load_process_data(filled_store, SINCE, UNTIL)

    report = compute_process_metrics(data, sla, by=by, now=NOW)

    assert report.by == by
    assert {g.group: (g.decisions, g.tickets) for g in report.groups} == expected
    assert report.overall.tickets == 8


def test_exceptions_by_source_system(report: ProcessMetrics) -> None:
    rows = [
        (row.source_system, row.fallbacks, row.overrides, row.reassignments, row.total)
        for row in report.exceptions_by_source
    ]

    assert rows == [
        ("chat", 2, 0, 0, 2),
        ("email", 0, 1, 1, 2),
        ("alert", 1, 0, 0, 1),
        ("alert/alertmanager", 0, 0, 1, 1),
        ("portal", 1, 0, 0, 1),
    ]


def test_enrichment_success_is_counted_per_ticket_and_per_source(
    report: ProcessMetrics, sla: SlaPolicy
) -> None:
    assert report.enrichment.available is False
    assert report.enrichment.attempted == 0
    assert report.enrichment.success_rate is None

    every = ["crm", "billing", "entitlements", "identity", "telemetry"]
    decisions = [
        _decision_row("T1", context_sources_answered=every),
        _decision_row(
            "T2",
            context_sources_answered=["crm", "entitlements", "identity", "telemetry"],
            context_sources_missing=["billing"],
        ),
        _decision_row("T3", context_sources_answered=["telemetry"]),
        _decision_row("T4", context_sources_answered=[], context_sources_missing=[]),
        _decision_row("T5"),
    ]
    with_enrichment = compute_process_metrics(
        ProcessData(SINCE, UNTIL, decisions), sla, now=NOW
    )
    enrichment = with_enrichment.enrichment
    assert enrichment.available is True
    assert (enrichment.attempted, enrichment.succeeded) == (3, 2)
    assert enrichment.success_rate == pytest.approx(2 / 3)
    billing = enrichment.by_source["billing"]
    assert (billing.attempted, billing.succeeded) == (2, 1)
    assert billing.success_rate == pytest.approx(0.5)
    assert enrichment.by_source["telemetry"].attempted == 3
    assert enrichment.by_source["telemetry"].success_rate == 1.0


def test_series_are_hourly_buckets_of_decision_time(report: ProcessMetrics) -> None:
    series = report.series

    assert len(series.fallback_reasons.starts) == 24
    assert series.fallback_reasons.starts[0] == SINCE
    assert series.fallback_reasons.bucket == "hour"
    fallbacks = series.fallback_reasons.values
    assert set(fallbacks) == {"drift", "low_confidence", "no_model"}
    assert _nonzero(fallbacks["low_confidence"]) == {10: 1, 13: 1}
    assert _nonzero(fallbacks["no_model"]) == {11: 1}
    assert _nonzero(fallbacks["drift"]) == {23: 1}
    moves = series.reassignments.values
    assert _nonzero(moves["reviewed"]) == {9: 2, 10: 2, 11: 1, 16: 1}
    assert _nonzero(moves["reassigned"]) == {9: 1, 10: 1}
    assert _nonzero(moves["overridden"]) == {9: 1}
    latency = series.escalation_latency.values
    assert _nonzero(latency["escalated"]) == {9: 1, 10: 2}
    assert latency["mean_s"][9] == pytest.approx(3600)
    assert latency["mean_s"][10] == pytest.approx(900)
    assert latency["p90_s"][10] == pytest.approx(600 + 0.9 * 600)
    assert latency["mean_s"][0] is None


def test_service_state_history_reads_drift_state_events(report: ProcessMetrics) -> None:
    history = report.service_state

    assert history.initial is not None
    assert history.initial.state == "model"
    assert [(change.state, change.at) for change in history.changes] == [
        ("rules", at(23))
    ]
    assert history.changes[0].payload == {"state": "rules", "reason": "drift"}


def test_report_is_json_with_every_section(report: ProcessMetrics) -> None:
    dumped = report.model_dump(mode="json")

    assert set(dumped) >= {
        "overall",
        "groups",
        "queue_aging",
        "exceptions_by_source",
        "enrichment",
        "series",
        "service_state",
    }
    assert dumped["since"] == "2026-12-01T00:00:00Z"


def test_a_range_still_in_progress_is_judged_now(
    filled_store: DecisionStore, sla: SlaPolicy
) -> None:
    # At 12:30 only T1-T5 are decided; T1 is resolved, T3's resolution at
    # 16:00 is still to come.
    noon = at(12, 30)
    data = load_process_data(filled_store, SINCE, noon)
    data.until = UNTIL

    report = compute_process_metrics(data, sla, now=noon)

    assert report.as_of == noon
    assert report.overall.tickets == 5
    assert report.overall.open_tickets == 4  # T2, T3, T4, T5: 1.5 h to 3 h old
    assert report.overall.open_by_age["1h_to_4h"] == 4
    assert report.overall.sla_first_response.pending == 1  # T5, P4


def test_empty_store_gives_zero_counts_and_no_rates(
    store: DecisionStore, sla: SlaPolicy
) -> None:
    report = compute_process_metrics(
        load_process_data(store, SINCE, UNTIL), sla, now=NOW
    )

    assert report.overall.tickets == 0
    assert report.overall.first_touch_accuracy is None
    assert report.overall.fallback_rate is None
    assert report.groups == []
    assert report.series.fallback_reasons.values == {}


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        pytest.param(None, None, (NOW - timedelta(days=7), NOW), id="defaults"),
        pytest.param("24h", None, (NOW - timedelta(hours=24), NOW), id="hours"),
        pytest.param("2w", None, (NOW - timedelta(weeks=2), NOW), id="weeks"),
        pytest.param(
            "2026-12-01", "2026-12-02T06:00:00", (SINCE, at(6, day=2)), id="iso"
        ),
        pytest.param(
            "30m", "2026-12-02T00:00:00Z", (UNTIL - timedelta(minutes=30), UNTIL),
            id="relative-to-until",
        ),
    ],
)  # fmt: skip
def test_time_ranges_read_dates_times_and_durations(
    since: str | None, until: str | None, expected: tuple[datetime, datetime]
) -> None:
    assert parse_time_range(since, until, NOW) == expected


@pytest.mark.parametrize(
    ("since", "until", "fields"),
    [
        pytest.param("last tuesday", None, {"since"}, id="bad-since"),
        pytest.param("7d", "soon", {"until"}, id="bad-until"),
        pytest.param("whenever", "soon", {"since", "until"}, id="both-bad"),
        pytest.param("2026-12-03", "2026-12-01", {"since"}, id="reversed"),
    ],
)
def test_bad_time_ranges_name_the_field(
    since: str, until: str | None, fields: set[str]
) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_time_range(since, until, NOW)

    assert {problem.field for problem in err.value.problems} == fields


def test_unknown_dimension_and_bucket_are_both_reported(sla: SlaPolicy) -> None:
    with pytest.raises(InvalidInputError) as err:
        compute_process_metrics(
            ProcessData(SINCE, UNTIL), sla, by="colour", bucket="fortnight"
        )

    limits = {problem.field: problem.limit for problem in err.value.problems}
    assert limits == {
        "by": "queue, channel, mode, model_version",
        "bucket": "hour, day",
    }


def test_long_ranges_get_daily_buckets_and_too_many_are_refused() -> None:
    assert len(bucket_starts(SINCE, SINCE + timedelta(days=30), "day")) == 30
    with pytest.raises(InvalidInputError, match="bucket"):
        bucket_starts(SINCE, SINCE + timedelta(days=365), "hour")


def test_bundled_sla_targets_match_the_taxonomy() -> None:
    from features.taxonomy import load_taxonomy

    targets = load_sla_policy().first_response_minutes
    promised = {p.id: p.first_response_minutes for p in load_taxonomy().priorities}

    assert targets == promised


def _record(
    number: int,
    ticket_id: str,
    channel: str,
    queue: str,
    mode: str,
    model_version: str | None,
    fallback_reason: str | None,
    priority: str,
    decided_at: datetime,
) -> DecisionRecord:
    decision = _decision_row(
        ticket_id,
        decision_id=f"dec-{number:03d}",
        queue=queue,
        mode=mode,
        model_version=model_version,
        fallback_reason=fallback_reason,
        priority=priority,
        decided_at=decided_at,
    )
    del decision["channel"]  # a column of the record, not of the decision
    return DecisionRecord(decision, f"req-{number:03d}", channel, "http")


def _decision_row(ticket_id: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "decision_id": f"dec-{ticket_id}",
        "ticket_id": ticket_id,
        "queue": "general_support",
        "priority": "P3",
        "mode": "auto",
        "model_version": "7",
        "rule_set_version": "2026.11",
        "decided_at": at(9),
        "channel": "email",
        **fields,
    }
    return row


def _nonzero(values: list[float | None]) -> dict[int, float]:
    return {index: value for index, value in enumerate(values) if value}
