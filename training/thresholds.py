"""Per-queue confidence thresholds and the abstention signal.

A model version may auto-route a ticket to queue q only when its calibrated
confidence reaches q's threshold and the ticket looks like something the model
was trained on (its embedding is close enough to a training example).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

ThresholdSource = Literal["queue", "global", "insufficient_data"]


class QueueThreshold(BaseModel):
    """The confidence a proposal for one queue needs before it may auto-route."""

    threshold: float = Field(ge=0.0, le=1.0)
    routable: bool = Field(
        description="False when the queue had too little evidence; never auto-routed."
    )
    source: ThresholdSource
    support: int = Field(ge=0, description="Validation rows predicted as the queue.")
    precision: float | None = Field(
        default=None, description="Validation precision at the threshold."
    )


class RoutingThresholds(BaseModel):
    """Everything a model version needs to say whether it may decide."""

    target_precision: float = Field(gt=0.0, le=1.0)
    global_threshold: float = Field(ge=0.0, le=1.0)
    queues: dict[str, QueueThreshold]
    min_similarity: float | None = Field(
        default=None,
        description=(
            "Abstention: least cosine similarity to the nearest training ticket; "
            "below it the ticket is out of scope. None disables the check."
        ),
    )

    def for_queue(self, queue: str) -> QueueThreshold:
        return self.queues.get(
            queue,
            QueueThreshold(
                threshold=1.0, routable=False, source="insufficient_data", support=0
            ),
        )

    def may_route(
        self, queue: str, confidence: float, similarity: float | None
    ) -> bool:
        """True when the model may auto-route this proposal."""
        rule = self.for_queue(queue)
        if not rule.routable or confidence < rule.threshold:
            return False
        return not self.is_out_of_scope(similarity)

    def is_out_of_scope(self, similarity: float | None) -> bool:
        if self.min_similarity is None or similarity is None:
            return False
        return similarity < self.min_similarity


def choose_queue_threshold(
    confidences: np.ndarray, correct: np.ndarray, target_precision: float
) -> tuple[float, float | None]:
    """The lowest threshold whose accepted rows reach the target precision.

    Rows are the validation rows predicted as one queue. Returns the threshold
    and the precision there; (1.0, None) when no threshold reaches the target.
    """
    if len(confidences) == 0:
        return 1.0, None
    order = np.argsort(-confidences, kind="stable")
    sorted_conf = confidences[order]
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, len(order) + 1)

    # Only cut between distinct confidences: rows tied at a value go together.
    is_last_of_value = np.append(sorted_conf[1:] != sorted_conf[:-1], True)
    candidates = np.flatnonzero(is_last_of_value & (precision >= target_precision))
    if len(candidates) == 0:
        return 1.0, None
    best = candidates[-1]
    return float(sorted_conf[best]), float(precision[best])


def choose_thresholds(
    *,
    predicted: np.ndarray,
    confidences: np.ndarray,
    correct: np.ndarray,
    labels: list[str],
    train_counts: dict[str, int],
    target_precision: float,
    min_queue_support: int,
    min_train_examples: int,
) -> RoutingThresholds:
    """Per-queue thresholds, with a global one for queues seen too rarely.

    Args:
        predicted: index into `labels` of each validation row's top queue.
        confidences: calibrated top-1 confidence of each row.
        correct: whether the top queue was right (out-of-scope rows: never).
        train_counts: training rows per queue; too few and the queue is
            never auto-routed.
    """
    global_threshold, _ = choose_queue_threshold(
        confidences, correct.astype(float), target_precision
    )
    queues: dict[str, QueueThreshold] = {}
    for index, queue in enumerate(labels):
        members = predicted == index
        support = int(members.sum())
        if train_counts.get(queue, 0) < min_train_examples:
            queues[queue] = QueueThreshold(
                threshold=1.0,
                routable=False,
                source="insufficient_data",
                support=support,
            )
            continue
        if support < min_queue_support:
            queues[queue] = QueueThreshold(
                threshold=global_threshold,
                routable=True,
                source="global",
                support=support,
            )
            continue
        threshold, precision = choose_queue_threshold(
            confidences[members], correct[members].astype(float), target_precision
        )
        queues[queue] = QueueThreshold(
            threshold=threshold,
            routable=True,
            source="queue",
            support=support,
            precision=precision,
        )
    return RoutingThresholds(
        target_precision=target_precision,
        global_threshold=global_threshold,
        queues=queues,
    )


def choose_min_similarity(
    similarities: np.ndarray,
    is_out_of_scope: np.ndarray,
    routed_by_confidence: np.ndarray,
    keep_share: float,
) -> float:
    """The least similarity to a training ticket below which the model abstains.

    With out-of-scope validation rows the cut maximises out-of-scope recall
    plus in-scope coverage (both after the confidence thresholds). Without any,
    it keeps `keep_share` of in-scope validation rows.
    """
    in_scope = similarities[~is_out_of_scope]
    if len(in_scope) == 0:
        return 0.0
    if not is_out_of_scope.any():
        return float(np.quantile(in_scope, 1.0 - keep_share))

    candidates = np.unique(np.quantile(similarities, np.linspace(0.0, 0.9, 181)))
    best_cut, best_score = 0.0, -1.0
    for cut in candidates:
        routed = routed_by_confidence & (similarities >= cut)
        coverage = routed[~is_out_of_scope].mean()
        oos_recall = 1.0 - routed[is_out_of_scope].mean()
        score = coverage + oos_recall
        if score > best_score:
            best_cut, best_score = float(cut), float(score)
    return best_cut


def thresholds_version(thresholds: RoutingThresholds) -> str:
    """A short hash of a threshold set, so replays with other thresholds show."""
    content = thresholds.model_dump_json().encode("utf-8")
    return hashlib.sha256(content).hexdigest()[:12]
