"""The evaluation Result model: the one object every producer writes and renderers read.

Schema (``schema_version`` 1), as JSON::

    {
      "schema_version": 1,
      "kind": "eval",
      "provenance": {harness and library versions, machine, seed, command, created_at},
      "dataset": {name, path, hash, documents, queries, splits: {split: {hash, ...}}},
      "options": {k, metrics, ignore_identical_ids},
      "retrievers": [{spec, description: {fingerprint, ...}, build_seconds,
                      latency: {p50_ms, p95_ms, mean_ms}, run_files: {split: path}}],
      "suites": [{name, kind, split, query_ids, excluded: {reason: count},
                  aggregates: {spec: {metric: mean}},
                  per_query: {spec: {metric: {query_id: score}}},
                  intervals: {spec: {metric: [low, high]}}   (95% bootstrap CI of the mean),
                  recall_curve: {spec: {k: mean recall@k}}, details: {...}}],
      "queries": {query_id: text}
    }

Per-query scores are kept so that comparisons are paired on the same queries.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.errors import HarnessError, located

SCHEMA_VERSION = 1


@dataclass
class RetrieverResult:
    spec: str
    description: dict[str, Any]
    build_seconds: float | None
    latency: dict[str, float]
    run_files: dict[str, str] = field(default_factory=dict)


@dataclass
class SuiteResult:
    name: str
    kind: str
    split: str | None
    query_ids: list[str]
    excluded: dict[str, int]
    per_query: dict[str, dict[str, dict[str, float]]]
    aggregates: dict[str, dict[str, float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    recall_curve: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.aggregates:
            self.aggregates = {
                spec: {metric: statistics.fmean(scores.values()) for metric, scores in metrics.items() if scores}
                for spec, metrics in self.per_query.items()
            }


@dataclass
class EvalResult:
    provenance: dict[str, Any]
    dataset: dict[str, Any]
    options: dict[str, Any]
    retrievers: list[RetrieverResult]
    suites: list[SuiteResult]
    queries: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    kind: str = "eval"

    def suite(self, name: str) -> SuiteResult:
        for suite in self.suites:
            if suite.name == name:
                return suite
        raise HarnessError(f"no suite {name!r} in this result (has: {', '.join(s.name for s in self.suites)})")

    def retriever(self, spec: str) -> RetrieverResult:
        for retriever in self.retrievers:
            if retriever.spec == spec:
                return retriever
        raise HarnessError(f"no retriever {spec!r} in this result (has: {', '.join(r.spec for r in self.retrievers)})")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema_version": data.pop("schema_version"), "kind": data.pop("kind"), **data}

    def write(self, path: str | Path) -> Path:
        from harness.files import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalResult":
        return cls(
            provenance=data["provenance"],
            dataset=data["dataset"],
            options=data["options"],
            retrievers=[RetrieverResult(**r) for r in data["retrievers"]],
            suites=[SuiteResult(**s) for s in data["suites"]],
            queries=data.get("queries", {}),
            schema_version=data["schema_version"],
            kind=data["kind"],
        )


def read_result(path: str | Path) -> dict[str, Any]:
    """Read any harness result file and check its schema version; returns the raw dict."""
    return _load(path)[1]


def read_eval_result(path: str | Path) -> EvalResult:
    """Read an evaluation result and check every per-query score (:func:`check_scores`)."""
    text, data = _load(path)
    if data["kind"] != "eval":
        raise HarnessError(f"{path}: expected an evaluation result, got kind {data['kind']!r}")
    if not isinstance(data.get("suites"), list):
        raise HarnessError(f"{path}: malformed evaluation result (no list of suites)")
    check_scores(data["suites"], path, text)
    try:
        return EvalResult.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise HarnessError(f"{path}: malformed evaluation result ({exc})") from exc


def _load(path: str | Path) -> tuple[str, dict[str, Any]]:
    source = Path(path)
    if not source.is_file():
        raise HarnessError(f"{source}: result file does not exist")
    text = source.read_text(encoding="utf-8")
    try:
        data = json.loads(text)  # NaN and Infinity literals load as floats: check_scores refuses them
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or "kind" not in data or "schema_version" not in data:
        raise HarnessError(f"{source}: not a harness result (no 'kind' and 'schema_version')")
    if data["schema_version"] > SCHEMA_VERSION:
        raise HarnessError(f"{source}: schema version {data['schema_version']} is newer than this harness reads ({SCHEMA_VERSION})")
    return text, data


def check_scores(suites: Iterable[SuiteResult | dict[str, Any]], source: str | Path, text: str | None = None) -> None:
    """Every retriever a suite scores has, for every metric, a finite number in the metric's
    range for each of the suite's queries, and no score for any other query.

    A statistic over a NaN or a missing score would pass or fail a gate on nothing, so
    each problem is an error naming ``source``, the suite, retriever, metric and query
    (and the line, where ``text``, the file's JSON, shows it).
    """
    from harness.metrics import RANGE_SLACK

    for suite in suites:
        name, query_ids, per_query = (
            (suite.name, suite.query_ids, suite.per_query) if isinstance(suite, SuiteResult)
            else (suite.get("name"), suite.get("query_ids"), suite.get("per_query"))
        )
        if not isinstance(query_ids, list) or not isinstance(per_query, dict):
            raise HarnessError(f"{source}: suite {name!r} has no list of query_ids or no per_query table")
        if len(set(query_ids)) != len(query_ids):
            repeated = next(q for q in query_ids if query_ids.count(q) > 1)
            raise HarnessError(f"{source}: suite {name!r} lists query {repeated!r} twice in its query_ids")
        expected = set(query_ids)
        for spec, metrics in per_query.items():
            if not isinstance(metrics, dict):
                raise HarnessError(f"{source}: suite {name}, retriever {spec}: expected a table of metric -> per-query scores")
            for metric, scores in metrics.items():
                where = f"suite {name}, retriever {spec}, {metric}"

                def fail(message: str, query: str | None = None, line_of_query: bool = True) -> HarnessError:
                    # a missing query has no line of its own: the line of its metric's table then
                    keys = [name, "per_query", spec, metric] + ([query] if query is not None and line_of_query else [])
                    return located(source, _line_of(text, keys), f"{where}{f', query {query}' if query is not None else ''}: {message}")

                low, high = _score_range(metric, fail)
                if not isinstance(scores, dict):
                    raise fail(f"expected a table of query id -> score, got {json.dumps(scores)[:40]}")
                missing = [q for q in query_ids if q not in scores]
                if missing:
                    raise fail(f"no score ({len(missing)} of the suite's {len(query_ids)} queries have none); "
                               "a comparison paired on fewer queries would hide them", missing[0], line_of_query=False)
                unknown = [q for q in scores if q not in expected]
                if unknown:
                    raise fail("a score for a query that is not among the suite's query_ids", unknown[0])
                for query in query_ids:
                    value = scores[query]
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise fail(f"{json.dumps(value)} is not a number", query)
                    if not math.isfinite(value):
                        raise fail(f"{json.dumps(value)} is not a finite number", query)
                    if not low - RANGE_SLACK <= value <= high + RANGE_SLACK:
                        raise fail(f"{value!r} is outside the range of {metric}, [{low:g}, {high:g}]", query)


def _score_range(metric: str, fail) -> tuple[float, float]:
    from harness.metrics import metric_range

    try:
        return metric_range(metric)
    except HarnessError as exc:
        raise fail(str(exc)) from None


def _line_of(text: str | None, keys: list[Any]) -> int | None:
    """The line of a per-query entry in a result file's JSON: the suite's name, then each key in
    turn, searched forward (the harness writes keys in that order); None where one is not found."""
    if text is None:
        return None
    position = 0
    patterns = [rf'"name"\s*:\s*{re.escape(json.dumps(keys[0]))}'] + [rf"{re.escape(json.dumps(key))}\s*:" for key in keys[1:]]
    for pattern in patterns:
        match = re.compile(pattern).search(text, position)
        if match is None:
            return None
        position = match.end()
    return text.count("\n", 0, position) + 1
