"""Calibration of the gate's statistics on simulated per-query scores with known truth.

Prints, for seeded simulations:

* the false-positive rate of the gate's superiority test (one-sided paired randomization
  test at alpha 0.05) when there is no true difference -- acceptance: within [0.035, 0.065];
* its power with a true difference, next to the analytic power of the paired t-test
  (``statsmodels`` ``TTestPower``) -- acceptance: within 0.05;
* the coverage of the 95 % paired-bootstrap (BCa) interval of the mean difference --
  acceptance: within [0.93, 0.97].

Every number comes from the functions the gate calls (``harness.stats``), run on batches
of simulated data sets at once (queries on the last axis). ``tests/test_stats.py`` runs a
smaller configuration of the same code.

Run:  .venv/bin/python bench/stats_calibration.py [--sims 2000] [--resamples 999]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import stats  # noqa: E402

ALPHA = 0.05
CHUNK = 250  # data sets per batched call; each chunk gets its own resampling seed


# --------------------------------------------------------------------------------------
# Simulated per-query scores
# --------------------------------------------------------------------------------------


def normal_pairs(rng: np.random.Generator, sims: int, n: int, delta: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Baseline scores uniform in [0, 1]; candidate = baseline + N(delta, sd). True mean difference: delta."""
    b = rng.random((sims, n))
    return b, b + rng.normal(delta, sd, size=(sims, n))


def ndcg_like_pairs(
    rng: np.random.Generator, sims: int, n: int, candidate_boost: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """nDCG@10 of one relevant document per query, as two retrievers would score it.

    Each query has a difficulty; each system puts the relevant document at a geometric
    rank whose success probability depends on it (``candidate_boost`` raises the
    candidate's), scoring 1/log2(rank + 1) within the top 10 and 0 beyond. With no boost
    the two systems are exchangeable per query: the randomization test's null holds
    exactly, with the ties, bounds and skew of real per-query metrics.
    """
    difficulty = rng.beta(2.0, 2.0, size=(sims, n, 1))
    p_base = np.clip(0.9 - 0.8 * difficulty, 0.02, 0.98)
    p_cand = np.clip(p_base + candidate_boost, 0.02, 0.98)
    ranks_b = rng.geometric(p_base[..., 0])
    ranks_c = rng.geometric(p_cand[..., 0])

    def score(ranks: np.ndarray) -> np.ndarray:
        return np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0)

    return score(ranks_b), score(ranks_c)


def ndcg_like_true_difference(candidate_boost: float, draws: int = 2_000_000, seed: int = 99) -> float:
    """The population mean difference of :func:`ndcg_like_pairs`, by a large Monte Carlo."""
    b, c = ndcg_like_pairs(np.random.default_rng(seed), 1, draws, candidate_boost)
    return float(np.mean(c - b))


# --------------------------------------------------------------------------------------
# The three calibrations
# --------------------------------------------------------------------------------------


def _chunks(sims: int):
    for start in range(0, sims, CHUNK):
        yield start // CHUNK, min(CHUNK, sims - start)


def rejection_rate(make, sims: int, resamples: int, seed: int, shift: float = 0.0) -> float:
    """Share of simulated data sets where the gate's one-sided test rejects at ALPHA."""
    rng = np.random.default_rng(seed)
    rejected = 0
    for index, size in _chunks(sims):
        b, c = make(rng, size)
        p = stats.permutation_pvalue(b, c, alternative="greater", shift=shift, n_resamples=resamples, seed=seed + index)
        rejected += int(np.sum(p < ALPHA))
    return rejected / sims


def coverage(make, truth: float, sims: int, resamples: int, seed: int, confidence: float = 0.95) -> float:
    rng = np.random.default_rng(seed)
    covered = 0
    for index, size in _chunks(sims):
        b, c = make(rng, size)
        low, high = stats.bootstrap_ci(b, c, confidence=confidence, n_resamples=resamples, seed=seed + index)
        covered += int(np.sum((low <= truth) & (truth <= high)))
    return covered / sims


def calibrate(sims: int = 2000, resamples: int = 999, n: int = 100, seed: int = 20240601, quick: bool = False) -> dict:
    """All calibration figures; ``quick`` keeps only the checks the test suite runs."""
    out: dict = {"sims": sims, "resamples": resamples, "queries": n, "alpha": ALPHA, "seed": seed}
    sd = 0.2

    # 1. size under the null
    out["fpr_ndcg_like"] = rejection_rate(lambda r, s: ndcg_like_pairs(r, s, n), sims, resamples, seed)
    if not quick:
        out["fpr_normal"] = rejection_rate(lambda r, s: normal_pairs(r, s, n, 0.0, sd), sims, resamples, seed + 1)
        # a minimum lift: the null is "true lift = min_lift"
        out["fpr_normal_min_lift_0.01"] = rejection_rate(
            lambda r, s: normal_pairs(r, s, n, 0.01, sd), sims, resamples, seed + 2, shift=0.01
        )
        out["fpr_ndcg_like_n20"] = rejection_rate(lambda r, s: ndcg_like_pairs(r, s, 20), sims, resamples, seed + 3)

    # 2. power against the analytic value, at the MDE (analytic power 0.80)
    delta = stats.minimum_detectable_effect(n, sd, alpha=ALPHA, power=0.8, alternative="greater")
    out["power_delta"] = delta
    out["power_analytic"] = stats.analytic_power(delta, sd, n, alpha=ALPHA, alternative="greater")
    out["power_simulated"] = rejection_rate(lambda r, s: normal_pairs(r, s, n, delta, sd), sims, resamples, seed + 4)
    if not quick:
        small = 0.5 * delta
        out["power_half_mde_analytic"] = stats.analytic_power(small, sd, n, alpha=ALPHA, alternative="greater")
        out["power_half_mde_simulated"] = rejection_rate(lambda r, s: normal_pairs(r, s, n, small, sd), sims, resamples, seed + 5)

    # 3. coverage of the 95 % interval
    out["coverage_normal"] = coverage(lambda r, s: normal_pairs(r, s, n, 0.03, sd), 0.03, sims, resamples, seed + 6)
    if not quick:
        boost = 0.05
        truth = ndcg_like_true_difference(boost)
        out["coverage_ndcg_like_truth"] = truth
        out["coverage_ndcg_like"] = coverage(lambda r, s: ndcg_like_pairs(r, s, n, boost), truth, sims, resamples, seed + 7)
    return out


ACCEPTANCE = {
    "fpr": (0.035, 0.065),
    "power_gap": 0.05,
    "coverage": (0.93, 0.97),
}


def check(figures: dict) -> list[str]:
    """Acceptance violations (empty when all figures are in range)."""
    problems = []
    low, high = ACCEPTANCE["fpr"]
    for key, value in figures.items():
        if key.startswith("fpr") and not low <= value <= high:
            problems.append(f"{key} = {value:.4f} outside [{low}, {high}]")
        if key.startswith("coverage") and not key.endswith("truth") and not ACCEPTANCE["coverage"][0] <= value <= ACCEPTANCE["coverage"][1]:
            problems.append(f"{key} = {value:.4f} outside {ACCEPTANCE['coverage']}")
    for prefix in ("power", "power_half_mde"):
        if f"{prefix}_simulated" in figures:
            gap = abs(figures[f"{prefix}_simulated"] - figures[f"{prefix}_analytic"])
            if gap > ACCEPTANCE["power_gap"]:
                problems.append(f"{prefix}: simulated {figures[f'{prefix}_simulated']:.4f} vs analytic "
                                f"{figures[f'{prefix}_analytic']:.4f} (gap {gap:.4f} > {ACCEPTANCE['power_gap']})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = calibrate(args.sims, args.resamples, args.queries, args.seed)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            print(f"{key:32s} {value:.4f}" if isinstance(value, float) else f"{key:32s} {value}")
    problems = check(figures)
    for problem in problems:
        print(f"OUT OF RANGE: {problem}")
    print("all figures within the acceptance ranges" if not problems else f"{len(problems)} figure(s) out of range")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
