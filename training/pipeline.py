"""From labelled tickets to a trained, calibrated, thresholded model bundle."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.encoder import CachedEncoder
from training.bundle import ModelBundle, Predictions
from training.config import TrainingConfig
from training.datasets import LabelledData
from training.evaluation import evaluate_predictions, routed_mask
from training.head import fit_temperature, train_head
from training.profile import ReferenceProfile, build_reference_profile
from training.thresholds import (
    RoutingThresholds,
    choose_min_similarity,
    choose_thresholds,
)

log = logging.getLogger(__name__)

StepCallback = Callable[[str], None]


@dataclass
class TrainingResult:
    bundle: ModelBundle
    evaluation: dict[str, Any]  # on test rows
    validation: dict[str, Any]  # on validation rows, after thresholds
    test_frame: pd.DataFrame  # id, text, label of the test rows
    test_predictions: Predictions
    params: dict[str, Any]
    # None only for results built by hand (tests); train_model always sets it.
    reference_profile: ReferenceProfile | None = None


def train_model(
    data: LabelledData,
    encoder: CachedEncoder,
    config: TrainingConfig,
    *,
    on_step: StepCallback | None = None,
    on_encoded: Callable[[int], None] | None = None,
) -> TrainingResult:
    """Encode, fit the head, calibrate, choose thresholds and evaluate.

    Out-of-scope rows never train the head; in validation they help choose
    the thresholds and the abstention cut, and in test they are only scored.
    """
    step = on_step or (lambda _message: None)
    oos = data.out_of_scope_label

    step("encoding tickets")
    vectors = encoder.encode(data.frame["text"].tolist(), progress=on_encoded)
    frame = data.frame.assign(_row=np.arange(len(data.frame)))
    train = frame[(frame["split"] == "train") & (frame["label"] != oos)]
    validation = frame[frame["split"] == "validation"]
    test = frame[frame["split"] == "test"]

    step("training the head")
    head = train_head(
        vectors[train["_row"]],
        train["label"].tolist(),
        c=config.head_c,
        max_iter=config.head_max_iter,
        seed=config.seed,
    )
    train_counts = train["label"].value_counts().to_dict()
    bundle = ModelBundle(
        head=head,
        temperature=1.0,
        # Replaced below, once validation scores exist.
        thresholds=RoutingThresholds(
            target_precision=config.target_precision, global_threshold=1.0, queues={}
        ),
        encoder=encoder.encoder.name,
        encoder_identity=encoder.encoder.identity,
        encoder_backend=encoder.encoder.backend,
        index_embeddings=vectors[train["_row"]],
        index_labels=train["label"].tolist(),
        index_ids=train["id"].tolist(),
    )

    step("calibrating on validation")
    val_vectors = vectors[validation["_row"]]
    val_labels = validation["label"].to_numpy()
    known = np.isin(val_labels, head.labels)
    label_index = {label: i for i, label in enumerate(head.labels)}
    targets = np.array([label_index[label] for label in val_labels[known]], dtype=int)
    bundle.temperature = fit_temperature(head.logits(val_vectors[known]), targets)

    step("choosing thresholds")
    val_predictions = bundle.predict(val_vectors)
    val_correct = np.array(val_predictions.queues) == val_labels
    bundle.thresholds = choose_thresholds(
        predicted=val_predictions.top_index,
        confidences=val_predictions.confidence,
        correct=val_correct,
        labels=head.labels,
        train_counts=train_counts,
        target_precision=config.target_precision,
        min_queue_support=config.min_queue_support,
        min_train_examples=config.min_train_examples,
    )
    by_confidence = routed_mask(val_predictions, bundle.thresholds)
    bundle.thresholds.min_similarity = choose_min_similarity(
        val_predictions.similarity,
        is_out_of_scope=~known if oos is None else val_labels == oos,
        routed_by_confidence=by_confidence,
        keep_share=config.in_scope_keep_share,
    )
    validation_report = evaluate_predictions(
        val_predictions, val_labels.tolist(), bundle.thresholds, oos
    )

    step("evaluating on test")
    test_predictions = bundle.predict(vectors[test["_row"]])
    evaluation = evaluate_predictions(
        test_predictions, test["label"].tolist(), bundle.thresholds, oos
    )

    step("profiling held-out tickets for drift monitoring")
    held_out = frame[frame["split"] != "train"]
    if held_out.empty:
        held_out = frame
    held_out_vectors = vectors[held_out["_row"]]
    profile = build_reference_profile(
        held_out["text"].tolist(),
        held_out_vectors,
        bundle.predict(held_out_vectors),
        bundle.thresholds,
        fit_embeddings=vectors[train["_row"]],
        seed=config.seed,
    )
    params = {
        "encoder": encoder.encoder.identity,
        "head": "logistic_regression",
        "head_c": config.head_c,
        "target_precision": config.target_precision,
        "min_queue_support": config.min_queue_support,
        "min_train_examples": config.min_train_examples,
        "train_rows": len(train),
        "validation_rows": len(validation),
        "test_rows": len(test),
        "queues": len(head.labels),
        "out_of_scope_label": oos or "",
        "temperature": round(bundle.temperature, 4),
        "min_similarity": round(bundle.thresholds.min_similarity, 4),
        "data_hash": data.data_hash,
        "rare_labels": ",".join(sorted(data.rare_labels)) or "",
    }
    log.info(
        "model trained",
        extra={k: params[k] for k in ("train_rows", "queues", "temperature")},
    )
    return TrainingResult(
        bundle=bundle,
        evaluation=evaluation,
        validation=validation_report,
        test_frame=test[["id", "text", "label"]].reset_index(drop=True),
        test_predictions=test_predictions,
        params=params,
        reference_profile=profile,
    )
