"""Paired statistics on per-query scores: the arithmetic behind ``harness compare`` and ``harness gate``.

Every function here is pure: it takes per-query score vectors of a baseline and a
candidate, aligned on the same query ids (``SuiteResult.per_query[spec][metric]``), and
returns numbers. Array arguments may carry leading batch dimensions (``(..., n)``, the
queries on the last axis), so the calibration simulations in ``bench/stats_calibration.py``
and ``tests/test_stats.py`` run the very code the gate runs, thousands of data sets at once.

What is computed, and by which library:

* mean paired difference ``candidate - baseline`` and its confidence interval by the paired
  bootstrap (``scipy.stats.bootstrap``, ``paired=True``, BCa, seeded);
* a paired randomization (sign-flip) test (``scipy.stats.permutation_test`` with
  ``permutation_type="samples"``, seeded; exact enumeration when ``2**n`` is within the
  resample budget);
* the effect size Cohen's d_z (mean difference / SD of differences; hand-written, see
  :func:`effect_size`);
* multiplicity correction, Holm (default) or Benjamini-Hochberg
  (``statsmodels.stats.multitest.multipletests``);
* the minimum detectable effect at 80 % power (``statsmodels.stats.power.TTestPower``);
* win/tie/loss counts and the queries that moved most;
* the quality/latency Pareto front of several arms.

The gate's superiority test is the one-sided paired randomization test (see
``docs/statistics.md`` for why, and for the calibration figures). Comparing whole results
(finding arms, merging results, the decision table) is :mod:`harness.comparison`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from harness.errors import HarnessError

CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "none": None}
ALTERNATIVES = ("two-sided", "greater", "less")
TIE_TOLERANCE = 1e-9
DEFAULT_RESAMPLES = 9999


# --------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------


def align(
    baseline: dict[str, float],
    candidate: dict[str, float],
    query_ids: Iterable[str] | None = None,
    labels: tuple[str, str] = ("the baseline", "the candidate"),
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pair two ``query id -> score`` maps on the same queries.

    ``query_ids`` fixes the order (and restricts the set; default: every query either map
    scores). A query missing from either map is an error naming it (``labels`` name the
    maps), never a smaller n: leaving it out would compare the arms on another query set.
    """
    order = list(query_ids) if query_ids is not None else sorted(set(baseline) | set(candidate))
    for label, scores in zip(labels, (baseline, candidate)):
        missing = [qid for qid in order if qid not in scores]
        if missing:
            raise HarnessError(
                f"{label} has no score for query {missing[0]!r} ({len(missing)} of {len(order)} queries have none); "
                "a paired comparison needs both scores of every query"
            )
    b = np.array([baseline[qid] for qid in order], dtype=float)
    c = np.array([candidate[qid] for qid in order], dtype=float)
    return order, b, c


def sample_query_ids(query_ids: Sequence[str], max_queries: int | None, seed: int = 0) -> list[str]:
    """A seeded sample of at most ``max_queries`` ids, kept in their original order."""
    ids = list(query_ids)
    if max_queries is None or max_queries >= len(ids):
        return ids
    if max_queries < 2:
        raise HarnessError(f"max_queries must be at least 2, got {max_queries}")
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(len(ids), size=max_queries, replace=False).tolist())
    return [qid for i, qid in enumerate(ids) if i in keep]


# --------------------------------------------------------------------------------------
# Statistics over (..., n) arrays
# --------------------------------------------------------------------------------------


def _pair(baseline: Any, candidate: Any) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.shape != c.shape:
        raise HarnessError(f"paired scores differ in shape: {b.shape} vs {c.shape}")
    if b.shape[-1] < 2:
        raise HarnessError(f"a paired comparison needs at least 2 queries, got {b.shape[-1]}")
    return b, c


def mean_difference(baseline: Any, candidate: Any) -> np.ndarray | float:
    """Mean of ``candidate - baseline`` over the last axis."""
    b, c = _pair(baseline, candidate)
    return _scalar(np.mean(c - b, axis=-1))


def sd_difference(baseline: Any, candidate: Any) -> np.ndarray | float:
    """Sample standard deviation (ddof=1) of the per-query differences."""
    b, c = _pair(baseline, candidate)
    return _scalar(np.std(c - b, axis=-1, ddof=1))


def effect_size(baseline: Any, candidate: Any) -> np.ndarray | float:
    """Cohen's d_z for paired data: mean difference / SD of differences.

    Hand-written (no library in the environment offers it for paired samples); it follows
    Cohen (1988), *Statistical Power Analysis for the Behavioral Sciences*, 2nd ed., §2.3.5,
    and Lakens (2013), "Calculating and reporting effect sizes", Front. Psychol. 4:863, eq. 6.
    0 when every difference is identical and zero; +-inf when they are identical and non-zero.
    """
    b, c = _pair(baseline, candidate)
    d = c - b
    mean = np.mean(d, axis=-1)
    sd = np.std(d, axis=-1, ddof=1)
    varies = sd > TIE_TOLERANCE  # rounding leaves ~1e-17 where every difference is the same
    with np.errstate(divide="ignore", invalid="ignore"):
        dz = np.where(varies, mean / np.where(varies, sd, 1.0), np.where(np.abs(mean) > TIE_TOLERANCE, np.sign(mean) * np.inf, 0.0))
    return _scalar(dz)


def _mean_diff_statistic(b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(c - b, axis=axis)


def bootstrap_ci(
    baseline: Any,
    candidate: Any,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: str = "BCa",
) -> tuple[Any, Any]:
    """Two-sided confidence interval of the mean paired difference, by the paired bootstrap.

    ``scipy.stats.bootstrap`` resamples queries (pairs kept together) ``n_resamples`` times;
    BCa (bias-corrected and accelerated, Efron 1987) by default. When all differences are
    identical the interval is that value on both ends (the bootstrap distribution is a point).
    """
    from scipy.stats import bootstrap

    b, c = _pair(baseline, candidate)
    d = c - b
    degenerate = np.ptp(d, axis=-1) <= TIE_TOLERANCE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning for constant slices: handled below
        result = bootstrap(
            (b, c),
            _mean_diff_statistic,
            paired=True,
            vectorized=True,
            axis=-1,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method=method,
            batch=_batch_size(b, n_resamples),
            **_rng_argument(bootstrap, seed),
        )
    low = np.asarray(result.confidence_interval.low, dtype=float)
    high = np.asarray(result.confidence_interval.high, dtype=float)
    point = np.mean(d, axis=-1)
    low = np.where(degenerate | ~np.isfinite(low), point, low)
    high = np.where(degenerate | ~np.isfinite(high), point, high)
    return _scalar(low), _scalar(high)


def permutation_pvalue(
    baseline: Any,
    candidate: Any,
    alternative: str = "two-sided",
    shift: float = 0.0,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Any:
    """p-value of the paired randomization (sign-flip) test of the mean difference.

    Null hypothesis: per query, the labels "baseline" and "candidate" are exchangeable, so
    each difference ``candidate - baseline - shift`` is as likely positive as negative.
    ``alternative="greater"`` asks whether the candidate is better by more than ``shift``
    (the gate's superiority test, with ``shift`` the minimum lift). scipy enumerates all
    ``2**n`` sign patterns when that is within ``n_resamples``, else draws them (seeded)
    and returns the (count + 1) / (n_resamples + 1) p-value, which keeps the test's size.
    """
    from scipy.stats import permutation_test

    if alternative not in ALTERNATIVES:
        raise HarnessError(f"unknown alternative {alternative!r} (known: {', '.join(ALTERNATIVES)})")
    b, c = _pair(baseline, candidate)
    result = permutation_test(
        (c - shift, b),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        axis=-1,
        n_resamples=n_resamples,
        alternative=alternative,
        batch=_batch_size(b, n_resamples),
        **_rng_argument(permutation_test, seed),
    )
    return _scalar(np.clip(np.asarray(result.pvalue, dtype=float), 0.0, 1.0))


def ttest_pvalue(baseline: Any, candidate: Any, alternative: str = "two-sided", shift: float = 0.0) -> Any:
    """p-value of the paired t-test (``scipy.stats.ttest_rel``), reported next to the randomization test."""
    from scipy.stats import ttest_rel

    b, c = _pair(baseline, candidate)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        p = np.asarray(ttest_rel(c - shift, b, axis=-1, alternative=alternative).pvalue, dtype=float)
    # identical differences: no evidence either way (scipy gives nan)
    return _scalar(np.where(np.isnan(p), 1.0, p))


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> list[float]:
    """Family-wise (Holm, default) or false-discovery-rate (Benjamini-Hochberg) adjusted p-values.

    ``statsmodels.stats.multitest.multipletests``; ``method="none"`` returns them unchanged.
    """
    if method not in CORRECTIONS:
        raise HarnessError(f"unknown correction {method!r} (known: {', '.join(CORRECTIONS)})")
    values = [float(p) for p in pvalues]
    if not values or CORRECTIONS[method] is None:
        return values
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(values, method=CORRECTIONS[method])[1]]


def _power_alternative(alternative: str) -> str:
    return {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[alternative]


def analytic_power(
    difference: float, sd: float, n: int, alpha: float = 0.05, alternative: str = "greater"
) -> float:
    """Power of the paired t-test (noncentral t) to detect ``difference`` with ``n`` queries.

    ``statsmodels.stats.power.TTestPower`` (the one-sample/paired t-test), effect size
    d_z = difference / sd; Cohen (1988), ch. 2.
    """
    from statsmodels.stats.power import TTestPower

    if sd <= 0:
        return 1.0 if difference > 0 else 0.0
    return float(TTestPower().power(effect_size=difference / sd, nobs=n, alpha=alpha, alternative=_power_alternative(alternative)))


def minimum_detectable_effect(
    n: int, sd: float, alpha: float = 0.05, power: float = 0.8, alternative: str = "greater"
) -> float:
    """The smallest true mean difference the test detects with probability ``power``.

    No library returns this in metric units, so it is assembled from ``TTestPower`` (which
    solves the noncentral-t power equation for d_z) times the SD of the differences. For
    large n it equals the normal-approximation formula for a paired test,
    MDE = (z_{1-alpha} + z_{power}) * sd / sqrt(n) (one-sided; z_{1-alpha/2} for two-sided),
    Cohen (1988) ch. 2 and Chow, Shao & Wang (2008), *Sample Size Calculations in Clinical
    Research*, 2nd ed., §3.1. ``nan`` when n < 2; 0 when the differences do not vary.
    """
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    if sd <= TIE_TOLERANCE:
        return 0.0
    from scipy.stats import norm
    from statsmodels.stats.power import TTestPower

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dz = TTestPower().solve_power(
                effect_size=None, nobs=n, alpha=alpha, power=power, alternative=_power_alternative(alternative)
            )
        dz = float(np.asarray(dz).ravel()[0])
        if not math.isfinite(dz) or dz <= 0:
            raise ValueError(dz)
    except Exception:  # root finding can fail for n of 2 or 3: fall back to the normal formula
        z_alpha = norm.ppf(1 - alpha / 2) if alternative == "two-sided" else norm.ppf(1 - alpha)
        dz = (z_alpha + norm.ppf(power)) / math.sqrt(n)
    return dz * sd


def win_tie_loss(baseline: Any, candidate: Any, tolerance: float = TIE_TOLERANCE) -> tuple[int, int, int]:
    """Queries where the candidate scores higher, the same (within ``tolerance``), lower."""
    b, c = _pair(baseline, candidate)
    d = c - b
    return int(np.sum(d > tolerance)), int(np.sum(np.abs(d) <= tolerance)), int(np.sum(d < -tolerance))


def most_moved(
    query_ids: Sequence[str],
    baseline: Any,
    candidate: Any,
    queries: dict[str, str] | None = None,
    k: int = 5,
) -> dict[str, list[dict[str, Any]]]:
    """The ``k`` largest gains and the ``k`` largest losses, with the query text to read."""
    b, c = _pair(baseline, candidate)
    d = c - b
    queries = queries or {}

    def rows(indices: Iterable[int]) -> list[dict[str, Any]]:
        return [
            {
                "query_id": query_ids[i],
                "text": queries.get(query_ids[i], ""),
                "baseline": float(b[i]),
                "candidate": float(c[i]),
                "difference": float(d[i]),
            }
            for i in indices
        ]

    order = np.lexsort((np.array(query_ids, dtype=object).astype(str), -d))  # stable: by -d, then id
    gains = [i for i in order if d[i] > TIE_TOLERANCE][:k]
    losses = [i for i in order[::-1] if d[i] < -TIE_TOLERANCE][:k]
    return {"gains": rows(gains), "losses": rows(losses)}


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names of the arms no other arm dominates, from ``name -> (quality, latency)``.

    An arm is dominated when another is at least as good on both (higher quality, lower
    latency) and strictly better on one. Arms with an unknown (nan) value are left out.
    """
    known = {k: v for k, v in points.items() if all(math.isfinite(x) for x in v)}
    front = set()
    for name, (quality, latency) in known.items():
        dominated = any(
            q >= quality and lat <= latency and (q > quality or lat < latency)
            for other, (q, lat) in known.items()
            if other != name
        )
        if not dominated:
            front.add(name)
    return front


def _rng_argument(function: Any, seed: int) -> dict[str, Any]:
    """scipy >= 1.15 takes ``rng``; older releases (the floor in pyproject is 1.13) ``random_state``."""
    import inspect

    name = "rng" if "rng" in inspect.signature(function).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def _batch_size(b: np.ndarray, n_resamples: int) -> int | None:
    """Resamples per batch so one batch stays near 64 MiB whatever the leading dimensions."""
    cells = int(np.prod(b.shape)) or 1
    return max(1, min(n_resamples, (8 * 1024 * 1024) // cells))


def _scalar(value: Any) -> Any:
    array = np.asarray(value)
    return float(array) if array.ndim == 0 else array


# --------------------------------------------------------------------------------------
# One comparison, and all comparisons of a set of results
# --------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """A candidate against the baseline on one suite and metric, paired on the same queries."""

    suite: str
    metric: str
    baseline: str
    candidate: str
    n: int
    baseline_mean: float
    candidate_mean: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    sd_difference: float
    effect_size: float
    p_value: float
    alternative: str
    t_test_p_value: float
    wins: int
    ties: int
    losses: int
    mde: float
    mde_alpha: float
    p_adjusted: float | None = None
    significant: bool | None = None
    query_ids: list[str] = field(default_factory=list)
    moved: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self, with_query_ids: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_query_ids:
            data.pop("query_ids")
        return {key: _json_number(value) for key, value in data.items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def compare_scores(
    suite: str,
    metric: str,
    baseline_spec: str,
    candidate_spec: str,
    baseline: dict[str, float],
    candidate: dict[str, float],
    query_ids: Sequence[str] | None = None,
    queries: dict[str, str] | None = None,
    alternative: str = "two-sided",
    shift: float = 0.0,
    confidence: float = 0.95,
    alpha: float = 0.05,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    moved: int = 5,
) -> Comparison:
    """All statistics of one paired comparison of ``query id -> score`` maps."""
    ids, b, c = align(baseline, candidate, query_ids, labels=(f"{suite}, {metric}: {baseline_spec}", f"{suite}, {metric}: {candidate_spec}"))
    if len(ids) < 2:
        raise HarnessError(f"{suite}, {metric}: a paired comparison needs at least 2 queries, got {len(ids)}")
    low, high = bootstrap_ci(b, c, confidence=confidence, n_resamples=n_resamples, seed=seed)
    sd = float(sd_difference(b, c))
    wins, ties, losses = win_tie_loss(b, c)
    return Comparison(
        suite=suite,
        metric=metric,
        baseline=baseline_spec,
        candidate=candidate_spec,
        n=len(ids),
        baseline_mean=float(np.mean(b)),
        candidate_mean=float(np.mean(c)),
        difference=float(mean_difference(b, c)),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        sd_difference=sd,
        effect_size=float(effect_size(b, c)),
        p_value=float(permutation_pvalue(b, c, alternative=alternative, shift=shift, n_resamples=n_resamples, seed=seed)),
        alternative=alternative,
        t_test_p_value=float(ttest_pvalue(b, c, alternative=alternative, shift=shift)),
        wins=wins,
        ties=ties,
        losses=losses,
        mde=minimum_detectable_effect(len(ids), sd, alpha=alpha, alternative="two-sided" if alternative == "two-sided" else "greater"),
        mde_alpha=alpha,
        query_ids=ids,
        moved=most_moved(ids, b, c, queries, k=moved) if moved else {},
    )


def apply_correction(comparisons: Sequence[Comparison], method: str = "holm", alpha: float = 0.05) -> None:
    """Fill ``p_adjusted`` and ``significant`` across one family of comparisons (in place)."""
    adjusted = adjust_pvalues([c.p_value for c in comparisons], method)
    for comparison, p in zip(comparisons, adjusted):
        comparison.p_adjusted = p
        comparison.significant = p < alpha

