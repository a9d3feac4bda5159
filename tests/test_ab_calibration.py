"""Calibration of the A/B statistics on simulated A/A and A/B experiments.

The quick tests run a few dozen experiments; the acceptance figures (500+ experiments,
docs/ab.md) come from ``python -m harness.ab.calibration`` and run here only with
HARNESS_SLOW=1.
"""

from __future__ import annotations

import os

import pytest

from harness.ab import calibration as C

slow = pytest.mark.skipif(not os.environ.get("HARNESS_SLOW"), reason="set HARNESS_SLOW=1 for the 500-experiment calibration")


def test_the_fast_calibration_path_equals_the_full_pipeline():
    fast = C.run_many_fast(1, 0.05, 600, 5, seed=7)
    full = C.run_many(1, 0.05, 600, 5, seed=7)
    for a, b in zip(fast, full, strict=True):
        assert a["effect"] == pytest.approx(b["effect"], rel=1e-9)
        assert a["pvalue"] == pytest.approx(b["pvalue"], rel=1e-6)
        assert a["seq_pvalue"] == pytest.approx(b["seq_pvalue"], rel=1e-6)
        assert a["daily_pvalues"] == pytest.approx(b["daily_pvalues"], rel=1e-6)


def test_peeking_inflates_the_naive_test_but_not_the_sequential_one():
    rows = C.run_many_fast(40, 0.0, 800, 10, seed=3, pre_days=3)
    s = C.summarise_aa(rows)
    assert s["fixed_horizon_fpr"] <= 0.2
    assert s["sequential_daily_peeking_fpr"] <= s["naive_daily_peeking_fpr"]
    assert s["sequential_daily_peeking_fpr"] <= 0.1
    # the always-valid interval is wider than the fixed one (the running intersection may
    # trim one side, never both)
    assert all(r["seq_ci"][1] - r["seq_ci"][0] > r["ci"][1] - r["ci"][0] for r in rows)


@slow
def test_acceptance_calibration_500_experiments():
    aa = C.summarise_aa(C.run_many_fast(500, 0.0, 2000, 14, seed=1))
    assert 0.03 <= aa["fixed_horizon_fpr"] <= 0.07
    assert aa["sequential_daily_peeking_fpr"] <= 0.05
    cov = C.summarise_coverage(C.run_many_fast(500, 0.05, 2000, 14, seed=2))
    assert 0.93 <= cov["coverage_95"] <= 0.97
