"""The promotion gate: a TOML policy, the evaluation it names, and a pass/fail/inconclusive verdict.

A policy (see ``examples/gate.toml`` and ``docs/statistics.md``) looks like::

    baseline = "bm25"
    candidate = "hybrid(bm25,dense)"
    data = "../data/demo"            # paths are relative to the policy file
    suites = ["heldout"]             # optional: suites to evaluate besides those the checks name
    split = "test"
    alpha = 0.05                     # default alpha of superiority checks
    correction = "holm"              # across the superiority checks: holm | bh | none
    confidence = 0.95                # level of the bootstrap intervals
    inconclusive_blocks = true       # exit 2 (hold) on inconclusive; false: exit 0
    # max_queries = 20               # evaluate a seeded sample of each suite (recorded)
    # results = ["out/eval/result.json"]   # read these instead of evaluating

    [[check]]
    type = "superiority"             # candidate better on metric of suite, p < alpha after correction
    suite = "heldout"
    metric = "ndcg@10"
    min_lift = 0.0                   # optional, >= 0

    [[check]]
    type = "non-inferiority"         # the CI lower bound may not fall below -margin
    suite = "slice:subdomain=storage"
    metric = "ndcg@10"
    margin = 0.02                    # > 0, in metric units

    [budgets]                        # each key is one check on the candidate
    p95_latency_ms = 250
    build_seconds = 900
    dimension = 384

Every check ends ``pass``, ``fail`` or ``inconclusive`` with its numbers and a one-line
reason. :func:`verdict` turns them into the exit code: 0 all pass, 1 any fail, 2 none
fails but one is inconclusive (0 when ``inconclusive_blocks = false``); any error is
raised as :class:`HarnessError` (exit 3), so an error never passes.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, located

CHECK_TYPES = ("superiority", "non-inferiority")
TOP_KEYS = {
    "baseline": "retriever spec of the deployed model",
    "candidate": "retriever spec of the model to promote",
    "data": "dataset folder (BEIR), relative to the policy file",
    "results": "result files to read instead of evaluating",
    "suites": "suites to evaluate besides those the checks name",
    "split": "held-out split the suites read",
    "metrics": "metrics to evaluate besides those the checks name",
    "seed": "seed of the evaluation, bootstrap, randomization test and sampling",
    "max_queries": "evaluate a seeded sample of at most this many queries per suite",
    "alpha": "default significance level of superiority checks",
    "correction": "multiplicity correction across superiority checks",
    "confidence": "confidence level of the bootstrap intervals",
    "n_resamples": "bootstrap and randomization resamples",
    "inconclusive_blocks": "whether an inconclusive check holds the candidate (exit 2)",
    "cache": "cache folder for embeddings and indexes, relative to the policy file",
    "check": "the statistical checks ([[check]] tables)",
    "budgets": "cost budgets of the candidate ([budgets] table)",
}
CHECK_KEYS = {
    "superiority": {"type", "name", "suite", "metric", "alpha", "min_lift"},
    "non-inferiority": {"type", "name", "suite", "metric", "margin"},
}
BUDGET_KEYS = {
    "p95_latency_ms": "p95 query latency (ms)",
    "build_seconds": "index build time (s)",
    "dimension": "embedding dimension",
}
EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE = 0, 1, 2


@dataclass
class Check:
    type: str  # superiority | non-inferiority | budget
    name: str
    line: int | None
    suite: str | None = None  # canonical suite name, as results spell it
    metric: str | None = None
    alpha: float | None = None
    min_lift: float = 0.0
    margin: float | None = None
    budget: str | None = None
    limit: float | None = None


@dataclass
class Policy:
    path: Path
    baseline: str
    candidate: str
    data: Path | None
    results: list[Path]
    suites: list[str]
    split: str
    metrics: list[str]
    seed: int
    max_queries: int | None
    alpha: float
    correction: str
    confidence: float
    n_resamples: int
    inconclusive_blocks: bool
    cache: Path | None
    checks: list[Check]
    sha256: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("path", "data", "cache"):
            data[key] = None if data[key] is None else str(data[key])
        data["results"] = [str(p) for p in self.results]
        return data


# --------------------------------------------------------------------------------------
# Loading and validating a policy
# --------------------------------------------------------------------------------------


class _Locator:
    """Finds the line of a key in the policy text (tomllib keeps no positions)."""

    _header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _sections(self):
        counts: dict[str, int] = {}
        section: tuple[str, int] | None = None
        for number, line in enumerate(self.lines, start=1):
            match = self._header.match(line)
            if match:
                name = match.group(2).strip().strip("\"'")
                if match.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    section = (name, counts[name])
                else:
                    section = (name, 0)
                yield number, section, True, line
            else:
                yield number, section, False, line

    def line(self, key: str | None, table: str | None = None, index: int = 0) -> int | None:
        """Line of ``key`` in ``[table]`` (the ``index``-th ``[[table]]``), else of the table header."""
        wanted = None if table is None else (table, index)
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
        header_line = None
        for number, section, is_header, text in self._sections():
            if is_header and section == wanted:
                header_line = number
            if section == wanted and not is_header and pattern and pattern.match(text):
                return number
        return header_line


def load_policy(path: str | Path, overrides: dict[str, Any] | None = None) -> Policy:
    """Read and validate a gate policy; every problem is a HarnessError naming the key and line."""
    from harness import metrics as metric_lib
    from harness.suites import parse_suite

    source = Path(path)
    if not source.is_file():
        raise HarnessError(f"{source}: policy file does not exist")
    raw_bytes = source.read_bytes()
    text = raw_bytes.decode("utf-8", errors="replace")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise located(source, int(match.group(1)) if match else None, f"not valid TOML: {exc}") from None
    where = _Locator(text)
    base_dir = source.resolve().parent
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}

    def fail(key: str | None, message: str, table: str | None = None, index: int = 0) -> HarnessError:
        return located(source, where.line(key, table, index), message)

    for key in raw:
        if key not in TOP_KEYS:
            raise fail(key, f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})")

    def get(key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key in overrides:
            return overrides[key]
        if key not in raw:
            if required:
                raise located(source, None, f"missing required key {key!r} ({TOP_KEYS[key]})")
            return default
        value = raw[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise fail(key, f"{key!r} must be {_kind_name(kind)}, got {value!r}")
        if not isinstance(value, kind):
            raise fail(key, f"{key!r} must be {_kind_name(kind)}, got {value!r}")
        return value

    def spec(key: str) -> str:
        from harness.adapters.spec import Spec

        value = get(key, str, required=True)
        try:
            return str(Spec.parse(value))
        except HarnessError as exc:
            raise fail(key, f"{key!r}: {exc}") from None

    baseline = spec("baseline")
    candidate = spec("candidate")
    if baseline == candidate:
        raise fail("candidate", f"'candidate' is the same retriever as 'baseline' ({baseline})")

    results_raw = get("results", list, default=[])
    results = []
    for item in results_raw:
        if "results" in overrides:
            file = Path(item)
            if not file.is_file():
                raise HarnessError(f"--results: result file {item} does not exist")
        else:
            if not isinstance(item, str):
                raise fail("results", f"'results' must be a list of file paths, got {item!r}")
            file = (base_dir / item) if not Path(item).is_absolute() else Path(item)
            if not file.is_file():
                raise fail("results", f"'results': result file {item!r} does not exist (looked for {file})")
        results.append(file)
    data_raw = get("data", (str, Path))
    data = None
    if data_raw is not None:
        data = Path(data_raw) if "data" in overrides else (base_dir / data_raw)
        if not results and not data.is_dir():
            if "data" in overrides:
                raise HarnessError(f"--data: dataset folder {data} does not exist")
            raise fail("data", f"'data': dataset folder {data_raw!r} does not exist (looked for {data})")
    if data is None and not results:
        raise located(source, None, "give 'data' (a dataset folder to evaluate) or 'results' (result files to read)")

    split = get("split", str, default="test")
    seed = get("seed", int, default=0)
    alpha = float(get("alpha", (int, float), default=0.05))
    if not 0 < alpha < 1:
        raise fail("alpha", f"'alpha' must be between 0 and 1, got {alpha}")
    confidence = float(get("confidence", (int, float), default=0.95))
    if not 0.5 <= confidence < 1:
        raise fail("confidence", f"'confidence' must be in [0.5, 1), got {confidence}")
    correction = get("correction", str, default="holm")
    from harness.stats import CORRECTIONS

    if correction not in CORRECTIONS:
        raise fail("correction", f"'correction' must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    n_resamples = get("n_resamples", int, default=9999)
    if n_resamples < 99:
        raise fail("n_resamples", f"'n_resamples' must be at least 99, got {n_resamples}")
    max_queries = get("max_queries", int)
    if max_queries is not None and max_queries < 2:
        if "max_queries" in overrides:
            raise HarnessError(f"--max-queries must be at least 2, got {max_queries}")
        raise fail("max_queries", f"'max_queries' must be at least 2, got {max_queries}")
    inconclusive_blocks = get("inconclusive_blocks", bool, default=True)
    cache_raw = get("cache", (str, Path))
    cache = None if cache_raw is None else (Path(cache_raw) if "cache" in overrides else base_dir / cache_raw)

    def suite_name(value: Any, key: str, table: str | None = None, index: int = 0) -> str:
        if not isinstance(value, str):
            raise fail(key, f"{key!r} must be a suite name such as \"heldout\" or \"slice:subdomain=x\", got {value!r}", table, index)
        try:
            return parse_suite(value, default_split=split).name
        except HarnessError as exc:
            raise fail(key, f"{key!r}: {exc}", table, index) from None

    def metric_name(value: Any, key: str, table: str | None = None, index: int = 0) -> str:
        if not isinstance(value, str):
            raise fail(key, f"{key!r} must be a metric name such as \"ndcg@10\", got {value!r}", table, index)
        try:
            return metric_lib.validate_metric(value)
        except HarnessError as exc:
            raise fail(key, f"{key!r}: {exc}", table, index) from None

    suites = [suite_name(s, "suites") for s in get("suites", list, default=[])]
    metrics = [metric_name(m, "metrics") for m in get("metrics", list, default=[])]

    checks: list[Check] = []
    raw_checks = raw.get("check", [])
    if not isinstance(raw_checks, list):
        raise fail("check", "'check' must be an array of tables: write each one as [[check]]")
    for index, item in enumerate(raw_checks):
        header = where.line(None, "check", index)
        if not isinstance(item, dict):
            raise located(source, header, "each [[check]] must be a table")
        kind = item.get("type")
        if kind not in CHECK_TYPES:
            raise fail("type", f"[[check]] {index + 1}: 'type' must be one of {', '.join(CHECK_TYPES)}, got {kind!r}", "check", index)
        for key in item:
            if key not in CHECK_KEYS[kind]:
                raise fail(key, f"[[check]] {index + 1}: unknown key {key!r} for a {kind} check "
                                f"(known: {', '.join(sorted(CHECK_KEYS[kind]))})", "check", index)
        for key in ("suite", "metric"):
            if key not in item:
                raise located(source, header, f"[[check]] {index + 1}: missing required key {key!r}")
        check = Check(
            type=kind,
            name=str(item.get("name") or ""),
            line=where.line("type", "check", index) or header,
            suite=suite_name(item["suite"], "suite", "check", index),
            metric=metric_name(item["metric"], "metric", "check", index),
        )

        def number(key: str, default: float | None = None) -> float | None:
            if key not in item:
                return default
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise fail(key, f"[[check]] {index + 1}: {key!r} must be a number, got {value!r}", "check", index)
            return float(value)

        if kind == "superiority":
            check.alpha = number("alpha", alpha)
            if not 0 < check.alpha < 1:
                raise fail("alpha", f"[[check]] {index + 1}: 'alpha' must be between 0 and 1, got {check.alpha}", "check", index)
            check.min_lift = number("min_lift", 0.0)
            if check.min_lift < 0:
                raise fail("min_lift", f"[[check]] {index + 1}: 'min_lift' must be >= 0 (the lift the candidate must beat), "
                                       f"got {check.min_lift:g}", "check", index)
            check.name = check.name or f"superiority: {check.metric} on {check.suite}" + (
                f" by at least {check.min_lift:g}" if check.min_lift else "")
        else:
            if "margin" not in item:
                raise located(source, header, f"[[check]] {index + 1}: a non-inferiority check needs 'margin' (the largest loss accepted, > 0)")
            check.margin = number("margin")
            if check.margin < 0:
                raise fail("margin", f"[[check]] {index + 1}: 'margin' must be positive (the largest loss accepted, "
                                     f"e.g. 0.02), got {check.margin:g}", "check", index)
            check.name = check.name or f"non-inferiority: {check.metric} on {check.suite} within {check.margin:g}"
        checks.append(check)

    budgets = raw.get("budgets", {})
    if not isinstance(budgets, dict):
        raise fail("budgets", "'budgets' must be a table: write it as [budgets]")
    for key, value in budgets.items():
        if key not in BUDGET_KEYS:
            raise fail(key, f"[budgets]: unknown key {key!r} (known: {', '.join(BUDGET_KEYS)})", "budgets")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise fail(key, f"[budgets]: {key!r} must be a positive number, got {value!r}", "budgets")
        checks.append(Check(
            type="budget", name=f"budget: {BUDGET_KEYS[key]} <= {value:g}", line=where.line(key, "budgets"),
            budget=key, limit=float(value),
        ))
    if not checks:
        raise located(source, None, "the policy has no checks: add [[check]] tables or a [budgets] table")

    return Policy(
        path=source, baseline=baseline, candidate=candidate, data=data, results=results, suites=suites, split=split,
        metrics=metrics, seed=seed, max_queries=max_queries, alpha=alpha, correction=correction, confidence=confidence,
        n_resamples=n_resamples, inconclusive_blocks=inconclusive_blocks, cache=cache, checks=checks,
        sha256=hashlib.sha256(raw_bytes).hexdigest(), overrides=overrides,
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", Path: "a path"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def policy_suites(policy: Policy) -> list[str]:
    return list(dict.fromkeys([*policy.suites, *(c.suite for c in policy.checks if c.suite)]))


def policy_metrics(policy: Policy) -> list[str]:
    return list(dict.fromkeys([*(c.metric for c in policy.checks if c.metric), *policy.metrics]))


def obtain_result(policy: Policy, out: Path | None = None):
    """Read the result files the policy names, or evaluate baseline and candidate."""
    from harness.results import read_eval_result
    from harness.stats import merge_results

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
        seed=policy.seed,
    )


def run_gate(policy: Policy, result) -> dict[str, Any]:
    """Judge every check of the policy on an evaluation result; returns the gate result body."""
    from harness import stats

    baseline = stats.find_spec(result, policy.baseline)
    candidate = stats.find_spec(result, policy.candidate)
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
    from harness.stats import arm_costs

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
