from __future__ import annotations

import pytest

from training.config import PromotionGates
from training.promotion import check_gates

GATES = PromotionGates(
    min_macro_f1=0.8, max_ece=0.05, min_coverage=0.5, max_regression=0.02
)
GOOD = {"macro_f1": 0.9, "ece": 0.03, "coverage": 0.7}


def _failed(checks):
    return {check.gate for check in checks if not check.passed}


def test_a_candidate_above_every_bound_passes_every_gate():
    assert _failed(check_gates(GOOD, GATES)) == set()


@pytest.mark.parametrize(
    ("change", "gate"),
    [
        pytest.param({"macro_f1": 0.7}, "min_macro_f1", id="macro-f1-too-low"),
        pytest.param({"ece": 0.2}, "max_ece", id="calibration-too-poor"),
        pytest.param({"coverage": 0.1}, "min_coverage", id="coverage-too-low"),
    ],
)
def test_each_gate_fails_on_its_own_metric(change, gate):
    assert _failed(check_gates({**GOOD, **change}, GATES)) == {gate}


def test_falling_behind_the_champion_by_more_than_the_margin_fails():
    checks = check_gates(GOOD, GATES, champion_macro_f1=0.95)

    assert _failed(checks) == {"max_regression"}
    failed = next(check for check in checks if not check.passed)
    assert "value 0.9000" in failed.describe()
    assert "bound 0.9300" in failed.describe()


def test_falling_behind_within_the_margin_passes():
    assert _failed(check_gates(GOOD, GATES, champion_macro_f1=0.91)) == set()


def test_missing_metrics_fail_rather_than_pass():
    assert _failed(check_gates({}, GATES)) == {
        "min_macro_f1",
        "max_ece",
        "min_coverage",
    }
