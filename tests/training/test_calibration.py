from __future__ import annotations

import numpy as np
import pytest

from training.head import (
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    train_head,
)


def _overconfident_case(rows: int = 4000, seed: int = 0):
    """Logits whose softmax says ~0.99 while the label is right ~70% of the time."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 3, rows)
    predicted = np.where(rng.random(rows) < 0.7, targets, (targets + 1) % 3)
    logits = np.zeros((rows, 3))
    logits[np.arange(rows), predicted] = 6.0
    return logits, targets


def test_temperature_scaling_reduces_calibration_error_of_an_overconfident_head():
    logits, targets = _overconfident_case()

    def ece(temperature):
        probabilities = calibrated_probabilities(logits, temperature)
        correct = (probabilities.argmax(1) == targets).astype(float)
        return expected_calibration_error(probabilities.max(1), correct)

    temperature = fit_temperature(logits, targets)

    assert temperature > 1.5
    assert ece(temperature) < ece(1.0) / 4


def test_ece_is_zero_when_confidence_matches_accuracy():
    confidences = np.full(1000, 0.8)
    correct = np.array([1.0] * 800 + [0.0] * 200)

    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0)


def test_two_label_head_gives_two_logits_that_agree_with_sklearn():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(200, 8)).astype(np.float32)
    labels = np.where(embeddings[:, 0] > 0, "yes", "no").tolist()

    head = train_head(embeddings, labels, c=1.0)
    predicted = np.array(head.labels)[head.logits(embeddings).argmax(1)]

    assert head.weights.shape == (2, 8)
    assert (predicted == np.array(labels)).mean() > 0.95
