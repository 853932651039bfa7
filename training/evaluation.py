"""Scoring a model version on labelled tickets, and its two plots."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from training.bundle import Predictions
from training.head import expected_calibration_error
from training.thresholds import RoutingThresholds

log = logging.getLogger(__name__)


def routed_mask(predictions: Predictions, thresholds: RoutingThresholds) -> np.ndarray:
    """Which rows the model may auto-route (threshold and abstention passed)."""
    queues = predictions.queues
    confidence = predictions.confidence
    similarity = predictions.similarity
    return np.array(
        [
            thresholds.may_route(queues[i], float(confidence[i]), float(similarity[i]))
            for i in range(len(queues))
        ],
        dtype=bool,
    )


def evaluate_predictions(
    predictions: Predictions,
    true_labels: list[str],
    thresholds: RoutingThresholds,
    out_of_scope_label: str | None = None,
) -> dict[str, Any]:
    """Headline and per-queue metrics.

    In-scope rows give accuracy, macro-F1, ECE and coverage. Precision on the
    routed share counts an out-of-scope row the model routed as an error, and
    `oos_recall` is the share of out-of-scope rows sent to fallback.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    truth = np.array(true_labels)
    predicted = np.array(predictions.queues)
    routed = routed_mask(predictions, thresholds)
    is_oos = (
        truth == out_of_scope_label
        if out_of_scope_label is not None
        else np.zeros(len(truth), bool)
    )
    in_scope = ~is_oos
    correct = predicted == truth

    labels = sorted(set(truth[in_scope]) | set(predictions.labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth[in_scope], predicted[in_scope], labels=labels, zero_division=0
    )
    per_queue = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "coverage": _share(routed[in_scope & (truth == label)]),
        }
        for i, label in enumerate(labels)
    }
    present = sorted(set(truth[in_scope]))
    metrics: dict[str, Any] = {
        "rows": len(truth),
        "in_scope_rows": int(in_scope.sum()),
        "accuracy": _share(correct[in_scope]),
        "macro_f1": float(
            f1_score(
                truth[in_scope],
                predicted[in_scope],
                labels=present,
                average="macro",
                zero_division=0,
            )
        ),
        "ece": expected_calibration_error(
            predictions.confidence[in_scope], correct[in_scope].astype(float)
        ),
        "coverage": _share(routed[in_scope]),
        "precision_covered": _share(correct[routed]) if routed.any() else 0.0,
    }
    if out_of_scope_label is not None:
        metrics["oos_rows"] = int(is_oos.sum())
        metrics["oos_recall"] = _share(~routed[is_oos]) if is_oos.any() else None
    return {"metrics": metrics, "per_queue": per_queue}


def plot_reliability(
    predictions: Predictions, true_labels: list[str], path: Path, bins: int = 15
) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with counts."""
    plt = _pyplot()
    confidence = predictions.confidence
    correct = np.array(predictions.queues) == np.array(true_labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    centres, accuracy, counts = [], [], []
    for b in range(bins):
        members = index == b
        if members.any():
            centres.append(confidence[members].mean())
            accuracy.append(correct[members].mean())
            counts.append(int(members.sum()))

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axis.plot(centres, accuracy, marker="o", label="model")
    for x, y, n in zip(centres, accuracy, counts, strict=True):
        axis.annotate(
            str(n), (x, y), fontsize=7, xytext=(3, -10), textcoords="offset points"
        )
    axis.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    axis.set_title("Reliability (calibrated)")
    axis.legend(loc="upper left")
    return _save(figure, path)


def plot_confusion(
    predictions: Predictions, true_labels: list[str], path: Path
) -> Path:
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    labels = sorted(set(true_labels) | set(predictions.labels))
    matrix = confusion_matrix(true_labels, predictions.queues, labels=labels)
    size = max(5.0, 0.35 * len(labels))
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    if len(labels) <= 30:
        axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
        for (row, column), value in np.ndenumerate(matrix):
            if value:
                axis.text(column, row, str(value), ha="center", va="center", fontsize=6)
    axis.set(xlabel="predicted queue", ylabel="true queue")
    axis.set_title("Confusion matrix (test)")
    return _save(figure, path)


def _share(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else 0.0


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
