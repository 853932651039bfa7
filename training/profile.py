"""The drift reference profile: what a model version saw and said at training.

Logged with every version (MLflow artifact `reference_profile/`) so that drift
monitoring compares live tickets with the data that version was built on.
It holds one row per reference ticket, the columns the drift check compares
(predicted queue, confidence, margin, text length, language) plus the ticket's
embedding reduced by a fixed projection, and the projection itself so live
embeddings are reduced the same way.

Reference rows are held-out rows (validation and test), not training rows:
the head is more confident on rows it was fitted on, so a profile of those
would make every live window look drifted on confidence and margin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.language import detect_language
from training.bundle import Predictions
from training.thresholds import RoutingThresholds

log = logging.getLogger(__name__)

PROFILE_FORMAT = 1
PROFILE_ARTIFACT = "reference_profile"
CATEGORICAL_COLUMNS = ("queue", "language")
NUMERICAL_COLUMNS = ("confidence", "margin", "text_length")
PROFILE_COLUMNS = (*CATEGORICAL_COLUMNS, *NUMERICAL_COLUMNS)
LOW_CONFIDENCE_COLUMN = "is_low_confidence"
EMBEDDING_PREFIX = "embedding_"
# 16 components keep about 40 % of the variance of MiniLM ticket embeddings,
# enough to separate another topic or language mix, and keep the check fast.
DEFAULT_COMPONENTS = 16
DEFAULT_MAX_ROWS = 1000
# Languages under this share of the reference are pooled as "other": a long
# tail of rare codes (many of them misdetections of short texts) would make a
# chi-square test of the language column fire on clean windows.
LANGUAGE_MIN_SHARE = 0.05
OTHER_LANGUAGE = "other"
_FIT_ROWS = 4000
_FRAME_FILE = "reference.parquet"
_PROJECTION_FILE = "projection.npz"
_MANIFEST_FILE = "profile.json"


@dataclass
class ReferenceProfile:
    """Reference rows and the projection that reduces embeddings for them."""

    frame: pd.DataFrame  # PROFILE_COLUMNS, is_low_confidence, embedding_0..k-1
    components: np.ndarray  # (k, encoder dimension), orthonormal rows
    center: np.ndarray  # (encoder dimension,), subtracted before projecting
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_columns(self) -> list[str]:
        return embedding_columns(len(self.components))

    @property
    def languages(self) -> list[str]:
        """Languages the profile keeps apart; the rest count as "other"."""
        return list(self.info.get("languages", []))

    def bucket_language(self, language: str) -> str:
        return language if language in self.languages else OTHER_LANGUAGE

    @property
    def low_confidence_rate(self) -> float:
        """Share of reference tickets the model would not have auto-routed."""
        return float(self.frame[LOW_CONFIDENCE_COLUMN].mean())

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings (rows, dimension) reduced to (rows, k) components."""
        return ((embeddings - self.center) @ self.components.T).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """The distributions in brief, for people (model card, drift API)."""
        frame = self.frame
        quantiles = (0.05, 0.25, 0.5, 0.75, 0.95)
        return {
            "rows": len(frame),
            "queue_share": _shares(frame["queue"]),
            "language_share": _shares(frame["language"]),
            "low_confidence_rate": round(self.low_confidence_rate, 4),
            **{
                column: {
                    f"p{round(q * 100):02d}": round(float(frame[column].quantile(q)), 4)
                    for q in quantiles
                }
                for column in NUMERICAL_COLUMNS
            },
            "embedding_components": len(self.components),
        }

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(folder / _FRAME_FILE, index=False)
        np.savez_compressed(
            folder / _PROJECTION_FILE, components=self.components, center=self.center
        )
        manifest = {
            "format": PROFILE_FORMAT,
            "info": self.info,
            "summary": self.summary(),
        }
        (folder / _MANIFEST_FILE).write_text(
            json.dumps(manifest, indent=2, default=str)
        )
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> ReferenceProfile:
        folder = Path(folder)
        manifest = json.loads((folder / _MANIFEST_FILE).read_text())
        if manifest.get("format") != PROFILE_FORMAT:
            raise ValueError(
                f"{folder}: reference profile format {manifest.get('format')}, "
                f"this Switchboard reads format {PROFILE_FORMAT}"
            )
        projection = np.load(folder / _PROJECTION_FILE)
        return cls(
            frame=pd.read_parquet(folder / _FRAME_FILE),
            components=projection["components"].astype(np.float32),
            center=projection["center"].astype(np.float32),
            info=dict(manifest.get("info", {})),
        )


def build_reference_profile(
    texts: Sequence[str],
    embeddings: np.ndarray,
    predictions: Predictions,
    thresholds: RoutingThresholds,
    *,
    fit_embeddings: np.ndarray,
    components: int = DEFAULT_COMPONENTS,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile the reference tickets: held-out texts, their embeddings and scores.

    Args:
        texts: encoder texts of the reference tickets.
        embeddings: their embeddings, one row per text.
        predictions: the trained model's scores of those embeddings.
        thresholds: the version's routing thresholds (for the low-confidence
            flag: would the model have been allowed to route this ticket?).
        fit_embeddings: embeddings the projection is fitted on (training rows).
        components: size of the reduced embedding.
        max_rows: reference rows kept, a seeded sample beyond that.
        seed: seeds the row sample and the projection's fitting sample.
    """
    rng = np.random.default_rng(seed)
    center, basis = _fit_projection(fit_embeddings, components, rng)
    chosen = np.arange(len(texts))
    if len(chosen) > max_rows:
        chosen = np.sort(rng.choice(chosen, size=max_rows, replace=False))

    picked = [int(i) for i in chosen]
    queues = [predictions.queues[i] for i in picked]
    confidence = predictions.confidence[chosen]
    similarity = predictions.similarity[chosen]
    detected = pd.Series([detect_language(texts[i]) for i in picked], dtype=str)
    shares = detected.value_counts(normalize=True)
    languages = sorted(str(code) for code in shares[shares >= LANGUAGE_MIN_SHARE].index)
    frame = pd.DataFrame(
        {
            "queue": queues,
            "language": [
                code if code in languages else OTHER_LANGUAGE for code in detected
            ],
            "confidence": confidence.astype(float),
            "margin": predictions.margin[chosen].astype(float),
            "text_length": [len(texts[i]) for i in picked],
            LOW_CONFIDENCE_COLUMN: [
                not thresholds.may_route(queue, float(conf), float(sim))
                for queue, conf, sim in zip(queues, confidence, similarity, strict=True)
            ],
        }
    )
    projected = ((embeddings[chosen] - center) @ basis.T).astype(np.float32)
    reduced = pd.DataFrame(projected, columns=embedding_columns(len(basis)))
    profile = ReferenceProfile(
        frame=pd.concat([frame, reduced], axis=1),
        components=basis,
        center=center,
        info={
            "seed": seed,
            "source_rows": len(texts),
            "fit_rows": len(fit_embeddings),
            "languages": languages,
            "detected_language_share": _shares(detected),
        },
    )
    log.info(
        "reference profile built",
        extra={"rows": len(chosen), "components": len(basis)},
    )
    return profile


def embedding_columns(components: int) -> list[str]:
    return [f"{EMBEDDING_PREFIX}{i}" for i in range(components)]


def _fit_projection(
    embeddings: np.ndarray, components: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top principal directions of a seeded sample of embeddings."""
    if len(embeddings) > _FIT_ROWS:
        embeddings = embeddings[rng.choice(len(embeddings), _FIT_ROWS, replace=False)]
    center = embeddings.mean(axis=0)
    _, _, directions = np.linalg.svd(embeddings - center, full_matrices=False)
    k = min(components, len(directions))
    return center.astype(np.float32), directions[:k].astype(np.float32)


def _shares(values: pd.Series) -> dict[str, float]:
    counts = values.value_counts(normalize=True)
    return {str(key): round(float(share), 4) for key, share in counts.items()}
