"""Result-level comparison: every candidate against the baseline on every suite (``harness compare``).

Built on the paired statistics of :mod:`harness.stats` (one :class:`~harness.stats.Comparison`
per suite, metric and candidate, one multiplicity family per call), this module finds the
arms a result holds, merges results evaluated separately on the same dataset, and adds
the decision table: each arm's quality, its difference from the baseline with interval and
adjusted p-value, its costs (latency, build and encoding time, embedding dimension) and
whether it is on the quality/latency Pareto front.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harness.errors import HarnessError
from harness.stats import (
    DEFAULT_RESAMPLES,
    Comparison,
    apply_correction,
    compare_scores,
    pareto_front,
    sample_query_ids,
)

if TYPE_CHECKING:
    from harness.results import EvalResult


def canonical_spec(text: str) -> str:
    from harness.adapters.spec import Spec

    return str(Spec.parse(text))


def find_spec(result: "EvalResult", text: str) -> str:
    """The spec as the result spells it, matched on the canonical form."""
    wanted = canonical_spec(text)
    for retriever in result.retrievers:
        if retriever.spec == text or canonical_spec(retriever.spec) == wanted:
            return retriever.spec
    raise HarnessError(
        f"retriever {text!r} is not in the results (they hold: {', '.join(r.spec for r in result.retrievers) or 'none'})"
    )


def merge_results(results: Sequence["EvalResult"], sources: Sequence[str] | None = None) -> "EvalResult":
    """One result holding the retrievers and suites of several, which must share a dataset.

    Suites of the same name are merged retriever by retriever, so a baseline evaluated in
    one file and a candidate in another are still paired on the same queries.
    """
    from harness.results import EvalResult, SuiteResult

    if not results:
        raise HarnessError("no result to compare")
    if len(results) == 1:
        return results[0]
    sources = list(sources or [f"result {i + 1}" for i in range(len(results))])
    first = results[0]
    for result, source in zip(results[1:], sources[1:]):
        if result.dataset.get("hash") != first.dataset.get("hash"):
            raise HarnessError(
                f"{source}: evaluated on another dataset (hash {str(result.dataset.get('hash'))[:12]}, "
                f"{sources[0]} has {str(first.dataset.get('hash'))[:12]}); paired comparisons need the same queries"
            )
    retrievers = []
    seen: set[str] = set()
    for result in results:
        for retriever in result.retrievers:
            if retriever.spec not in seen:
                seen.add(retriever.spec)
                retrievers.append(retriever)
    suites: dict[str, SuiteResult] = {}
    for result in results:
        for suite in result.suites:
            if suite.name not in suites:
                suites[suite.name] = SuiteResult(
                    name=suite.name, kind=suite.kind, split=suite.split, query_ids=list(suite.query_ids),
                    excluded=dict(suite.excluded), per_query={}, aggregates={}, details=dict(suite.details),
                )
            merged = suites[suite.name]
            known = set(merged.query_ids)
            merged.query_ids += [qid for qid in suite.query_ids if qid not in known]
            for spec, scores in suite.per_query.items():
                merged.per_query.setdefault(spec, scores)
                merged.aggregates.setdefault(spec, suite.aggregates.get(spec, {}))
    queries: dict[str, str] = {}
    for result in results:
        queries.update(result.queries)
    metrics = list(dict.fromkeys(m for result in results for m in result.options.get("metrics", [])))
    return EvalResult(
        provenance=first.provenance,
        dataset=first.dataset,
        options={**first.options, "metrics": metrics, "merged_from": sources},
        retrievers=retrievers,
        suites=list(suites.values()),
        queries=queries,
    )


def embedding_dimension(description: dict[str, Any]) -> int | None:
    """The largest embedding dimension a retriever (or any of its parts) keeps, or None."""
    found = [description["dimension"]] if isinstance(description.get("dimension"), int) else []
    for part in [*description.get("components", []), *([description["first"]] if isinstance(description.get("first"), dict) else [])]:
        dim = embedding_dimension(part)
        if dim is not None:
            found.append(dim)
    return max(found) if found else None


def encode_seconds(description: dict[str, Any]) -> float | None:
    """Seconds spent encoding documents, summed over a retriever's dense parts."""
    total = description.get("encode_seconds")
    values = [float(total)] if isinstance(total, (int, float)) else []
    for part in [*description.get("components", []), *([description["first"]] if isinstance(description.get("first"), dict) else [])]:
        value = encode_seconds(part)
        if value is not None:
            values.append(value)
    return sum(values) if values else None


def arm_costs(result: "EvalResult", spec: str) -> dict[str, Any]:
    retriever = result.retriever(spec)
    latency = retriever.latency or {}
    return {
        "p50_ms": latency.get("p50_ms"),
        "p95_ms": latency.get("p95_ms"),
        "build_seconds": retriever.build_seconds,
        "encode_seconds": encode_seconds(retriever.description),
        "dimension": embedding_dimension(retriever.description),
    }


def compare_results(
    result: "EvalResult",
    baseline: str,
    candidates: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    suites: Sequence[str] | None = None,
    correction: str = "holm",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    margin: float | None = None,
    max_queries: int | None = None,
    moved: int = 5,
) -> dict[str, Any]:
    """Every candidate against the baseline, on every suite and metric, plus the decision table.

    Returns the body of a ``kind: "compare"`` result (without provenance). The family for
    the multiplicity correction is every comparison of this call.
    """
    from harness import metrics as metric_lib

    base = find_spec(result, baseline)
    arms = [find_spec(result, c) for c in candidates] if candidates else [r.spec for r in result.retrievers if r.spec != base]
    arms = [a for a in dict.fromkeys(arms) if a != base]
    if not arms:
        raise HarnessError("nothing to compare: give at least one candidate besides the baseline")
    metric_names = [metric_lib.validate_metric(m) for m in (metrics or result.options.get("metrics", [])[:1] or ["ndcg@10"])]
    if suites:
        from harness.suites import parse_suite

        wanted = []
        for name in suites:
            try:
                wanted.append(result.suite(name).name)
            except HarnessError:
                wanted.append(result.suite(parse_suite(name, default_split=result.options.get("split", "test")).name).name)
        suite_list = [result.suite(name) for name in wanted]
    else:
        suite_list = list(result.suites)

    comparisons: list[Comparison] = []
    sampled: dict[str, list[str]] = {}
    warnings_out: list[str] = []
    for suite in suite_list:
        ids = sample_query_ids(suite.query_ids, max_queries, seed)
        if max_queries is not None:
            sampled[suite.name] = ids
        for metric in metric_names:
            # a suite may score only some arms (an MTEB suite scores dense retrievers only):
            # those it lacks are left out of that suite, and the result says so
            if metric not in suite.per_query.get(base, {}):
                warnings_out.append(f"{suite.name}: not compared on {metric}: it has no per-query scores for the baseline {base}")
                continue
            for arm in arms:
                if metric not in suite.per_query.get(arm, {}):
                    warnings_out.append(f"{suite.name}: {arm} not compared on {metric}: the suite has no per-query scores for it")
                    continue
                comparison = compare_scores(
                    suite.name, metric, base, arm,
                    suite.per_query[base][metric], suite.per_query[arm][metric],
                    query_ids=ids, queries=result.queries, alternative="two-sided",
                    confidence=confidence, alpha=alpha, n_resamples=n_resamples, seed=seed, moved=moved,
                )
                comparisons.append(comparison)
                if margin is not None and math.isfinite(comparison.mde) and margin < comparison.mde:
                    warnings_out.append(
                        f"{suite.name}, {arm} ({comparison.n} queries): this test set cannot detect a {metric} difference "
                        f"under {comparison.mde:.3f} with 80% power (alpha {alpha}); the requested margin {margin:g} is below it"
                    )
    if not comparisons:
        raise HarnessError("nothing to compare: no suite has per-query scores for both the baseline and a candidate"
                           + (f" ({'; '.join(warnings_out)})" if warnings_out else ""))
    apply_correction(comparisons, correction, alpha)

    primary = metric_names[0]
    costs = {spec: arm_costs(result, spec) for spec in [base, *arms]}
    table = []
    for suite in suite_list:
        rows = []
        for spec in [base, *arms]:
            if primary not in suite.per_query.get(spec, {}):
                continue  # an arm the suite does not score (see warnings)
            found = next((c for c in comparisons if c.suite == suite.name and c.metric == primary and c.candidate == spec), None)
            ids = sampled.get(suite.name, suite.query_ids)
            scores = suite.per_query[spec][primary]
            quality = float(np.mean([scores[q] for q in ids])) if found is None else found.candidate_mean
            rows.append({
                "arm": spec,
                "quality": quality,
                "difference": None if found is None else found.difference,
                "ci_low": None if found is None else found.ci_low,
                "ci_high": None if found is None else found.ci_high,
                "p_adjusted": None if found is None else found.p_adjusted,
                **costs[spec],
            })
        front = pareto_front({
            row["arm"]: (row["quality"], float(row["p95_ms"]) if row["p95_ms"] is not None else float("nan")) for row in rows
        })
        for row in rows:
            row["pareto"] = row["arm"] in front
        table.append({"suite": suite.name, "metric": primary, "n": len(sampled.get(suite.name, suite.query_ids)), "rows": rows})

    return {
        "baseline": base,
        "candidates": arms,
        "dataset": result.dataset,
        "options": {
            "metrics": metric_names,
            "alpha": alpha,
            "confidence": confidence,
            "correction": correction,
            "test": "paired randomization (sign-flip) test, two-sided, scipy.stats.permutation_test",
            "interval": "paired bootstrap, BCa, scipy.stats.bootstrap",
            "n_resamples": n_resamples,
            "seed": seed,
            "margin": margin,
            "max_queries": max_queries,
        },
        "sampled_query_ids": sampled,
        "comparisons": [c.to_dict() for c in comparisons],
        "decision_table": table,
        "warnings": warnings_out,
    }
