"""Fusion of two or more retrievers with ranx's ``fuse``.

Spec: ``hybrid(SPEC,SPEC[,...][,method=rrf|wsum|...][,norm=min-max|zmuv|...]
[,weights=0.3;0.7][,depth=100])``. Reciprocal rank fusion (k=60) is the default; weighted
sum uses min-max normalisation unless ``norm`` says otherwise. Each component retrieves
``depth`` documents per query before fusion. Fusions of ranks read each component's hits
in the one ranking order (``harness.adapters.base.ranked``), and the fused top k is cut in
it too, so tied scores never rank by ranx's own sort.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.adapters.base import Retriever, Run, Text, rank_scores, top_k
from harness.adapters.spec import Spec
from harness.errors import HarnessError

OPTIONS = {"method", "norm", "weights", "depth", "rrf_k"}
WEIGHTED = {"wsum", "wmnz", "w_bordafuse", "w_condorcet", "mixed"}
# ranx methods that combine the parts' score values; the others (rrf, isr, bordafuse,
# condorcet, ...) read only ranks, as do the rank and borda normalisations
SCORE_BASED = {"sum", "mnz", "max", "min", "med", "anz", "gmnz", "wsum", "wmnz", "mixed"}
RANK_NORMS = {"rank", "borda"}


def fuse_hits(
    parts: list[Mapping[str, Mapping[str, float]]],
    query_ids: list[str],
    method: str = "rrf",
    norm: str | None = None,
    params: dict[str, Any] | None = None,
    k: int = 100,
    names: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """ranx's ``fuse`` of several runs' hits (query id -> doc id -> score), cut to the top
    ``k`` per query in the one ranking order; shared by hybrid and the fused reranker."""
    from ranx import Run as RanxRun
    from ranx import fuse

    from harness.metrics import RANX_LOCK, ranx_doc_ids

    # ranx rejects queries without results; fuse the answered ones and keep the rest empty
    answered = [qid for qid in query_ids if any(part.get(qid) for part in parts)]
    fused_scores: dict[str, dict[str, float]] = {qid: {} for qid in query_ids}
    if not answered:
        return fused_scores
    # ranx ranks tied scores its own way: a fusion of ranks reads the one ranking order instead
    by_rank = method not in SCORE_BASED or norm in RANK_NORMS
    inputs = [{qid: rank_scores(hits) for qid, hits in part.items()} if by_rank else part for part in parts]
    per_part = [{qid: (dict(scores.get(qid) or {}) or {"__none__": 0.0}) for qid in answered} for scores in inputs]
    ids = ranx_doc_ids(*per_part)  # one id width for ranx's kernels (harness.metrics.RANX_ID_WIDTH)
    real = {stand_in: doc for doc, stand_in in ids.items()}
    ranx_runs = [
        RanxRun({qid: {ids[doc]: score for doc, score in hits.items()} for qid, hits in part.items()}, name=name)
        for part, name in zip(per_part, names or [f"run{i}" for i in range(len(parts))])
    ]
    with RANX_LOCK:
        fused = fuse(ranx_runs, norm=None if method == "rrf" else norm, method=method, params=params or {})
    fused_dict = fused.to_dict()
    for qid in answered:
        # back to the real ids before the cut: ties break on them, by the one ranking order
        hits = {real[doc]: score for doc, score in fused_dict.get(qid, {}).items() if real[doc] != "__none__"}
        fused_scores[qid] = {doc: float(score) for doc, score in top_k(hits, k).items()}
    return fused_scores


class HybridRetriever(Retriever):
    def __init__(
        self,
        parts: list[Retriever],
        method: str = "rrf",
        norm: str | None = None,
        weights: list[float] | None = None,
        depth: int = 100,
        rrf_k: int = 60,
        spec: str | None = None,
    ) -> None:
        super().__init__()
        if len(parts) < 2:
            raise HarnessError("hybrid needs at least two retrievers, e.g. hybrid(bm25,dense)")
        if weights is not None and len(weights) != len(parts):
            raise HarnessError(f"hybrid: {len(weights)} weights for {len(parts)} retrievers")
        self.parts = parts
        self.method = method
        self.norm = norm or ("rank" if method == "rrf" else "min-max")
        self.weights = weights
        self.depth = depth
        self.rrf_k = rrf_k
        self.spec = spec or f"hybrid({','.join(p.spec for p in parts)})"

    @classmethod
    def from_spec(cls, spec: Spec, cache_dir: Path, shared: dict | None = None) -> "HybridRetriever":
        from harness.adapters import build_retriever

        if spec.value is not None:
            raise HarnessError(f"hybrid takes retrievers in parentheses: hybrid(bm25,dense), not {spec}")
        spec.check_options(OPTIONS)
        raw_weights = spec.option("weights")
        try:
            weights = [float(w) for w in raw_weights.split(";")] if raw_weights else None
            depth = int(spec.option("depth", "100") or 100)
            rrf_k = int(spec.option("rrf_k", "60") or 60)
        except ValueError:
            raise HarnessError(f"{spec}: weights must be numbers separated by ';', depth and rrf_k integers") from None
        method = spec.option("method", "rrf") or "rrf"
        if weights is not None and method == "rrf":
            method = "wsum"
        return cls(
            parts=[build_retriever(part, cache_dir, shared) for part in spec.args],
            method=method,
            norm=spec.option("norm"),
            weights=weights,
            depth=depth,
            rrf_k=rrf_k,
            spec=str(spec),
        )

    def _index(self, corpus: Mapping[str, Text]) -> None:
        for part in self.parts:
            part.build(corpus)

    def build(self, corpus: Mapping[str, Text]) -> None:
        super().build(corpus)
        # the parts may have been built before (they are shared with other arms): report their cost
        self.build_seconds = sum(part.build_seconds or 0.0 for part in self.parts)

    def _search_one(self, query_id: str, text: str, k: int) -> dict[str, float]:
        return self.search({query_id: text}, k).scores[query_id]

    def search(self, queries: Mapping[str, str], k: int = 100) -> Run:
        if self._indexed_ids is None:
            raise RuntimeError(f"{self.spec}: build() must run before search()")

        runs = [part.search(queries, max(k, self.depth)) for part in self.parts]
        self._warm_up()
        started = time.perf_counter()
        fused_scores = fuse_hits([run.scores for run in runs], list(queries), self.method, self.norm, self._params(), k,
                                 names=[run.spec for run in runs])
        fusion_ms = (time.perf_counter() - started) * 1000.0 / max(len(queries), 1)
        # latency where every part measured it (dense parts time a sample of the queries)
        timed = [qid for qid in queries if all(qid in run.latency_ms for run in runs)]
        latency = {qid: sum(run.latency_ms[qid] for run in runs) + fusion_ms for qid in timed}
        return Run(spec=self.spec, scores=fused_scores, latency_ms=latency)

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.method == "rrf":
            params["k"] = self.rrf_k
        if self.method in WEIGHTED:
            params["weights"] = self.weights or [1.0 / len(self.parts)] * len(self.parts)
        return params

    def _warm_up(self) -> None:
        """Run the fusion once on a toy run, the way it runs (``fuse_hits``: ids of the one width
        ``make setup`` compiled kernels for), so numba's loading stays out of the latency."""
        fuse_hits([{"q": {"a": 1.0, "b": 0.5}} for _ in self.parts], ["q"], self.method, self.norm, self._params(), 2)

    def components(self) -> list[Retriever]:
        return list(self.parts)

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "kind": "hybrid",
            "method": self.method,
            "norm": None if self.method == "rrf" else self.norm,
            "weights": self.weights,
            "depth": self.depth,
            "rrf_k": self.rrf_k if self.method == "rrf" else None,
            "components": [part.describe() for part in self.parts],
        }
