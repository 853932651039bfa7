"""Prometheus metrics of the online service."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

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
