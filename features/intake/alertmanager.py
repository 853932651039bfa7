"""Prometheus Alertmanager webhook notifications normalised into a `Ticket`.

One notification is one ticket: Alertmanager has already grouped the alerts
(see `groupKey`), and the policy's override rules act on the group's severity
and service. The id is a hash of the group key and the alerts' fingerprints,
so the "resolved" notification for the same alerts gets the same id as the
"firing" one and downstream stores can update rather than duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from features.intake._shared import (
    Problems,
    build_ticket,
    content_id,
    fail,
    optional_text,
    optional_time,
    require_object,
    shorten,
    type_name,
)
from features.schema import Ticket

log = logging.getLogger(__name__)

CHANNEL = "alert"
SOURCE_SYSTEM = "alertmanager"
WEBHOOK_VERSION = "4"
MAX_ALERTS = 1_000
MAX_LABELS = 100
MAX_FINGERPRINTS_KEPT = 50

# Labels that become Ticket fields rather than metadata; `alertname` and `job`
# stay in metadata too, since rules match on them.
_PROMOTED_LABELS = frozenset({"severity", "service"})

# Most severe first; a group whose alerts disagree takes the most severe.
# Values not listed rank after all of these, in order of appearance.
_SEVERITY_RANK = (
    "critical",
    "page",
    "high",
    "error",
    "major",
    "warning",
    "medium",
    "minor",
    "low",
    "info",
    "none",
)


@dataclass(frozen=True)
class _Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    fingerprint: str | None
    generator_url: str | None


def normalize_alertmanager(
    payload: dict[str, Any], *, ticket_id: str | None = None
) -> Ticket:
    """Turn an Alertmanager webhook notification (version 4) into a `Ticket`.

    The subject is the alert name and summary, the body the descriptions of
    the firing alerts (of all alerts when none is firing), `severity` and
    `service` (or `job`) labels fill the Ticket fields, and the remaining
    common labels go to `metadata["labels"]`. An alert without a status counts
    as firing, as in hand-written webhooks.

    Raises:
        PayloadTooLargeError: more than `MAX_ALERTS` alerts or `MAX_LABELS`
            labels on one alert, or a text over the schema's limits.
        InvalidTicketError: any other invalid field, each one named
            (`alerts.2.labels.severity`).
    """
    data = require_object(payload, CHANNEL)
    problems = Problems(CHANNEL)
    alerts = _read_alerts(data, problems)
    group = {
        key: optional_text(data, key, problems)
        for key in ("version", "status", "receiver", "groupKey", "externalURL")
    }
    common_labels = _read_labels(data.get("commonLabels"), "commonLabels", problems)
    common_annotations = _read_labels(
        data.get("commonAnnotations"), "commonAnnotations", problems
    )
    group_labels = _read_labels(data.get("groupLabels"), "groupLabels", problems)
    problems.raise_if_any()

    if group["version"] not in (None, WEBHOOK_VERSION):
        log.warning(
            "unexpected alertmanager webhook version, reading it as version 4",
            extra={"version": shorten(group["version"] or "", 16)},
        )
    firing = [alert for alert in alerts if alert.status == "firing"]
    described = firing or alerts
    shared = common_labels or _shared_labels(alerts)
    annotations = common_annotations or described[0].annotations
    labels = {**group_labels, **shared}

    subject = _subject(labels, annotations, described, is_resolved=not firing)
    body = _body(described)
    if not subject and not body:
        fail(CHANNEL, "alerts", "no alertname, summary or description to report")
    fields: dict[str, Any] = {
        "id": ticket_id or _group_id(group["groupKey"], alerts),
        "channel": CHANNEL,
        "subject": subject,
        "body": body,
        "severity": _severity(shared, described),
        "service": _service(shared, described),
        "created_at": min(
            (alert.starts_at for alert in described if alert.starts_at),
            default=None,
        ),
        "source_system": SOURCE_SYSTEM,
        "metadata": _metadata(group, labels, annotations, alerts, len(firing)),
    }
    return build_ticket(fields, CHANNEL)


def _read_alerts(data: dict[str, Any], problems: Problems) -> list[_Alert]:
    raw_alerts = data.get("alerts")
    if raw_alerts is None:
        problems.add("alerts", "required field is missing")
        return []
    if not isinstance(raw_alerts, list):
        problems.add("alerts", f"expected an array, got {type_name(raw_alerts)}")
        return []
    if not raw_alerts:
        problems.add("alerts", "expected at least one alert")
        return []
    if len(raw_alerts) > MAX_ALERTS:
        limit = f"{MAX_ALERTS} alerts"
        problems.add("alerts", f"too many alerts: {len(raw_alerts)}", limit, size=True)
        return []

    alerts = []
    for index, raw in enumerate(raw_alerts):
        alert = _read_alert(raw, f"alerts.{index}", problems)
        if alert is not None:
            alerts.append(alert)
    return alerts


def _read_alert(raw: object, where: str, problems: Problems) -> _Alert | None:
    if not isinstance(raw, dict):
        problems.add(where, f"expected an object, got {type_name(raw)}")
        return None

    status = optional_text(raw, "status", problems, field=f"{where}.status")
    labels = _read_labels(raw.get("labels"), f"{where}.labels", problems)
    annotations = _read_labels(raw.get("annotations"), f"{where}.annotations", problems)
    starts_at = optional_time(raw, "startsAt", problems, field=f"{where}.startsAt")
    # endsAt is read only to report a malformed one; the ticket has no use for it.
    optional_time(raw, "endsAt", problems, field=f"{where}.endsAt")
    fingerprint = optional_text(
        raw, "fingerprint", problems, field=f"{where}.fingerprint"
    )
    generator_url = optional_text(
        raw, "generatorURL", problems, field=f"{where}.generatorURL"
    )
    return _Alert(
        status=(status or "firing").strip().lower(),
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        fingerprint=fingerprint,
        generator_url=generator_url,
    )


def _read_labels(raw: object, where: str, problems: Problems) -> dict[str, str]:
    """A label or annotation set as strings; Prometheus values are strings."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(where, f"expected an object, got {type_name(raw)}")
        return {}
    if len(raw) > MAX_LABELS:
        limit = f"{MAX_LABELS} labels"
        problems.add(where, f"too many labels: {len(raw)}", limit, size=True)
        return {}

    labels = {}
    for name, value in raw.items():
        if value is None:
            continue
        # Hand-written webhooks send numbers and booleans; they read the same.
        if isinstance(value, str | int | float | bool):
            labels[str(name)] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        else:
            problems.add(
                f"{where}.{name}", f"expected a string, got {type_name(value)}"
            )
    return labels


def _shared_labels(alerts: list[_Alert]) -> dict[str, str]:
    """Labels every alert has with the same value (what commonLabels holds)."""
    if not alerts:
        return {}
    first, *others = alerts
    return {
        name: value
        for name, value in first.labels.items()
        if all(alert.labels.get(name) == value for alert in others)
    }


def _subject(
    labels: dict[str, str],
    annotations: dict[str, str],
    described: list[_Alert],
    *,
    is_resolved: bool,
) -> str:
    name = labels.get("alertname") or described[0].labels.get("alertname", "")
    summary = annotations.get("summary") or described[0].annotations.get("summary", "")
    text = ": ".join(part.strip() for part in (name, summary) if part.strip())
    if text and len(described) > 1:
        text = f"{text} ({len(described)} alerts)"
    if text and is_resolved:
        text = f"[resolved] {text}"
    return shorten(text)


def _body(described: list[_Alert]) -> str:
    """One line per distinct description; grouped alerts often share one."""
    lines: list[str] = []
    for alert in described:
        text = (
            alert.annotations.get("description")
            or alert.annotations.get("message")
            or alert.annotations.get("summary")
            or ""
        ).strip()
        instance = alert.labels.get("instance")
        line = f"[{instance}] {text}" if instance and text else text
        if line and line not in lines:
            lines.append(line)
    return "\n".join(lines)


def _severity(shared: dict[str, str], described: list[_Alert]) -> str | None:
    if shared.get("severity"):
        return shared["severity"]
    values = [
        alert.labels["severity"] for alert in described if alert.labels.get("severity")
    ]
    if not values:
        return None
    known = [value for value in values if value.lower() in _SEVERITY_RANK]
    if not known:
        return values[0]
    return min(known, key=lambda value: _SEVERITY_RANK.index(value.lower()))


def _service(shared: dict[str, str], described: list[_Alert]) -> str | None:
    for labels in (shared, *(alert.labels for alert in described)):
        service = labels.get("service") or labels.get("job")
        if service:
            return service
    return None


def _group_id(group_key: str | None, alerts: list[_Alert]) -> str:
    fingerprints = sorted(alert.fingerprint or "" for alert in alerts)
    if not group_key and not any(fingerprints):
        # Neither is sent by hand-written webhooks; the labels identify the alerts.
        fingerprints = sorted(
            ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            for alert in alerts
        )
    return content_id(CHANNEL, group_key or "", *fingerprints)


def _metadata(
    group: dict[str, str | None],
    labels: dict[str, str],
    annotations: dict[str, str],
    alerts: list[_Alert],
    firing_count: int,
) -> dict[str, Any]:
    fingerprints = [alert.fingerprint for alert in alerts if alert.fingerprint]
    extra_annotations = {
        name: value
        for name, value in annotations.items()
        if name not in ("summary", "description")
    }
    metadata: dict[str, Any] = {
        "status": (group["status"] or ("firing" if firing_count else "resolved")),
        "receiver": group["receiver"],
        "group_key": group["groupKey"],
        "external_url": group["externalURL"],
        "webhook_version": group["version"],
        "alert_count": len(alerts),
        "firing_count": firing_count,
        "resolved_count": len(alerts) - firing_count,
        "labels": {k: v for k, v in labels.items() if k not in _PROMOTED_LABELS},
        "annotations": extra_annotations,
        "fingerprints": fingerprints[:MAX_FINGERPRINTS_KEPT],
        "generator_urls": sorted(
            {alert.generator_url for alert in alerts if alert.generator_url}
        )[:MAX_FINGERPRINTS_KEPT],
    }
    return {
        key: value for key, value in metadata.items() if value not in (None, {}, [])
    }
