"""What a suite is: a named selection of queries (or a benchmark) scored per query.

A suite receives an ``EvalContext`` that owns the dataset, the retrievers and the runs
already made, so two suites on the same split share one search per retriever.
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from harness.adapters.base import Retriever, Run
from harness import metrics as metric_lib
from harness.data import Dataset
from harness.results import SuiteResult


@dataclass
class EvalContext:
    dataset: Dataset
    retrievers: dict[str, Retriever]
    metrics: list[str]
    cache_dir: Path
    default_split: str = "test"
    ignore_identical_ids: bool = False
    background: threading.Thread | None = None  # work overlapping the builds: joined before any query is timed
    _runs: dict[tuple[str, str], Run] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return metric_lib.max_depth(self.metrics)

    def run(self, spec: str, split: str) -> Run:
        """The retriever's run over every judged query of the split, made once."""
        key = (spec, split)
        if key not in self._runs:
            retriever = self.retrievers[spec]
            retriever.build(self.dataset.corpus)
            if self.background is not None:
                self.background.join()
                self.background = None
            queries = {qid: self.dataset.queries[qid].text for qid in self.dataset.split(split).qrels}
            run = retriever.search(queries, self.depth + (1 if self.ignore_identical_ids else 0))
            if self.ignore_identical_ids:
                run.scores = {qid: {d: s for d, s in hits.items() if d != qid} for qid, hits in run.scores.items()}
            self._runs[key] = run
        return self._runs[key]

    def runs(self) -> dict[tuple[str, str], Run]:
        return dict(self._runs)

    def warn_identical_ids(self, split: str) -> None:
        if self.ignore_identical_ids:
            return
        shared = set(self.dataset.split(split).qrels) & set(self.dataset.corpus)
        if shared:
            warnings.warn(
                f"{len(shared)} query ids of split {split!r} are also document ids: if queries are documents "
                "(as in Quora), pass --ignore-identical-ids so a query does not retrieve itself",
                stacklevel=2,
            )


class Suite(ABC):
    """A named measurement over an ``EvalContext``."""

    name: str
    kind: str

    @abstractmethod
    def evaluate(self, context: EvalContext) -> SuiteResult: ...

    def splits(self) -> list[str]:
        """The qrels splits this suite reads (for provenance)."""
        return []

    def check(self, dataset: Dataset) -> None:
        """Fail on anything in the dataset this suite cannot measure, before any model
        loads (a slice whose field no record carries); most suites have nothing to check."""


class QuerySelectionSuite(Suite):
    """A suite that scores a subset of one split's judged queries with the harness's metrics."""

    split: str

    @abstractmethod
    def select(self, context: EvalContext) -> tuple[list[str], dict[str, int]]:
        """(selected query ids, excluded counts by reason)."""

    def splits(self) -> list[str]:
        return [self.split]

    def evaluate(self, context: EvalContext) -> SuiteResult:
        split = context.dataset.split(self.split)
        context.warn_identical_ids(self.split)
        query_ids, excluded = self.select(context)
        excluded = {"unjudged": len(split.unjudged_query_ids), **excluded}
        qrels = split.restricted_to(query_ids)
        runs = {spec: context.run(spec, self.split).scores for spec in context.retrievers}
        per_query = {spec: metric_lib.per_query(qrels, run, context.metrics) for spec, run in runs.items()}
        return SuiteResult(
            name=self.name,
            kind=self.kind,
            split=self.split,
            query_ids=list(qrels),
            excluded=excluded,
            per_query=per_query,
            intervals={spec: metric_lib.mean_intervals(scores) for spec, scores in per_query.items()},
            recall_curve={spec: metric_lib.recall_curve(qrels, run) for spec, run in runs.items()},
        )
