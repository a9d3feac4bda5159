"""Cross-encoder reranking of the top N of any first-stage retriever.

Spec: ``rerank(CROSS_ENCODER,top=100,first=SPEC[,batch=32])``: a CrossEncoder folder or
hub name (``cross-encoder/ms-marco-MiniLM-L6-v2``, ``BAAI/bge-reranker-base``, or one that
``harness finetune --cross-encoder`` trained). The first ``top`` documents are reordered
by the cross-encoder; any further documents asked for keep their first-stage order below.
Which documents are the first ``top`` where first-stage scores tie, and the order of tied
cross-encoder scores, follow the one ranking order (``harness.adapters.base.ranked``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.adapters.base import Retriever, Run, Text, top_k
from harness.adapters.models import fingerprint, load_cross_encoder
from harness.adapters.spec import Spec
from harness.errors import HarnessError

OPTIONS = {"top", "first", "batch"}


class RerankRetriever(Retriever):
    def __init__(self, model: str, first: Retriever, top: int = 100, batch_size: int = 32, spec: str | None = None) -> None:
        super().__init__()
        if top < 1:
            raise HarnessError(f"rerank: top must be positive, got {top}")
        self.model_name = model
        self.first = first
        self.top = top
        self.batch_size = batch_size
        self.spec = spec or f"rerank({model},top={top},first={first.spec})"
        self._texts: dict[str, str] = {}
        self._model: Any = None

    @classmethod
    def from_spec(cls, spec: Spec, cache_dir: Path, shared: dict | None = None) -> "RerankRetriever":
        from harness.adapters import build_retriever

        if len(spec.args) != 1 or spec.value is not None:
            raise HarnessError(f"rerank takes one cross-encoder, e.g. rerank(models/ce,top=100,first=bm25): {spec}")
        spec.check_options(OPTIONS)
        first = spec.first_stage(example="bm25")
        try:
            top = int(spec.option("top", "100") or 100)
            batch = int(spec.option("batch", "32") or 32)
        except ValueError:
            raise HarnessError(f"{spec}: top and batch must be integers") from None
        return cls(model=str(spec.args[0]), first=build_retriever(first, cache_dir, shared), top=top, batch_size=batch, spec=str(spec))

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_cross_encoder(self.model_name)
        return self._model

    def _index(self, corpus: Mapping[str, Text]) -> None:
        self.first.build(corpus)
        self._texts = {doc_id: doc.content for doc_id, doc in corpus.items()}

    def build(self, corpus: Mapping[str, Text]) -> None:
        super().build(corpus)
        self.build_seconds = self.first.build_seconds

    def _search_one(self, query_id: str, text: str, k: int) -> dict[str, float]:
        return self.search({query_id: text}, k).scores[query_id]

    def search(self, queries: Mapping[str, str], k: int = 100) -> Run:
        if self._indexed_ids is None:
            raise RuntimeError(f"{self.spec}: build() must run before search()")
        first_run = self.first.search(queries, max(k, self.top))
        self.model  # load outside the latency clock
        scores: dict[str, dict[str, float]] = {}
        latency: dict[str, float] = {}
        for query_id, text in self._progress(queries.items(), len(queries)):
            started = time.perf_counter()
            ranked = first_run.ranking(query_id)
            head, tail = ranked[: self.top], ranked[self.top : k]
            reranked: dict[str, float] = {}
            if head:
                values = self.model.predict(
                    [(text, self._texts[doc_id]) for doc_id in head], batch_size=self.batch_size, show_progress_bar=False
                )
                reranked = {doc_id: float(value) for doc_id, value in zip(head, values)}
                floor = min(reranked.values())
                for offset, doc_id in enumerate(tail, start=1):
                    reranked[doc_id] = floor - offset
            scores[query_id] = top_k(reranked, k)
            if query_id in first_run.latency_ms:  # dense first stages time a sample of the queries
                latency[query_id] = first_run.latency_ms[query_id] + (time.perf_counter() - started) * 1000.0
        return Run(spec=self.spec, scores=scores, latency_ms=latency)

    def components(self) -> list[Retriever]:
        return [self.first]

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "kind": "rerank",
            "model": self.model_name,
            "fingerprint": fingerprint(self.model),
            "device": str(self.model.device),
            "top": self.top,
            "first": self.first.describe(),
        }
