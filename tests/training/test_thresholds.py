from __future__ import annotations

import numpy as np
import pytest

from training.thresholds import (
    choose_min_similarity,
    choose_queue_threshold,
    choose_thresholds,
)


def test_threshold_is_the_lowest_confidence_that_keeps_target_precision():
    # Sorted by confidence: right, right, right, wrong, right, wrong.
    confidences = np.array([0.99, 0.95, 0.90, 0.80, 0.70, 0.60])
    correct = np.array([1, 1, 1, 0, 1, 0], dtype=float)

    threshold, precision = choose_queue_threshold(confidences, correct, 0.95)

    assert threshold == pytest.approx(0.90)
    assert precision == pytest.approx(1.0)


def test_a_lower_target_admits_more_rows():
    confidences = np.array([0.99, 0.95, 0.90, 0.80, 0.70, 0.60])
    correct = np.array([1, 1, 1, 0, 1, 0], dtype=float)

    threshold, precision = choose_queue_threshold(confidences, correct, 0.80)

    assert threshold == pytest.approx(0.70)
    assert precision == pytest.approx(0.8)


def test_no_threshold_reaching_the_target_means_never_route():
    threshold, precision = choose_queue_threshold(
        np.array([0.9, 0.8]), np.array([0.0, 1.0]), 0.95
    )

    assert (threshold, precision) == (1.0, None)


def test_tied_confidences_are_never_split():
    confidences = np.array([0.9, 0.9, 0.9])
    correct = np.array([1.0, 0.0, 1.0])

    threshold, _ = choose_queue_threshold(confidences, correct, 0.95)

    assert threshold == 1.0


def _thresholds(train_counts, predicted, confidences, correct):
    return choose_thresholds(
        predicted=np.array(predicted),
        confidences=np.array(confidences),
        correct=np.array(correct, dtype=bool),
        labels=["a", "b", "c"],
        train_counts=train_counts,
        target_precision=0.95,
        min_queue_support=3,
        min_train_examples=5,
    )


def test_queue_with_few_validation_rows_gets_the_global_threshold():
    result = _thresholds(
        {"a": 50, "b": 50, "c": 50},
        predicted=[0, 0, 0, 0, 1],
        confidences=[0.99, 0.9, 0.8, 0.5, 0.95],
        correct=[1, 1, 1, 0, 1],
    )

    assert result.queues["a"].source == "queue"
    assert result.queues["a"].threshold == pytest.approx(0.8)
    assert result.queues["b"].source == "global"
    assert result.queues["b"].threshold == result.global_threshold


def test_queue_with_too_little_training_evidence_is_never_auto_routed():
    result = _thresholds(
        {"a": 50, "b": 50, "c": 2},
        predicted=[2, 2, 2],
        confidences=[0.99, 0.99, 0.99],
        correct=[1, 1, 1],
    )

    assert result.queues["c"].routable is False
    assert result.queues["c"].source == "insufficient_data"
    assert not result.may_route("c", 0.999, None)


def test_unknown_queue_is_not_routable():
    result = _thresholds({"a": 50, "b": 50, "c": 50}, [0], [0.99], [1])

    assert not result.may_route("zzz", 1.0, None)


def test_similarity_cut_separates_out_of_scope_rows_when_they_exist():
    similarities = np.array([0.9, 0.85, 0.8, 0.75, 0.3, 0.25, 0.2])
    is_oos = np.array([False, False, False, False, True, True, True])
    routed = np.ones(7, dtype=bool)

    cut = choose_min_similarity(similarities, is_oos, routed, keep_share=0.99)

    assert 0.3 < cut <= 0.75


def test_without_out_of_scope_rows_the_cut_keeps_the_requested_share():
    similarities = np.linspace(0.0, 1.0, 101)

    cut = choose_min_similarity(
        similarities, np.zeros(101, bool), np.ones(101, bool), keep_share=0.9
    )

    assert (similarities >= cut).mean() == pytest.approx(0.9, abs=0.02)


def test_below_the_similarity_cut_the_model_abstains():
    result = _thresholds({"a": 50, "b": 50, "c": 50}, [0, 0, 0], [0.99] * 3, [1] * 3)
    result.min_similarity = 0.5

    assert result.may_route("a", 0.999, 0.6)
    assert not result.may_route("a", 0.999, 0.4)
    assert result.is_out_of_scope(0.4)
