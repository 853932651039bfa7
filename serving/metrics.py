"""Prometheus metrics of the online service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from monitoring.process_metrics import GroupMetrics, ProcessMetrics

LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ServiceMetrics:
    """One registry per ingress replica; scraped at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "switchboard_requests_total",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "switchboard_request_latency_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.decisions = Counter(
            "switchboard_decisions_total",
            "Decisions by mode and fallback reason.",
            ["mode", "fallback_reason", "queue"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "switchboard_model_version",
            "1 for the model version serving now (label), 0 for none.",
            ["model", "version", "state"],
            registry=self.registry,
        )
        self.process = ProcessGauges(self.registry)

    def record_decisions(self, decisions: list[dict]) -> None:
        for decision in decisions:
            self.decisions.labels(
                decision["mode"],
                decision.get("fallback_reason") or "none",
                decision["queue"],
            ).inc()

    def set_model(self, info: dict) -> None:
        self.model_version.clear()
        self.model_version.labels(
            info.get("model_name") or "",
            str(info.get("model_version") or ""),
            info.get("state", "unknown"),
        ).set(1 if info.get("state") == "ready" else 0)

    def export(self) -> bytes:
        return generate_latest(self.registry)


class ProcessGauges:
    """Process metrics (monitoring.process_metrics) over a trailing window.

    Every series carries `by` (the dimension) and `group` (its value, or
    "all"); a rate that has no denominator yet is left out, not set to 0.
    Each refresh replaces every series, so groups that left the window go.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        group = ["by", "group"]

        def gauge(name: str, text: str, labels: list[str]) -> Gauge:
            return Gauge(f"switchboard_process_{name}", text, labels, registry=registry)

        self.window = gauge("window_seconds", "Length of the trailing window.", [])
        self.tickets = gauge("tickets", "Tickets decided in the window.", group)
        self.reviewed = gauge("reviewed_tickets", "Tickets with a final queue.", group)
        self.accuracy = gauge(
            "first_touch_accuracy", "First decision's queue == final queue.", group
        )
        self.reassignment = gauge(
            "reassignment_rate", "Reviewed tickets moved to another queue.", group
        )
        self.override = gauge("override_rate", "Reviewed tickets overridden.", group)
        self.fallback = gauge(
            "fallback_rate", "Decisions by fallback reason.", [*group, "reason"]
        )
        self.escalation = gauge(
            "time_to_escalate_seconds", "Start to escalation.", [*group, "stat"]
        )
        self.open = gauge(
            "open_tickets", "Unresolved tickets by age band.", [*group, "age_band"]
        )
        self.sla = gauge(
            "sla_first_response_attainment",
            "Met / (met + breached) first-response targets.",
            [*group, "priority"],
        )
        self.exceptions = gauge(
            "exceptions", "Exceptions by source system.", ["source_system", "kind"]
        )
        self.enrichment = gauge(
            "enrichment_success_rate",
            "Tickets whose every context source asked answered / tickets enriched.",
            [],
        )
        self.enrichment_by_source = gauge(
            "enrichment_source_success_rate",
            "Lookups a context source answered / lookups asked of it.",
            ["source"],
        )

    def set_reports(self, reports: Sequence[ProcessMetrics], window_s: float) -> None:
        """Replace every series with these reports' (one per dimension)."""
        for metric in (
            self.tickets,
            self.reviewed,
            self.accuracy,
            self.reassignment,
            self.override,
            self.fallback,
            self.escalation,
            self.open,
            self.sla,
            self.exceptions,
            self.enrichment_by_source,
        ):
            metric.clear()
        self.window.set(window_s)
        for report in reports:
            for group in [report.overall, *report.groups]:
                self._set_group(report.by, group)
        if reports:
            self._set_totals(reports[0])

    def _set_group(self, by: str, metrics: GroupMetrics) -> None:
        labels = (by, metrics.group)
        self.tickets.labels(*labels).set(metrics.tickets)
        self.reviewed.labels(*labels).set(metrics.reviewed)
        for gauge, value in (
            (self.accuracy, metrics.first_touch_accuracy),
            (self.reassignment, metrics.reassignment_rate),
            (self.override, metrics.override_rate),
        ):
            if value is not None:
                gauge.labels(*labels).set(value)
        if metrics.fallback_rate is not None:
            self.fallback.labels(*labels, "any").set(metrics.fallback_rate)
        for reason, rate in metrics.fallback_rate_by_reason.items():
            self.fallback.labels(*labels, reason).set(rate)
        stats = metrics.time_to_escalate
        for stat, value in (("mean", stats.mean_s), ("p90", stats.p90_s)):
            if value is not None:
                self.escalation.labels(*labels, stat).set(value)
        for band, count in metrics.open_by_age.items():
            self.open.labels(*labels, band).set(count)
        sla = metrics.sla_first_response
        if sla.attainment is not None:
            self.sla.labels(*labels, "all").set(sla.attainment)
        for priority, counts in sla.by_priority.items():
            if counts.attainment is not None:
                self.sla.labels(*labels, priority).set(counts.attainment)

    def _set_totals(self, report: ProcessMetrics) -> None:
        for row in report.exceptions_by_source:
            for kind in ("fallbacks", "overrides", "reassignments"):
                self.exceptions.labels(row.source_system, kind).set(getattr(row, kind))
        if report.enrichment.success_rate is not None:
            self.enrichment.set(report.enrichment.success_rate)
        for source, rate in report.enrichment.by_source.items():
            if rate.success_rate is not None:
                self.enrichment_by_source.labels(source).set(rate.success_rate)
