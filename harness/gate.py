"""The promotion gate: the evaluation a policy names, and a pass/fail/inconclusive verdict.

The policy (a TOML file: baseline, candidate, data or results, statistical checks and
budgets) is read by ``harness.policy.load_policy``; ``docs/statistics.md`` explains the
tests. Every check ends ``pass``, ``fail`` or ``inconclusive`` with its numbers and a one-line
reason. :func:`verdict` turns them into the exit code: 0 all pass, 1 any fail, 2 none
fails but one is inconclusive (0 when ``inconclusive_blocks = false``); any error is
raised as :class:`HarnessError` (exit 3), so an error never passes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, located
from harness.policy import BUDGET_KEYS, Check, Policy

EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE = 0, 1, 2


def policy_suites(policy: Policy) -> list[str]:
    return list(dict.fromkeys([*policy.suites, *(c.suite for c in policy.checks if c.suite)]))


def policy_metrics(policy: Policy) -> list[str]:
    return list(dict.fromkeys([*(c.metric for c in policy.checks if c.metric), *policy.metrics]))


def obtain_result(policy: Policy, out: Path | None = None):
    """Read the result files the policy names, or evaluate baseline and candidate."""
    from harness.results import read_eval_result
    from harness.comparison import merge_results

    if policy.results:
        return merge_results([read_eval_result(p) for p in policy.results], [str(p) for p in policy.results])
    from harness.evaluate import evaluate

    return evaluate(
        policy.data,
        [policy.baseline, policy.candidate],
        policy_suites(policy),  # canonical names round-trip through parse_suite
        out=None if out is None else out / "eval",
        metrics=policy_metrics(policy),
        cache_dir=policy.cache,
        split=policy.split,
        unknown_docs=policy.unknown_docs,
        seed=policy.seed,
    )


def run_gate(policy: Policy, result) -> dict[str, Any]:
    """Judge every check of the policy on an evaluation result; returns the gate result body."""
    from harness import stats
    from harness.comparison import find_spec

    baseline = find_spec(result, policy.baseline)
    candidate = find_spec(result, policy.candidate)
    sampled: dict[str, list[str]] = {}
    comparisons: dict[int, stats.Comparison] = {}
    for i, check in enumerate(policy.checks):
        if check.type == "budget":
            continue
        try:
            suite = result.suite(check.suite)
        except HarnessError as exc:
            raise located(policy.path, check.line, f"check {check.name!r}: {exc}") from None
        if check.suite not in sampled:
            sampled[check.suite] = stats.sample_query_ids(suite.query_ids, policy.max_queries, policy.seed)
        for spec in (baseline, candidate):
            if check.metric not in suite.per_query.get(spec, {}):
                raise located(policy.path, check.line, f"check {check.name!r}: the result has no per-query "
                                                       f"{check.metric} of {spec} on {check.suite}")
        superiority = check.type == "superiority"
        comparisons[i] = stats.compare_scores(
            check.suite, check.metric, baseline, candidate,
            suite.per_query[baseline][check.metric], suite.per_query[candidate][check.metric],
            query_ids=sampled[check.suite], queries=result.queries,
            alternative="greater" if superiority else "two-sided",
            shift=check.min_lift if superiority else 0.0,
            confidence=policy.confidence, alpha=check.alpha if superiority else policy.alpha,
            n_resamples=policy.n_resamples, seed=policy.seed,
        )
    family = [i for i, c in enumerate(policy.checks) if c.type == "superiority"]
    adjusted = stats.adjust_pvalues([comparisons[i].p_value for i in family], policy.correction)
    for i, p in zip(family, adjusted):
        comparisons[i].p_adjusted = p
        comparisons[i].significant = p < policy.checks[i].alpha

    outcomes = []
    for i, check in enumerate(policy.checks):
        if check.type == "superiority":
            outcome = _judge_superiority(check, comparisons[i], policy)
        elif check.type == "non-inferiority":
            outcome = _judge_non_inferiority(check, comparisons[i], policy)
        else:
            outcome = _judge_budget(check, result, candidate)
        outcomes.append(outcome)
    status, code = verdict([o["status"] for o in outcomes], policy.inconclusive_blocks)
    counts = {s: sum(o["status"] == s for o in outcomes) for s in ("pass", "fail", "inconclusive")}
    return {
        "status": status,
        "exit_code": code,
        "summary": counts,
        "baseline": baseline,
        "candidate": candidate,
        "policy": policy.describe(),
        "dataset": result.dataset,
        "options": {
            "superiority_test": "paired randomization (sign-flip) test, one-sided, scipy.stats.permutation_test",
            "interval": f"{policy.confidence:.0%} paired bootstrap (BCa), scipy.stats.bootstrap",
            "correction": policy.correction,
            "n_resamples": policy.n_resamples,
            "seed": policy.seed,
            "max_queries": policy.max_queries,
        },
        "sampled_query_ids": sampled if policy.max_queries is not None else {},
        "checks": outcomes,
    }


def verdict(statuses: list[str], inconclusive_blocks: bool = True) -> tuple[str, int]:
    """Overall status and exit code: any fail -> 1; else any inconclusive -> 2 (0 if it does not block)."""
    if any(s == "fail" for s in statuses):
        return "fail", EXIT_FAIL
    if any(s == "inconclusive" for s in statuses):
        return ("inconclusive", EXIT_INCONCLUSIVE) if inconclusive_blocks else ("inconclusive", EXIT_PASS)
    return "pass", EXIT_PASS


def _numbers(comparison) -> dict[str, Any]:
    keys = ("n", "baseline_mean", "candidate_mean", "difference", "ci_low", "ci_high", "confidence", "sd_difference",
            "effect_size", "p_value", "p_adjusted", "t_test_p_value", "wins", "ties", "losses", "mde")
    data = comparison.to_dict()
    return {key: data[key] for key in keys}


def _ci(c) -> str:
    return f"{c.difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]"


def _judge_superiority(check: Check, c, policy: Policy) -> dict[str, Any]:
    lift = f" by more than {check.min_lift:g}" if check.min_lift else ""
    level = f"{c.confidence:.0%} CI"
    adj = "" if policy.correction == "none" else f" ({policy.correction}-adjusted)"
    if c.p_adjusted < check.alpha:
        status = "pass"
        reason = (f"{c.metric} {_ci(c)} ({level}, n={c.n}): better{lift}, one-sided p={c.p_adjusted:.4g}{adj} < {check.alpha:g}")
    elif c.ci_high <= check.min_lift:
        status = "fail"
        reason = (f"{c.metric} {_ci(c)} ({level}, n={c.n}): the whole interval is at or below "
                  f"{check.min_lift:g}, so the candidate is not better{lift}")
    else:
        status = "inconclusive"
        reason = (f"{c.metric} {_ci(c)} ({level}, n={c.n}): not significant (p={c.p_adjusted:.4g}{adj} >= {check.alpha:g}) "
                  f"and the interval still allows a lift above {check.min_lift:g}; this test set detects lifts of "
                  f"{c.mde:.3f} or more (80% power)")
    return _outcome(check, status, reason, {**_numbers(c), "alpha": check.alpha, "min_lift": check.min_lift})


def _judge_non_inferiority(check: Check, c, policy: Policy) -> dict[str, Any]:
    level = f"{c.confidence:.0%} CI"
    bound = -check.margin
    if c.ci_low >= bound:
        status = "pass"
        reason = f"{c.metric} {_ci(c)} ({level}, n={c.n}): the lower bound is within the margin {bound:+g}"
    elif c.ci_high < bound:
        status = "fail"
        reason = f"{c.metric} {_ci(c)} ({level}, n={c.n}): worse than the margin {bound:+g} (the whole interval is below it)"
    else:
        status = "inconclusive"
        reason = (f"{c.metric} {_ci(c)} ({level}, n={c.n}): the interval straddles the margin {bound:+g}; "
                  f"more queries are needed to tell")
    return _outcome(check, status, reason, {**_numbers(c), "margin": check.margin})


def _judge_budget(check: Check, result, candidate: str) -> dict[str, Any]:
    from harness.comparison import arm_costs

    costs = arm_costs(result, candidate)
    key = {"p95_latency_ms": "p95_ms", "build_seconds": "build_seconds", "dimension": "dimension"}[check.budget]
    value = costs[key]
    unit = {"p95_latency_ms": " ms", "build_seconds": " s", "dimension": ""}[check.budget]
    if value is None:
        if check.budget == "dimension":
            status, reason = "pass", f"{candidate} keeps no embeddings (no dense index), so no dimension to bound"
        else:
            status, reason = "inconclusive", f"the result records no {BUDGET_KEYS[check.budget]} for {candidate}"
    elif value <= check.limit:
        status, reason = "pass", f"{BUDGET_KEYS[check.budget]} {value:.4g}{unit} <= {check.limit:g}{unit}"
    else:
        status, reason = "fail", f"{BUDGET_KEYS[check.budget]} {value:.4g}{unit} exceeds the budget {check.limit:g}{unit}"
    return _outcome(check, status, reason, {"value": value, "limit": check.limit, **costs})


def _outcome(check: Check, status: str, reason: str, numbers: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": check.name,
        "type": check.type,
        "suite": check.suite,
        "metric": check.metric,
        "policy_line": check.line,
        "status": status,
        "reason": reason,
        "numbers": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in numbers.items()},
    }
