"""Settings of the online service, on top of the process settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from features.config import bundled_config_path
from features.settings import Settings


class ServingSettings(Settings):
    """What the HTTP service needs beyond the state folder and registry."""

    host: str = Field(
        default="127.0.0.1",
        description="Address the service listens on; 127.0.0.1 whenever auth is off.",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    rules_path: Path = Field(
        default_factory=lambda: bundled_config_path("rules.yaml"),
        description="Override, fallback and escalation rules.",
    )
    policy_path: Path = Field(
        default_factory=lambda: bundled_config_path("policy.yaml"),
        description="Automation level and suggest band per queue.",
    )
    notifications_path: Path = Field(
        default_factory=lambda: bundled_config_path("notifications.yaml"),
        description=(
            "Webhook targets that rules notify (executive bridge, ...); every "
            "name a rule uses must be defined there."
        ),
    )
    serve_config_path: Path = Field(
        default_factory=lambda: bundled_config_path("serve.yaml"),
        description="Ray Serve config: replicas, batching, threads, time budgets.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description=(
            "YAML of API keys as SHA-256 hashes with scopes; unset and no "
            "api_keys: auth is off and the service binds 127.0.0.1 only."
        ),
    )
    api_keys: str = Field(
        default="",
        description=(
            "Keys inline, `name:sha256hex:scope+scope` separated by commas; "
            "for containers where a file is awkward."
        ),
    )
    max_batch_tickets: int = Field(
        default=500, ge=1, le=100_000, description="Tickets per /v1/route/batch call."
    )
    max_request_bytes: int = Field(
        default=5_000_000,
        ge=1_000,
        description="Largest request body accepted; bigger gets 413 before parsing.",
    )
    process_metrics_window_hours: float = Field(
        default=168.0,
        gt=0,
        description=(
            "Trailing window the process-metric gauges on /metrics cover; a "
            "week by default, long enough for tickets to get feedback."
        ),
    )
    process_metrics_refresh_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Least time between two recomputations of the process-metric "
            "gauges; each reads the whole window from the decision store."
        ),
    )
