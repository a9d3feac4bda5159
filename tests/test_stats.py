"""harness.stats and harness.comparison against known answers, and the calibration acceptance on seeded simulations."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm, ttest_rel

from harness import comparison, stats
from harness.errors import HarnessError
from harness.results import EvalResult, RetrieverResult, SuiteResult

ROOT = Path(__file__).resolve().parents[1]


def load_calibration():
    spec = importlib.util.spec_from_file_location("stats_calibration", ROOT / "bench" / "stats_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- known answers


def test_mean_sd_and_effect_size() -> None:
    b = np.array([0.1, 0.5, 0.2, 0.9])
    c = np.array([0.3, 0.5, 0.1, 1.0])
    d = c - b
    assert stats.mean_difference(b, c) == pytest.approx(d.mean())
    assert stats.sd_difference(b, c) == pytest.approx(d.std(ddof=1))
    assert stats.effect_size(b, c) == pytest.approx(d.mean() / d.std(ddof=1))
    assert stats.effect_size(b, b) == 0.0
    assert stats.effect_size(b, b + 0.1) == math.inf


def test_exact_sign_flip_p_values() -> None:
    # five queries, all better: exactly 1 of the 2**5 sign patterns is as extreme
    b = np.zeros(5)
    c = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert stats.permutation_pvalue(b, c, "greater") == pytest.approx(1 / 32)
    assert stats.permutation_pvalue(b, c, "two-sided") == pytest.approx(2 / 32)
    assert stats.permutation_pvalue(b, c, "less") == pytest.approx(1.0)
    # with a shift the null is "lift = shift": differences 0.1 - 0.3 .. 0.5 - 0.3
    assert stats.permutation_pvalue(b, c, "greater", shift=0.3) > 0.3
    assert stats.permutation_pvalue(b, b, "greater") == 1.0


def test_randomized_p_value_is_seeded_and_close_to_t_test() -> None:
    rng = np.random.default_rng(3)
    b = rng.random(200)
    c = b + rng.normal(0.02, 0.2, 200)
    p1 = stats.permutation_pvalue(b, c, "greater", seed=1)
    assert p1 == stats.permutation_pvalue(b, c, "greater", seed=1)
    assert p1 == pytest.approx(ttest_rel(c, b, alternative="greater").pvalue, abs=0.02)
    assert stats.ttest_pvalue(b, c, "greater") == pytest.approx(ttest_rel(c, b, alternative="greater").pvalue)


def test_bootstrap_interval() -> None:
    rng = np.random.default_rng(4)
    b = rng.random(300)
    c = b + rng.normal(0.05, 0.1, 300)
    low, high = stats.bootstrap_ci(b, c, seed=0)
    d = c - b
    half = norm.ppf(0.975) * d.std(ddof=1) / math.sqrt(len(d))
    assert low < d.mean() < high
    assert low == pytest.approx(d.mean() - half, abs=0.003) and high == pytest.approx(d.mean() + half, abs=0.003)
    assert (low, high) == stats.bootstrap_ci(b, c, seed=0)
    assert stats.bootstrap_ci(b, b + 0.1) == (pytest.approx(0.1), pytest.approx(0.1))  # degenerate: a point


def test_batched_calls_match_single_ones() -> None:
    rng = np.random.default_rng(5)
    b = rng.random((3, 40))
    c = b + rng.normal(0, 0.2, (3, 40))
    low, high = stats.bootstrap_ci(b, c, n_resamples=999)
    p = stats.permutation_pvalue(b, c, "greater", n_resamples=999)
    assert low.shape == high.shape == p.shape == (3,)
    assert np.all(low < stats.mean_difference(b, c)) and np.all(stats.mean_difference(b, c) < high)


def test_corrections() -> None:
    p = [0.01, 0.04, 0.03]
    assert stats.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert stats.adjust_pvalues(p, "bh") == pytest.approx([0.03, 0.04, 0.04])
    assert stats.adjust_pvalues(p, "none") == p
    with pytest.raises(HarnessError, match="unknown correction"):
        stats.adjust_pvalues(p, "bonferroni-ish")


def test_minimum_detectable_effect_and_power() -> None:
    # large n: the normal-approximation formula (z_{1-a} + z_{1-b}) * sd / sqrt(n)
    n, sd = 2000, 0.2
    normal = (norm.ppf(0.95) + norm.ppf(0.8)) * sd / math.sqrt(n)
    assert stats.minimum_detectable_effect(n, sd) == pytest.approx(normal, rel=0.002)
    two_sided = (norm.ppf(0.975) + norm.ppf(0.8)) * sd / math.sqrt(n)
    assert stats.minimum_detectable_effect(n, sd, alternative="two-sided") == pytest.approx(two_sided, rel=0.002)
    # small n: t quantiles make it larger than the normal formula, and power there is 0.8
    mde = stats.minimum_detectable_effect(20, sd)
    assert mde > (norm.ppf(0.95) + norm.ppf(0.8)) * sd / math.sqrt(20)
    assert stats.analytic_power(mde, sd, 20) == pytest.approx(0.8, abs=1e-4)
    assert stats.minimum_detectable_effect(50, 0.0) == 0.0
    assert math.isnan(stats.minimum_detectable_effect(1, 0.2))


def test_win_tie_loss_and_most_moved() -> None:
    ids = ["a", "b", "c", "d", "e"]
    b = np.array([0.5, 0.5, 0.5, 0.5, 0.5])
    c = np.array([0.9, 0.5, 0.1, 0.6, 0.5 + 1e-12])
    assert stats.win_tie_loss(b, c) == (2, 2, 1)
    moved = stats.most_moved(ids, b, c, {"a": "forgot my password", "c": "gateway"}, k=1)
    assert moved["gains"][0]["query_id"] == "a" and moved["gains"][0]["text"] == "forgot my password"
    assert moved["losses"][0]["query_id"] == "c" and moved["losses"][0]["difference"] == pytest.approx(-0.4)


def test_alignment_and_sampling() -> None:
    ids, b, c = stats.align({"q1": 0.1, "q2": 0.2, "q3": 0.3}, {"q3": 1.0, "q1": 0.0}, ["q3", "q1"])
    assert ids == ["q3", "q1"] and list(b) == [0.3, 0.1] and list(c) == [1.0, 0.0]
    # a query one side lacks is an error, never a smaller n
    with pytest.raises(HarnessError, match="the candidate has no score for query 'q2'"):
        stats.align({"q1": 0.1, "q2": 0.2, "q3": 0.3}, {"q3": 1.0, "q1": 0.0}, ["q3", "q2", "q1"])
    with pytest.raises(HarnessError, match="the baseline has no score for query 'q4'"):
        stats.align({"q1": 0.1}, {"q1": 0.0, "q4": 1.0})
    all_ids = [f"q{i}" for i in range(100)]
    sample = stats.sample_query_ids(all_ids, 20, seed=7)
    assert len(sample) == 20 and sample == stats.sample_query_ids(all_ids, 20, seed=7)
    assert sample == sorted(sample, key=all_ids.index)
    assert sample != stats.sample_query_ids(all_ids, 20, seed=8)
    assert stats.sample_query_ids(all_ids, None) == all_ids
    with pytest.raises(HarnessError, match="at least 2"):
        stats.compare_scores("s", "m", "a", "b", {"q1": 1.0}, {"q1": 0.0})


def test_pareto_front() -> None:
    points = {"bm25": (0.50, 2.0), "dense": (0.60, 10.0), "hybrid": (0.65, 12.0), "rerank": (0.64, 80.0), "x": (0.6, float("nan"))}
    assert stats.pareto_front(points) == {"bm25", "dense", "hybrid"}


def make_result(n: int = 120, seed: int = 0) -> EvalResult:
    rng = np.random.default_rng(seed)
    ids = [f"q{i:03d}" for i in range(n)]
    base = rng.random(n)
    per_query = {
        "bm25": {"ndcg@10": dict(zip(ids, base))},
        "dense": {"ndcg@10": dict(zip(ids, np.clip(base + rng.normal(0.1, 0.1, n), 0, 1)))},
        "dense(dim=16)": {"ndcg@10": dict(zip(ids, np.clip(base - 0.2, 0, 1)))},
    }
    suite = SuiteResult("heldout:test", "heldout", "test", ids, {}, per_query)
    retrievers = [
        RetrieverResult("bm25", {"kind": "bm25"}, 0.5, {"p50_ms": 1.0, "p95_ms": 2.0, "mean_ms": 1.2}),
        RetrieverResult("dense", {"kind": "dense", "dimension": 384, "encode_seconds": 30.0}, 31.0, {"p50_ms": 5.0, "p95_ms": 9.0}),
        RetrieverResult("dense(dim=16)", {"kind": "dense", "dimension": 16, "encode_seconds": 30.0}, 31.0, {"p50_ms": 4.0, "p95_ms": 8.0}),
    ]
    return EvalResult({"seed": seed}, {"name": "synthetic", "hash": "abc"}, {"metrics": ["ndcg@10"], "split": "test"},
                      retrievers, [suite], {qid: f"text of {qid}" for qid in ids})


def test_compare_results_on_a_hand_built_result() -> None:
    body = comparison.compare_results(make_result(), "bm25", n_resamples=999, margin=0.001)
    by_arm = {c["candidate"]: c for c in body["comparisons"]}
    assert by_arm["dense"]["significant"] and by_arm["dense"]["ci_low"] > 0
    assert by_arm["dense(dim=16)"]["significant"] and by_arm["dense(dim=16)"]["ci_high"] < 0
    assert by_arm["dense"]["p_adjusted"] >= by_arm["dense"]["p_value"]
    assert by_arm["dense"]["moved"]["gains"][0]["text"].startswith("text of")
    assert any("cannot detect" in w and "0.001" in w for w in body["warnings"])
    rows = {r["arm"]: r for r in body["decision_table"][0]["rows"]}
    assert rows["bm25"]["difference"] is None and rows["bm25"]["pareto"]
    assert rows["dense"]["pareto"] and not rows["dense(dim=16)"]["pareto"]
    assert rows["dense"]["dimension"] == 384 and rows["dense"]["encode_seconds"] == 30.0


def test_merge_refuses_another_dataset() -> None:
    a, b = make_result(), make_result()
    b.dataset = {"name": "other", "hash": "def"}
    with pytest.raises(HarnessError, match="another dataset"):
        comparison.merge_results([a, b], ["a.json", "b.json"])


# ---------------------------------------------------------------------------- calibration


def test_calibration_of_the_gate_test_and_intervals() -> None:
    """The issue's acceptance, on 1,000 seeded simulations each (the bench runs more)."""
    calibration = load_calibration()
    figures = calibration.calibrate(sims=1000, resamples=499, n=100, seed=11, quick=True)
    assert 0.035 <= figures["fpr_ndcg_like"] <= 0.065, figures
    assert abs(figures["power_simulated"] - figures["power_analytic"]) <= 0.05, figures
    assert 0.93 <= figures["coverage_normal"] <= 0.97, figures
    assert calibration.check(figures) == []
