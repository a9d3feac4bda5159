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
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

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
    source = Path(path)
    if not source.is_file():
        raise HarnessError(f"{source}: result file does not exist")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or "kind" not in data or "schema_version" not in data:
        raise HarnessError(f"{source}: not a harness result (no 'kind' and 'schema_version')")
    if data["schema_version"] > SCHEMA_VERSION:
        raise HarnessError(f"{source}: schema version {data['schema_version']} is newer than this harness reads ({SCHEMA_VERSION})")
    return data


def read_eval_result(path: str | Path) -> EvalResult:
    data = read_result(path)
    if data["kind"] != "eval":
        raise HarnessError(f"{path}: expected an evaluation result, got kind {data['kind']!r}")
    try:
        return EvalResult.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise HarnessError(f"{path}: malformed evaluation result ({exc})") from exc
