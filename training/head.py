"""The classifier head on top of the embeddings, and its calibration."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

log = logging.getLogger(__name__)


@dataclass
class LinearHead:
    """Multinomial logistic regression weights: logits = X @ W.T + b."""

    labels: list[str]
    weights: np.ndarray  # (queues, dimension)
    bias: np.ndarray  # (queues,)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.weights.T + self.bias


def train_head(
    embeddings: np.ndarray,
    labels: list[str],
    *,
    c: float = 10.0,
    max_iter: int = 2000,
    seed: int = 13,
) -> LinearHead:
    """Fit a class-weighted logistic-regression head.

    Class weights are balanced, so a small queue is not drowned by a large one.
    """
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=c, class_weight="balanced", max_iter=max_iter, random_state=seed
    )
    model.fit(embeddings, labels)
    classes = [str(label) for label in model.classes_]
    weights, bias = model.coef_, model.intercept_
    if len(classes) == 2:
        # scikit-learn keeps one row for two classes; spell out both logits.
        weights = np.vstack([-weights[0] / 2, weights[0] / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return LinearHead(
        labels=classes,
        weights=weights.astype(np.float32),
        bias=bias.astype(np.float32),
    )


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature that minimises negative log-likelihood on held-out rows.

    Args:
        logits: (rows, queues) raw head outputs on validation data.
        targets: (rows,) index of the true queue of each row.
    """
    if len(targets) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        scaled = log_softmax(logits / np.exp(log_t), axis=1)
        return float(-scaled[np.arange(len(targets)), targets].mean())

    result = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(result.x))


def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(logits / temperature, axis=1)


def expected_calibration_error(
    confidences: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    """Gap between confidence and accuracy, averaged over equal-width bins."""
    if len(confidences) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidences, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            gap = abs(confidences[members].mean() - correct[members].mean())
            total += members.mean() * gap
    return float(total)
