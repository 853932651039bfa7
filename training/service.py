"""The training-side commands as functions: train, evaluate, default model.

The CLI is a thin layer over these, and so is `switchboard serve` when it
needs a first model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.encoder import CachedEncoder, EmbeddingCache, Encoder
from features.errors import RegistryError
from features.settings import Settings
from features.taxonomy import load_taxonomy
from training.config import load_gates, load_training_config
from training.datasets import load_for_evaluation, load_labelled
from training.evaluation import evaluate_predictions
from training.pipeline import train_model
from training.promotion import PromotionResult, promote
from training.registry import (
    CHAMPION,
    VersionInfo,
    get_version,
    load_bundle,
    log_training_run,
)

log = logging.getLogger(__name__)


@dataclass
class DataOptions:
    text_column: str = "text"
    label_column: str = "label"
    split_column: str = "split"
    out_of_scope_label: str | None = None


def make_encoder(settings: Settings) -> CachedEncoder:
    encoder = Encoder(
        settings.encoder,
        batch_size=settings.encode_batch_size,
        backend=settings.encoder_backend,
        export_dir=settings.encoder_export_dir,
    )
    return CachedEncoder(encoder, EmbeddingCache(settings.embedding_cache_path))


def train(
    settings: Settings,
    data_path: Path | str,
    options: DataOptions,
    *,
    overrides: dict[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_encoded: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train on a data file, log to MLflow and register a challenger version."""
    config = load_training_config(settings.training_path)
    if overrides:
        config = config.model_copy(
            update={k: v for k, v in overrides.items() if v is not None}
        )
    taxonomy = load_taxonomy(settings.taxonomy_path)
    data = load_labelled(
        data_path,
        text_column=options.text_column,
        label_column=options.label_column,
        split_column=options.split_column,
        out_of_scope_label=options.out_of_scope_label,
        validation_share=config.validation_share,
        test_share=config.test_share,
        seed=config.seed,
        min_train_examples=config.min_train_examples,
    )
    if on_total:
        on_total(len(data.frame))
    result = train_model(
        data, make_encoder(settings), config, on_step=on_step, on_encoded=on_encoded
    )
    if on_step:
        on_step("registering in MLflow")
    version = log_training_run(
        result, settings, taxonomy_version=taxonomy.version, data_source=str(data_path)
    )
    return {
        "model": version.name,
        "model_version": version.version,
        "run_id": version.run_id,
        "aliases": version.aliases,
        "metrics": result.evaluation["metrics"],
        "per_queue": result.evaluation["per_queue"],
        "thresholds": result.bundle.thresholds.model_dump(),
        "rare_labels": data.rare_labels,
        "splits": data.frame["split"].value_counts().to_dict(),
    }


def evaluate(
    settings: Settings,
    ref: str,
    data_path: Path | str,
    options: DataOptions,
    *,
    split: str | None = None,
) -> dict[str, Any]:
    """Score a registered version on labelled data.

    Every row counts unless `split` names one; a file with a split column is
    scored on its test rows by default.
    """
    version, bundle = load_bundle(settings, ref)
    frame, used_split = load_for_evaluation(
        data_path,
        text_column=options.text_column,
        label_column=options.label_column,
        split_column=options.split_column,
        split=split,
    )
    encoder = make_encoder(settings)
    predictions = bundle.predict(encoder.encode(frame["text"].tolist()))
    report = evaluate_predictions(
        predictions,
        frame["label"].tolist(),
        bundle.thresholds,
        options.out_of_scope_label,
    )
    return {
        "model": version.name,
        "model_version": version.version,
        "split": used_split,
        **report,
    }


def promote_version(
    settings: Settings, ref: str, reason: str, promoted_by: str | None = None
) -> PromotionResult:
    gates = load_gates(settings.gates_path)
    return promote(
        settings,
        ref,
        reason=reason,
        gates=gates,
        encoder=make_encoder(settings),
        promoted_by=promoted_by,
    )


def champion_or_none(settings: Settings) -> VersionInfo | None:
    try:
        return get_version(settings, CHAMPION)
    except RegistryError:
        return None


def ensure_default_model(
    settings: Settings,
    *,
    on_step: Callable[[str], None] | None = None,
    on_encoded: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> VersionInfo:
    """The champion; with none, train and promote one on the bundled sample."""
    existing = champion_or_none(settings)
    if existing is not None:
        return existing
    from features.sample_data import SAMPLE_PATH

    log.info(
        "no champion, training the default model", extra={"data": str(SAMPLE_PATH)}
    )
    trained = train(
        settings,
        SAMPLE_PATH,
        DataOptions(),
        on_step=on_step,
        on_encoded=on_encoded,
        on_total=on_total,
    )
    promote_version(
        settings,
        trained["model_version"],
        reason="embedded default: trained on the bundled sample tickets",
        promoted_by="switchboard",
    )
    return get_version(settings, CHAMPION)
