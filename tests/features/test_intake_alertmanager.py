"""Alertmanager webhooks into tickets: severity and service promoted."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from features.errors import InvalidTicketError, PayloadTooLargeError
from features.intake.alertmanager import MAX_ALERTS, normalize_alertmanager
from features.schema import Channel


def alert(
    instance: str, *, status: str = "firing", severity: str = "critical"
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "PostgresReplicationLag",
            "severity": severity,
            "job": "postgres-exporter",
            "instance": instance,
            "cluster": "eu-1",
        },
        "annotations": {
            "summary": "Replication lag above 30s",
            "description": f"Replica {instance} is 45s behind the primary.",
            "runbook_url": "https://runbooks.example.com/pg-lag",
        },
        "startsAt": f"2024-06-04T09:0{len(instance) % 10}:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=pg_lag",
        "fingerprint": f"fp-{instance}",
    }


def notification(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="PostgresReplicationLag"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "switchboard",
        "groupLabels": {"alertname": "PostgresReplicationLag"},
        "commonLabels": {
            "alertname": "PostgresReplicationLag",
            "severity": "critical",
            "job": "postgres-exporter",
            "cluster": "eu-1",
        },
        "commonAnnotations": {
            "summary": "Replication lag above 30s",
            "runbook_url": "https://runbooks.example.com/pg-lag",
        },
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert("db-2"), alert("db-13")],
    }
    payload.update(overrides)
    return payload


def test_notification_becomes_an_alert_ticket() -> None:
    ticket = normalize_alertmanager(notification())

    assert ticket.channel is Channel.ALERT
    assert ticket.source_system == "alertmanager"
    assert (
        ticket.subject == "PostgresReplicationLag: Replication lag above 30s (2 alerts)"
    )
    assert ticket.body == (
        "[db-2] Replica db-2 is 45s behind the primary.\n"
        "[db-13] Replica db-13 is 45s behind the primary."
    )
    assert ticket.severity == "critical"
    assert ticket.service == "postgres-exporter"
    assert ticket.created_at == datetime(2024, 6, 4, 9, 4, 0, 123456, tzinfo=UTC)


def test_other_labels_and_group_facts_go_to_metadata() -> None:
    metadata = normalize_alertmanager(notification()).metadata

    assert metadata["labels"] == {
        "alertname": "PostgresReplicationLag",
        "job": "postgres-exporter",
        "cluster": "eu-1",
    }
    assert metadata["annotations"] == {
        "runbook_url": "https://runbooks.example.com/pg-lag"
    }
    assert metadata["status"] == "firing"
    assert metadata["receiver"] == "switchboard"
    assert metadata["firing_count"] == 2
    assert metadata["fingerprints"] == ["fp-db-2", "fp-db-13"]


def test_service_label_wins_over_job() -> None:
    payload = notification()
    payload["commonLabels"]["service"] = "orders-db"

    assert normalize_alertmanager(payload).service == "orders-db"


def test_only_firing_alerts_are_described_when_some_have_resolved() -> None:
    payload = notification(alerts=[alert("db-2"), alert("db-13", status="resolved")])

    ticket = normalize_alertmanager(payload)

    assert "db-13" not in ticket.body
    assert ticket.metadata["resolved_count"] == 1


def test_resolved_only_notification_is_still_a_ticket_marked_resolved() -> None:
    payload = notification(
        status="resolved",
        alerts=[alert("db-2", status="resolved"), alert("db-13", status="resolved")],
    )

    ticket = normalize_alertmanager(payload)

    assert ticket.subject.startswith("[resolved] PostgresReplicationLag")
    assert "db-2" in ticket.body
    assert ticket.metadata["status"] == "resolved"
    assert ticket.metadata["firing_count"] == 0


def test_resolved_notification_has_the_same_id_as_the_firing_one() -> None:
    firing = notification()
    resolved = notification(
        status="resolved",
        alerts=[alert("db-13", status="resolved"), alert("db-2", status="resolved")],
    )

    first = normalize_alertmanager(firing)

    assert first.id.startswith("alert-")
    assert normalize_alertmanager(resolved).id == first.id
    assert normalize_alertmanager(notification(groupKey="other")).id != first.id


def test_without_common_labels_the_most_severe_alert_sets_the_severity() -> None:
    payload = notification(
        commonLabels={},
        alerts=[alert("db-2", severity="warning"), alert("db-13", severity="critical")],
    )

    assert normalize_alertmanager(payload).severity == "critical"


def test_hand_written_webhook_with_only_labels_is_accepted() -> None:
    payload = {
        "alerts": [
            {
                "labels": {
                    "alertname": "QueueBacklog",
                    "service": "billing",
                    "shard": 3,
                },
                "annotations": {"description": "Backlog at 12k messages."},
            }
        ]
    }

    ticket = normalize_alertmanager(payload)

    assert ticket.subject == "QueueBacklog"
    assert ticket.body == "Backlog at 12k messages."
    assert ticket.service == "billing"
    assert ticket.metadata["labels"] == {"alertname": "QueueBacklog", "shard": "3"}
    assert normalize_alertmanager(copy.deepcopy(payload)).id == ticket.id


def test_unknown_webhook_version_is_still_read() -> None:
    assert normalize_alertmanager(notification(version="5")).severity == "critical"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(notification(alerts=None), "alerts", id="alerts-missing"),
        pytest.param(notification(alerts={"a": 1}), "alerts", id="alerts-not-a-list"),
        pytest.param(notification(alerts=[]), "alerts", id="no-alerts"),
        pytest.param(notification(alerts=["firing"]), "alerts.0", id="alert-a-string"),
        pytest.param(
            notification(alerts=[alert("a"), {"labels": ["x"]}]),
            "alerts.1.labels",
            id="labels-not-object",
        ),
        pytest.param(
            notification(alerts=[{"labels": {"severity": {"level": 1}}}]),
            "alerts.0.labels.severity",
            id="label-value-nested",
        ),
        pytest.param(
            notification(alerts=[{**alert("a"), "startsAt": "soon"}]),
            "alerts.0.startsAt",
            id="bad-start-time",
        ),
        pytest.param(
            notification(alerts=[{**alert("a"), "fingerprint": 7}]),
            "alerts.0.fingerprint",
            id="fingerprint-not-string",
        ),
        pytest.param(
            notification(commonLabels="x"), "commonLabels", id="common-labels"
        ),
        pytest.param(notification(groupKey=["k"]), "groupKey", id="group-key-list"),
        pytest.param(notification(status=1), "status", id="status-not-string"),
        pytest.param(
            {"alerts": [{"labels": {"instance": "a"}}]}, "alerts", id="nothing-to-say"
        ),
        pytest.param([notification()], "payload", id="payload-a-list"),
    ],
)
def test_invalid_notification_is_refused_naming_the_field(
    payload: Any, field: str
) -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize_alertmanager(payload)

    assert field in [problem.field for problem in caught.value.problems]


def test_too_many_alerts_is_refused_as_too_large_naming_the_limit() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_alertmanager(notification(alerts=[alert("a")] * (MAX_ALERTS + 1)))

    assert "alerts" in str(caught.value)
    assert f"{MAX_ALERTS} alerts" in str(caught.value)


def test_severity_over_the_schema_limit_is_refused_as_too_large() -> None:
    payload = notification()
    payload["commonLabels"]["severity"] = "s" * 33

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_alertmanager(payload)

    assert "severity" in str(caught.value)
