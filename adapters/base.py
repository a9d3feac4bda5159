"""The one interface every retriever implements, and the run it returns."""

from __future__ import annotations

import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


def ranked(hits: Mapping[str, float]) -> list[str]:
    """Doc ids in the harness's one ranking order: score descending, then doc id descending.

    This is trec_eval's order (``form_res_rels.c`` sorts by score, then by docno with
    ``strcmp`` reversed; pytrec_eval and so mteb use the same code), so a run file read by
    trec_eval, the rank column written beside it and the harness's own metrics all see one
    ranking wherever scores tie. Python compares strings by code point, which for UTF-8
    text is ``strcmp``'s byte order.
    """
    return sorted(hits, key=lambda doc_id: (hits[doc_id], doc_id), reverse=True)


def top_k(hits: Mapping[str, float], k: int) -> dict[str, float]:
    """The first ``k`` hits in the one ranking order, as a dict in that order."""
    return {doc_id: hits[doc_id] for doc_id in ranked(hits)[:k]}


def rank_scores(hits: Mapping[str, float]) -> dict[str, float]:
    """Scores that cannot tie and give ``ranked``'s order (n for the first hit, down to 1).

    For libraries that rank by score with a tie rule of their own (ranx sorts with numba,
    not by doc id): what they compute from ranks alone is then computed on this order.
    """
    order = ranked(hits)
    return {doc_id: float(len(order) - position) for position, doc_id in enumerate(order)}


class Text(Protocol):
    """What a retriever indexes: anything with an ``id`` and a ``content`` string."""

    id: str

    @property
    def content(self) -> str: ...


@dataclass
class Run:
    """A ranked result list per query, with what it cost.

    ``scores`` maps query id to doc id to score (higher is better), the shape ranx and
    trec_eval read; tied scores rank by ``ranked`` (doc id descending, as in trec_eval).
    ``latency_ms`` is the wall time of answering a query on its own, as a live service
    would, for every query or (dense retrievers) a seeded sample of them.
    """

    spec: str
    scores: dict[str, dict[str, float]]
    latency_ms: dict[str, float] = field(default_factory=dict)

    def ranking(self, query_id: str) -> list[str]:
        return ranked(self.scores.get(query_id, {}))

    def latency_summary(self) -> dict[str, float]:
        values = sorted(self.latency_ms.values())
        if not values:
            return {}
        if len(values) == 1:
            return {"p50_ms": values[0], "p95_ms": values[0], "mean_ms": values[0]}
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return {"p50_ms": cuts[49], "p95_ms": cuts[94], "mean_ms": statistics.fmean(values)}

    def to_trec(self, tag: str | None = None) -> str:
        """TREC run format: ``qid Q0 docid rank score tag``, readable by ranx and trec_eval.

        Scores are written at full precision (``repr``: the shortest text that reads back
        as the same double), so reading the file creates no tie that was not in the run and
        trec_eval's order of the file is the rank column's.
        """
        tag = tag or "harness"
        lines = []
        for query_id in self.scores:
            for rank, doc_id in enumerate(self.ranking(query_id), start=1):
                lines.append(f"{query_id} Q0 {doc_id} {rank} {float(self.scores[query_id][doc_id])!r} {tag}")
        return "\n".join(lines) + ("\n" if lines else "")


class Retriever(ABC):
    """Index a corpus once, then answer queries with a ranked top k.

    Subclasses implement ``_index`` and ``_search_one``; this class times both, so every
    retriever reports build time and per-query latency the same way.
    """

    spec: str

    def __init__(self) -> None:
        self.build_seconds: float | None = None
        self._indexed_ids: frozenset[str] | None = None
        self._last: tuple[Any, Run] | None = None

    def build(self, corpus: Mapping[str, Text]) -> None:
        if not corpus:
            raise ValueError("cannot index an empty corpus")
        ids = frozenset(corpus)
        if ids == self._indexed_ids:
            return
        started = time.perf_counter()
        self._index(corpus)
        self.build_seconds = time.perf_counter() - started
        self._indexed_ids = ids

    def search(self, queries: Mapping[str, str], k: int = 100) -> Run:
        if self._indexed_ids is None:
            raise RuntimeError(f"{self.spec}: build() must run before search()")
        # an arm shared by several retrievers (bm25 inside hybrid(bm25,dense)) answers once
        key = (tuple(queries.items()), k, self._indexed_ids)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        scores, latency = self._answer(queries, k)
        run = Run(spec=self.spec, scores=scores, latency_ms=latency)
        self._last = (key, run)
        return run

    def _answer(self, queries: Mapping[str, str], k: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """Scores and latency per query; by default each query is answered on its own, timed."""
        scores: dict[str, dict[str, float]] = {}
        latency: dict[str, float] = {}
        for query_id, text in self._progress(queries.items(), len(queries)):
            started = time.perf_counter()
            scores[query_id] = self._search_one(query_id, text, k)
            latency[query_id] = (time.perf_counter() - started) * 1000.0
        return scores, latency

    def _progress(self, items: Iterable[Any], total: int) -> Iterable[Any]:
        from harness.progress import track

        return track(items, total=total, description=f"search {self.spec}")

    @abstractmethod
    def _index(self, corpus: Mapping[str, Text]) -> None: ...

    @abstractmethod
    def _search_one(self, query_id: str, text: str, k: int) -> dict[str, float]: ...

    def describe(self) -> dict[str, Any]:
        """Provenance: what exactly this retriever is (model fingerprints, parameters)."""
        return {"spec": self.spec}

    def components(self) -> list["Retriever"]:
        """The retrievers this one is built from (for hybrid and rerank)."""
        return []
