"""Training and promotion settings loaded from `configs/`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from features.config import bundled_config_path, load_yaml_model


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_precision: float = Field(default=0.95, gt=0.0, le=1.0)
    validation_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    test_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    seed: int = 13
    min_queue_support: int = Field(default=25, ge=1)
    min_train_examples: int = Field(default=8, ge=1)
    head_c: float = Field(default=10.0, gt=0.0)
    head_max_iter: int = Field(default=2000, ge=10)
    in_scope_keep_share: float = Field(default=0.99, gt=0.5, le=1.0)


class PromotionGates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_macro_f1: float = Field(ge=0.0, le=1.0)
    max_ece: float = Field(ge=0.0, le=1.0)
    min_coverage: float = Field(ge=0.0, le=1.0)
    max_regression: float = Field(ge=0.0, le=1.0)


def load_training_config(path: Path | str | None = None) -> TrainingConfig:
    return load_yaml_model(path or bundled_config_path("training.yaml"), TrainingConfig)


def load_gates(path: Path | str | None = None) -> PromotionGates:
    return load_yaml_model(
        path or bundled_config_path("promotion.yaml"), PromotionGates
    )
