"""A trained model version as files: head, calibration, thresholds, index.

The same bundle is what MLflow stores, what the pyfunc flavour loads and what
serving and batch classify with, so every path scores tickets identically.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.head import LinearHead, calibrated_probabilities
from training.thresholds import RoutingThresholds

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
_SIMILARITY_CHUNK = 2048


@dataclass
class Predictions:
    """Scores of a batch of embeddings against one model version."""

    labels: list[str]
    probabilities: np.ndarray  # (rows, queues), calibrated
    similarity: np.ndarray  # (rows,), cosine to the nearest training ticket

    @property
    def top_index(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def queues(self) -> list[str]:
        return [self.labels[i] for i in self.top_index]

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def margin(self) -> np.ndarray:
        if self.probabilities.shape[1] < 2:
            return self.confidence
        top_two = np.sort(self.probabilities, axis=1)[:, -2:]
        return top_two[:, 1] - top_two[:, 0]

    def top_queues(self, row: int, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities[row])[:k]
        return [(self.labels[i], float(self.probabilities[row, i])) for i in order]


@dataclass
class ModelBundle:
    head: LinearHead
    temperature: float
    thresholds: RoutingThresholds
    encoder: str
    encoder_identity: str
    index_embeddings: np.ndarray  # (train rows, dimension), L2-normalised
    index_labels: list[str]
    index_ids: list[str]
    info: dict[str, object] = field(default_factory=dict)
    # How the encoder ran when the head was trained; serving runs it the same.
    encoder_backend: str = "torch"

    @property
    def labels(self) -> list[str]:
        return self.head.labels

    def predict(self, embeddings: np.ndarray) -> Predictions:
        logits = self.head.logits(embeddings)
        probabilities = calibrated_probabilities(logits, self.temperature)
        return Predictions(
            labels=self.labels,
            probabilities=probabilities,
            similarity=self.nearest_similarity(embeddings),
        )

    def nearest_similarity(self, embeddings: np.ndarray) -> np.ndarray:
        if len(self.index_embeddings) == 0 or len(embeddings) == 0:
            return np.ones(len(embeddings), dtype=np.float32)
        best = np.full(len(embeddings), -1.0, dtype=np.float32)
        for start in range(0, len(self.index_embeddings), _SIMILARITY_CHUNK):
            chunk = self.index_embeddings[start : start + _SIMILARITY_CHUNK]
            best = np.maximum(best, (embeddings @ chunk.T).max(axis=1))
        # The index is stored as float16: a duplicate can score just over 1.
        return np.clip(best, -1.0, 1.0)

    def nearest_examples(self, embedding: np.ndarray, k: int = 3) -> list[dict]:
        """The k training tickets closest to one embedding, as evidence."""
        scores = self.index_embeddings @ embedding
        order = np.argsort(-scores)[:k]
        return [
            {
                "id": self.index_ids[i],
                "label": self.index_labels[i],
                "similarity": float(scores[i]),
            }
            for i in order
        ]

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            folder / "head.npz", weights=self.head.weights, bias=self.head.bias
        )
        np.savez_compressed(
            folder / "index.npz",
            embeddings=self.index_embeddings.astype(np.float16),
            labels=np.array(self.index_labels),
            ids=np.array(self.index_ids),
        )
        (folder / "thresholds.json").write_text(
            self.thresholds.model_dump_json(indent=2)
        )
        manifest = {
            "format": BUNDLE_FORMAT,
            "labels": self.head.labels,
            "temperature": self.temperature,
            "encoder": self.encoder,
            "encoder_identity": self.encoder_identity,
            "encoder_backend": self.encoder_backend,
            "info": self.info,
        }
        (folder / "bundle.json").write_text(json.dumps(manifest, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> ModelBundle:
        folder = Path(folder)
        manifest = json.loads((folder / "bundle.json").read_text())
        head_arrays = np.load(folder / "head.npz")
        index = np.load(folder / "index.npz")
        thresholds = RoutingThresholds.model_validate_json(
            (folder / "thresholds.json").read_text()
        )
        head = LinearHead(
            labels=list(manifest["labels"]),
            weights=head_arrays["weights"],
            bias=head_arrays["bias"],
        )
        return cls(
            head=head,
            temperature=float(manifest["temperature"]),
            thresholds=thresholds,
            encoder=manifest["encoder"],
            encoder_identity=manifest["encoder_identity"],
            index_embeddings=index["embeddings"].astype(np.float32),
            index_labels=[str(v) for v in index["labels"]],
            index_ids=[str(v) for v in index["ids"]],
            info=dict(manifest.get("info", {})),
            # Bundles from before backends were recorded ran on torch.
            encoder_backend=str(manifest.get("encoder_backend", "torch")),
        )
