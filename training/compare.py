"""A challenger and the champion scored side by side on the same tickets.

Both versions see the same rows: by default the challenger's own held-out
test rows (what it was evaluated on at training), or any labelled file that
`switchboard train` reads, such as the output of `export-feedback`. Each
version is scored with its own thresholds, so coverage and precision of the
auto-routed share are what each would do if it served.

Known limitation: "auto-routed" here is the model's own threshold and
abstention check; the serving automation policy (rules-only and suggest-only
queues) and override rules are not applied, so live coverage is lower for
queues the policy holds back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.encoder import CachedEncoder
from features.errors import RegistryError
from features.settings import Settings
from training.bundle import ModelBundle, Predictions
from training.evaluation import evaluate_predictions, routed_mask
from training.registry import (
    CHAMPION,
    VersionInfo,
    get_version,
    load_bundle,
    load_test_frame,
)

log = logging.getLogger(__name__)

COMPARED_METRICS = ("accuracy", "macro_f1", "coverage", "precision_covered", "ece")
# Where a ticket goes when the model may not route it: the fallback rules.
FALLBACK = "(fallback)"


@dataclass(frozen=True)
class CompareData:
    """Which labelled rows to score; `path` None means the challenger's test set."""

    path: Path | str | None = None
    text_column: str = "text"
    label_column: str = "label"
    split_column: str = "split"
    split: str | None = None
    out_of_scope_label: str | None = None


def compare_versions(
    settings: Settings,
    challenger_ref: str,
    *,
    champion_ref: str | None = None,
    data: CompareData | None = None,
    encoders: dict[str, CachedEncoder] | None = None,
) -> dict[str, Any]:
    """Score two versions on the same rows and say where they differ.

    Args:
        settings: which registry and state folder.
        challenger_ref: the version (number or alias) under review.
        champion_ref: what to compare with; the `champion` alias by default.
        data: the rows to score; the challenger's test rows by default.
        encoders: encoders by identity, to reuse loaded ones (tests, notebooks).

    Returns:
        JSON-ready: both versions, the data used, each headline metric side by
        side with the difference, per-queue F1, and routing differences.

    Raises:
        RegistryError: either version is missing (no champion included), or
            both refs name the same version.
        DataError: the data file is unusable.
    """
    data = data or CompareData()
    challenger = get_version(settings, challenger_ref)
    champion = _champion(settings, champion_ref)
    if champion.version == challenger.version:
        raise RegistryError(
            f"challenger and champion are both version {challenger.version}; "
            "pass another version with --champion VERSION"
        )

    frame, source, split = _rows(settings, challenger, data)
    oos_label = data.out_of_scope_label or (
        challenger.tags.get("out_of_scope_label") or None
    )
    bundles = {
        "challenger": load_bundle(settings, challenger.version)[1],
        "champion": load_bundle(settings, champion.version)[1],
    }
    texts = frame["text"].tolist()
    labels = frame["label"].tolist()
    encoders = encoders if encoders is not None else {}
    predictions = {
        role: bundle.predict(_encode(settings, bundle, texts, encoders))
        for role, bundle in bundles.items()
    }
    reports = {
        role: evaluate_predictions(
            predictions[role], labels, bundles[role].thresholds, oos_label
        )
        for role in bundles
    }
    routing = _routing_differences(predictions, bundles, labels)
    result: dict[str, Any] = {
        "challenger": _describe(challenger, bundles["challenger"]),
        "champion": _describe(champion, bundles["champion"]),
        "data": {
            "source": source,
            "split": split,
            "rows": len(frame),
            "out_of_scope_label": oos_label,
        },
        "metrics": _side_by_side(reports),
        "per_queue": _per_queue_f1(reports),
        "routing": routing,
        "warnings": _warnings(bundles),
    }
    log.info(
        "versions compared",
        extra={
            "challenger": challenger.version,
            "champion": champion.version,
            "rows": len(frame),
            "routed_differently": routing["routed_differently"],
        },
    )
    return result


def _champion(settings: Settings, ref: str | None) -> VersionInfo:
    if ref is not None:
        return get_version(settings, ref)
    try:
        return get_version(settings, CHAMPION)
    except RegistryError as err:
        raise RegistryError(
            f"there is no champion in {settings.resolved_tracking_uri()} to "
            "compare with: promote a version first (`switchboard promote`) or "
            "name one with --champion VERSION"
        ) from err


def _rows(
    settings: Settings, challenger: VersionInfo, data: CompareData
) -> tuple[pd.DataFrame, str, str]:
    if data.path is None:
        frame = load_test_frame(settings, challenger)
        return frame, f"test rows of version {challenger.version}", "test"
    from training.datasets import load_for_evaluation

    frame, split = load_for_evaluation(
        data.path,
        text_column=data.text_column,
        label_column=data.label_column,
        split_column=data.split_column,
        split=data.split,
    )
    return frame, str(data.path), split


def _encode(
    settings: Settings,
    bundle: ModelBundle,
    texts: list[str],
    encoders: dict[str, CachedEncoder],
) -> np.ndarray:
    # Each version is scored with the encoder it was trained with; two
    # versions on one encoder share it (and its cache) and encode once.
    if bundle.encoder_identity not in encoders:
        from training.service import make_encoder

        encoders[bundle.encoder_identity] = make_encoder(
            settings.model_copy(
                update={
                    "encoder": bundle.encoder,
                    "encoder_backend": bundle.encoder_backend,
                }
            )
        )
    return encoders[bundle.encoder_identity].encode(texts)


def _describe(version: VersionInfo, bundle: ModelBundle) -> dict[str, Any]:
    return {
        "version": version.version,
        "aliases": version.aliases,
        "encoder": bundle.encoder_identity,
        "data_hash": version.tags.get("data_hash"),
    }


def _side_by_side(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for name in COMPARED_METRICS:
        challenger = reports["challenger"]["metrics"].get(name)
        champion = reports["champion"]["metrics"].get(name)
        delta = None
        if challenger is not None and champion is not None:
            delta = challenger - champion
        found[name] = {"challenger": challenger, "champion": champion, "delta": delta}
    return found


def _per_queue_f1(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    challenger = reports["challenger"]["per_queue"]
    champion = reports["champion"]["per_queue"]
    found = {}
    for queue in sorted(set(challenger) | set(champion)):
        ours = challenger.get(queue, {})
        theirs = champion.get(queue, {})
        f1_ours, f1_theirs = ours.get("f1"), theirs.get("f1")
        found[queue] = {
            "support": ours.get("support", theirs.get("support", 0)),
            "challenger": f1_ours,
            "champion": f1_theirs,
            "delta": None
            if f1_ours is None or f1_theirs is None
            else f1_ours - f1_theirs,
        }
    return found


def _routing_differences(
    predictions: dict[str, Predictions],
    bundles: dict[str, ModelBundle],
    labels: list[str],
) -> dict[str, Any]:
    """How many tickets each version would send somewhere else.

    A ticket's route is the proposed queue when the version may auto-route
    it, else the fallback rules.
    """
    routes = {role: _routes(predictions[role], bundles[role]) for role in predictions}
    ours, theirs = routes["challenger"], routes["champion"]
    truth = np.array(labels)
    differs = ours != theirs
    ours_auto, theirs_auto = ours != FALLBACK, theirs != FALLBACK
    return {
        "rows": len(truth),
        "routed_differently": int(differs.sum()),
        "share_routed_differently": float(differs.mean()) if len(truth) else 0.0,
        "both_auto_other_queue": int((differs & ours_auto & theirs_auto).sum()),
        "only_challenger_auto": int((ours_auto & ~theirs_auto).sum()),
        "only_champion_auto": int((~ours_auto & theirs_auto).sum()),
        # A route is right when it auto-routes to the true queue; a fallback
        # is never right here, as the rules' choice is not scored.
        "only_challenger_right": int(
            (differs & (ours == truth) & (theirs != truth)).sum()
        ),
        "only_champion_right": int(
            (differs & (theirs == truth) & (ours != truth)).sum()
        ),
    }


def _routes(predictions: Predictions, bundle: ModelBundle) -> np.ndarray:
    routed = routed_mask(predictions, bundle.thresholds)
    queues = np.array(predictions.queues, dtype=object)
    return np.where(routed, queues, FALLBACK)


def _warnings(bundles: dict[str, ModelBundle]) -> list[str]:
    challenger, champion = bundles["challenger"], bundles["champion"]
    found = []
    if challenger.encoder_identity != champion.encoder_identity:
        found.append(
            "the versions use different encoders; each was scored with its own"
        )
    missing = sorted(set(champion.labels) - set(challenger.labels))
    if missing:
        found.append(
            "queues the champion knows and the challenger does not: "
            + ", ".join(missing)
        )
    return found
