"""Promotion gates and moving the `champion` alias."""

from __future__ import annotations

import getpass
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from features.encoder import CachedEncoder
from features.errors import GateFailedError, RegistryError
from features.settings import Settings
from training.config import PromotionGates
from training.evaluation import evaluate_predictions
from training.registry import (
    CHAMPION,
    VersionInfo,
    configure_mlflow,
    get_version,
    load_bundle,
    load_test_frame,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateCheck:
    gate: str
    value: float
    bound: float
    passed: bool

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"{self.gate}: value {self.value:.4f}, bound {self.bound:.4f} ({verdict})"
        )


@dataclass
class PromotionResult:
    version: str
    previous_champion: str | None
    checks: list[GateCheck]
    promoted_by: str
    reason: str
    promoted_at: str


def check_gates(
    metrics: dict[str, float],
    gates: PromotionGates,
    champion_macro_f1: float | None = None,
) -> list[GateCheck]:
    """Every gate with its value and bound.

    Args:
        metrics: the candidate's test metrics (macro_f1, ece, coverage).
        champion_macro_f1: the champion's macro-F1 on the candidate's test
            data; None when there is no champion to compare with.
    """
    checks = [
        _at_least("min_macro_f1", metrics.get("macro_f1", 0.0), gates.min_macro_f1),
        _at_most("max_ece", metrics.get("ece", 1.0), gates.max_ece),
        _at_least("min_coverage", metrics.get("coverage", 0.0), gates.min_coverage),
    ]
    if champion_macro_f1 is not None:
        bound = champion_macro_f1 - gates.max_regression
        checks.append(_at_least("max_regression", metrics.get("macro_f1", 0.0), bound))
    return checks


def promote(
    settings: Settings,
    ref: str,
    *,
    reason: str,
    gates: PromotionGates,
    encoder: CachedEncoder,
    promoted_by: str | None = None,
    now: datetime | None = None,
) -> PromotionResult:
    """Check the gates for a version and, if all pass, make it champion.

    Raises:
        GateFailedError: a gate failed; nothing in the registry changed.
        RegistryError: no such version.
    """
    if not reason.strip():
        raise RegistryError("a promotion needs a reason (--reason TEXT)")
    candidate = get_version(settings, ref)
    champion = _current_champion(settings)
    champion_f1 = None
    if champion is not None and champion.version != candidate.version:
        champion_f1 = _score_on_candidate_data(settings, champion, candidate, encoder)

    checks = check_gates(candidate.metrics, gates, champion_f1)
    failures = [check.describe() for check in checks if not check.passed]
    if failures:
        log.warning(
            "promotion refused",
            extra={"version": candidate.version, "failures": len(failures)},
        )
        raise GateFailedError(failures)

    result = PromotionResult(
        version=candidate.version,
        previous_champion=champion.version if champion else None,
        checks=checks,
        promoted_by=promoted_by or getpass.getuser(),
        reason=reason.strip(),
        promoted_at=(now or datetime.now(UTC)).isoformat(),
    )
    _record(settings, result)
    return result


def _current_champion(settings: Settings) -> VersionInfo | None:
    try:
        return get_version(settings, CHAMPION)
    except RegistryError:
        return None


def _score_on_candidate_data(
    settings: Settings,
    champion: VersionInfo,
    candidate: VersionInfo,
    encoder: CachedEncoder,
) -> float:
    _, bundle = load_bundle(settings, champion.version)
    test = load_test_frame(settings, candidate)
    predictions = bundle.predict(encoder.encode(test["text"].tolist()))
    oos_label = candidate.tags.get("out_of_scope_label") or None
    report = evaluate_predictions(
        predictions, test["label"].tolist(), bundle.thresholds, oos_label
    )
    return float(report["metrics"]["macro_f1"])


def _record(settings: Settings, result: PromotionResult) -> None:
    client = configure_mlflow(settings)
    name = settings.registered_model
    client.set_registered_model_alias(name, CHAMPION, result.version)
    tags = {
        "promoted_by": result.promoted_by,
        "promoted_reason": result.reason[:1000],
        "promoted_at": result.promoted_at,
        "promotion_gates": json.dumps([asdict(check) for check in result.checks]),
        "previous_champion": result.previous_champion or "",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, result.version, key, value)
    if result.previous_champion and result.previous_champion != result.version:
        client.set_model_version_tag(
            name, result.previous_champion, "retired_at", result.promoted_at
        )
    log.info(
        "champion changed",
        extra={
            "model": name,
            "version": result.version,
            "previous": result.previous_champion,
            "promoted_by": result.promoted_by,
        },
    )


def _at_least(gate: str, value: float, bound: float) -> GateCheck:
    return GateCheck(gate, float(value), float(bound), value >= bound)


def _at_most(gate: str, value: float, bound: float) -> GateCheck:
    return GateCheck(gate, float(value), float(bound), value <= bound)
