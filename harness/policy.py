"""The gate policy: a TOML file read into a :class:`Policy`, every problem an error naming its line.

A policy (see ``examples/gate.toml`` and ``docs/statistics.md``) looks like::

    baseline = "bm25"
    candidate = "hybrid(bm25,dense)"
    data = "../data/demo"            # paths are relative to the policy file
    # unknown_docs = "keep"          # judgements for documents missing from the corpus: error | keep
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

:func:`load_policy` reads it one section at a time (the retrievers, the data sources, the
statistical settings, suites and metrics, the ``[[check]]`` tables, the ``[budgets]``
table), each by a function of its own; command-line overrides replace top-level keys and
are recorded. ``harness.gate`` runs what it describes.
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
    "unknown_docs": "judgements for documents missing from the corpus of 'data': error | keep (harness eval --unknown-docs)",
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
    unknown_docs: str  # as harness.data.load_dataset's unknown_docs
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


class _Source:
    """The parsed policy with what every section reader needs: the top-level values (after
    overrides), where each key stands, and the folder relative paths start from."""

    def __init__(self, path: Path, text: str, raw: dict[str, Any], overrides: dict[str, Any]) -> None:
        self.path = path
        self.raw = raw
        self.where = _Locator(text)
        self.base_dir = path.resolve().parent
        self.overrides = overrides

    def fail(self, key: str | None, message: str, table: str | None = None, index: int = 0) -> HarnessError:
        return located(self.path, self.where.line(key, table, index), message)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        """A top-level value: the command line's override, else the policy's, checked for its type."""
        if key in self.overrides:
            return self.overrides[key]
        if key not in self.raw:
            if required:
                raise located(self.path, None, f"missing required key {key!r} ({TOP_KEYS[key]})")
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kind):
            raise self.fail(key, f"{key!r} must be {_kind_name(kind)}, got {value!r}")
        return value

    def suite_name(self, value: Any, key: str, split: str, table: str | None = None, index: int = 0) -> str:
        from harness.suites import parse_suite

        if not isinstance(value, str):
            raise self.fail(key, f"{key!r} must be a suite name such as \"heldout\" or \"slice:subdomain=x\", got {value!r}", table, index)
        try:
            return parse_suite(value, default_split=split).name
        except HarnessError as exc:
            raise self.fail(key, f"{key!r}: {exc}", table, index) from None

    def metric_name(self, value: Any, key: str, table: str | None = None, index: int = 0) -> str:
        from harness import metrics as metric_lib

        if not isinstance(value, str):
            raise self.fail(key, f"{key!r} must be a metric name such as \"ndcg@10\", got {value!r}", table, index)
        try:
            return metric_lib.validate_metric(value)
        except HarnessError as exc:
            raise self.fail(key, f"{key!r}: {exc}", table, index) from None


def load_policy(path: str | Path, overrides: dict[str, Any] | None = None) -> Policy:
    """Read and validate a gate policy; every problem is a HarnessError naming the key and line."""
    source_path = Path(path)
    if not source_path.is_file():
        raise HarnessError(f"{source_path}: policy file does not exist")
    raw_bytes = source_path.read_bytes()
    text = raw_bytes.decode("utf-8", errors="replace")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise located(source_path, int(match.group(1)) if match else None, f"not valid TOML: {exc}") from None
    source = _Source(source_path, text, raw, {k: v for k, v in (overrides or {}).items() if v is not None})
    for key in raw:
        if key not in TOP_KEYS:
            raise source.fail(key, f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})")

    baseline, candidate = _retrievers(source)
    data, unknown_docs, results = _data_sources(source)
    split = source.get("split", str, default="test")
    settings = _statistics(source)
    cache_raw = source.get("cache", (str, Path))
    cache = None if cache_raw is None else (Path(cache_raw) if "cache" in source.overrides else source.base_dir / cache_raw)
    suites = [source.suite_name(s, "suites", split) for s in source.get("suites", list, default=[])]
    metrics = [source.metric_name(m, "metrics") for m in source.get("metrics", list, default=[])]
    checks = [*_checks(source, split, settings["alpha"]), *_budgets(source)]
    if not checks:
        raise located(source_path, None, "the policy has no checks: add [[check]] tables or a [budgets] table")
    return Policy(
        path=source_path, baseline=baseline, candidate=candidate, data=data, unknown_docs=unknown_docs, results=results, suites=suites, split=split,
        metrics=metrics, cache=cache, checks=checks, sha256=hashlib.sha256(raw_bytes).hexdigest(),
        overrides=source.overrides, **settings,
    )


def _retrievers(source: _Source) -> tuple[str, str]:
    """``baseline`` and ``candidate``, in canonical spec form; they must differ."""
    from harness.adapters.spec import Spec

    def spec(key: str) -> str:
        value = source.get(key, str, required=True)
        try:
            return str(Spec.parse(value))
        except HarnessError as exc:
            raise source.fail(key, f"{key!r}: {exc}") from None

    baseline, candidate = spec("baseline"), spec("candidate")
    if baseline == candidate:
        raise source.fail("candidate", f"'candidate' is the same retriever as 'baseline' ({baseline})")
    return baseline, candidate


def _data_sources(source: _Source) -> tuple[Path | None, str, list[Path]]:
    """``data`` (a dataset folder to evaluate), ``unknown_docs`` (how it is loaded) and
    ``results`` (files to read instead); one of ``data`` and ``results`` is needed."""
    from harness.data.beir import UNKNOWN_DOCS

    results = []
    for item in source.get("results", list, default=[]):
        if "results" in source.overrides:
            file = Path(item)
            if not file.is_file():
                raise HarnessError(f"--results: result file {item} does not exist")
        else:
            if not isinstance(item, str):
                raise source.fail("results", f"'results' must be a list of file paths, got {item!r}")
            file = (source.base_dir / item) if not Path(item).is_absolute() else Path(item)
            if not file.is_file():
                raise source.fail("results", f"'results': result file {item!r} does not exist (looked for {file})")
        results.append(file)
    data_raw = source.get("data", (str, Path))
    data = None
    if data_raw is not None:
        data = Path(data_raw) if "data" in source.overrides else (source.base_dir / data_raw)
        if not results and not data.is_dir():
            if "data" in source.overrides:
                raise HarnessError(f"--data: dataset folder {data} does not exist")
            raise source.fail("data", f"'data': dataset folder {data_raw!r} does not exist (looked for {data})")
    if data is None and not results:
        raise located(source.path, None, "give 'data' (a dataset folder to evaluate) or 'results' (result files to read)")
    unknown_docs = source.get("unknown_docs", str, default="error")
    if unknown_docs not in UNKNOWN_DOCS:
        raise source.fail("unknown_docs", f"'unknown_docs' must be one of {', '.join(UNKNOWN_DOCS)}, got {unknown_docs!r}")
    return data, unknown_docs, results


def _statistics(source: _Source) -> dict[str, Any]:
    """The settings of the tests, intervals and sampling, each within its valid range."""
    from harness.stats import CORRECTIONS

    seed = source.get("seed", int, default=0)
    alpha = float(source.get("alpha", (int, float), default=0.05))
    if not 0 < alpha < 1:
        raise source.fail("alpha", f"'alpha' must be between 0 and 1, got {alpha}")
    confidence = float(source.get("confidence", (int, float), default=0.95))
    if not 0.5 <= confidence < 1:
        raise source.fail("confidence", f"'confidence' must be in [0.5, 1), got {confidence}")
    correction = source.get("correction", str, default="holm")
    if correction not in CORRECTIONS:
        raise source.fail("correction", f"'correction' must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    n_resamples = source.get("n_resamples", int, default=9999)
    if n_resamples < 99:
        raise source.fail("n_resamples", f"'n_resamples' must be at least 99, got {n_resamples}")
    max_queries = source.get("max_queries", int)
    if max_queries is not None and max_queries < 2:
        if "max_queries" in source.overrides:
            raise HarnessError(f"--max-queries must be at least 2, got {max_queries}")
        raise source.fail("max_queries", f"'max_queries' must be at least 2, got {max_queries}")
    inconclusive_blocks = source.get("inconclusive_blocks", bool, default=True)
    return {"seed": seed, "alpha": alpha, "confidence": confidence, "correction": correction,
            "n_resamples": n_resamples, "max_queries": max_queries, "inconclusive_blocks": inconclusive_blocks}


def _checks(source: _Source, split: str, alpha: float) -> list[Check]:
    """The ``[[check]]`` tables, in the order written."""
    raw_checks = source.raw.get("check", [])
    if not isinstance(raw_checks, list):
        raise source.fail("check", "'check' must be an array of tables: write each one as [[check]]")
    return [_check(source, item, index, split, alpha) for index, item in enumerate(raw_checks)]


def _check(source: _Source, item: Any, index: int, split: str, alpha: float) -> Check:
    """One ``[[check]]`` table: its type, keys, suite and metric, then the numbers of its type."""
    header = source.where.line(None, "check", index)
    label = f"[[check]] {index + 1}"
    if not isinstance(item, dict):
        raise located(source.path, header, "each [[check]] must be a table")
    kind = item.get("type")
    if kind not in CHECK_TYPES:
        raise source.fail("type", f"{label}: 'type' must be one of {', '.join(CHECK_TYPES)}, got {kind!r}", "check", index)
    for key in item:
        if key not in CHECK_KEYS[kind]:
            raise source.fail(key, f"{label}: unknown key {key!r} for a {kind} check "
                                   f"(known: {', '.join(sorted(CHECK_KEYS[kind]))})", "check", index)
    for key in ("suite", "metric"):
        if key not in item:
            raise located(source.path, header, f"{label}: missing required key {key!r}")
    check = Check(
        type=kind,
        name=str(item.get("name") or ""),
        line=source.where.line("type", "check", index) or header,
        suite=source.suite_name(item["suite"], "suite", split, "check", index),
        metric=source.metric_name(item["metric"], "metric", "check", index),
    )

    def number(key: str, default: float | None = None) -> float | None:
        if key not in item:
            return default
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise source.fail(key, f"{label}: {key!r} must be a number, got {value!r}", "check", index)
        return float(value)

    if kind == "superiority":
        check.alpha = number("alpha", alpha)
        if not 0 < check.alpha < 1:
            raise source.fail("alpha", f"{label}: 'alpha' must be between 0 and 1, got {check.alpha}", "check", index)
        check.min_lift = number("min_lift", 0.0)
        if check.min_lift < 0:
            raise source.fail("min_lift", f"{label}: 'min_lift' must be >= 0 (the lift the candidate must beat), "
                                          f"got {check.min_lift:g}", "check", index)
        check.name = check.name or f"superiority: {check.metric} on {check.suite}" + (
            f" by at least {check.min_lift:g}" if check.min_lift else "")
    else:
        if "margin" not in item:
            raise located(source.path, header, f"{label}: a non-inferiority check needs 'margin' (the largest loss accepted, > 0)")
        check.margin = number("margin")
        if check.margin < 0:
            raise source.fail("margin", f"{label}: 'margin' must be positive (the largest loss accepted, "
                                        f"e.g. 0.02), got {check.margin:g}", "check", index)
        check.name = check.name or f"non-inferiority: {check.metric} on {check.suite} within {check.margin:g}"
    return check


def _budgets(source: _Source) -> list[Check]:
    """The ``[budgets]`` table: one check on the candidate per key."""
    budgets = source.raw.get("budgets", {})
    if not isinstance(budgets, dict):
        raise source.fail("budgets", "'budgets' must be a table: write it as [budgets]")
    checks = []
    for key, value in budgets.items():
        if key not in BUDGET_KEYS:
            raise source.fail(key, f"[budgets]: unknown key {key!r} (known: {', '.join(BUDGET_KEYS)})", "budgets")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise source.fail(key, f"[budgets]: {key!r} must be a positive number, got {value!r}", "budgets")
        checks.append(Check(
            type="budget", name=f"budget: {BUDGET_KEYS[key]} <= {value:g}", line=source.where.line(key, "budgets"),
            budget=key, limit=float(value),
        ))
    return checks


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", Path: "a path"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))
