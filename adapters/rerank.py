"""Cross-encoder reranking of the top N of any first-stage retriever.

Spec: ``rerank(CROSS_ENCODER,top=100,first=SPEC[,batch=32][,fuse=none|rrf])``: a
CrossEncoder folder or hub name (``cross-encoder/ms-marco-MiniLM-L6-v2``,
``BAAI/bge-reranker-base``, or one that ``harness finetune --cross-encoder`` trained). The
first ``top`` documents are reordered by the cross-encoder; any further documents asked for
keep their first-stage order below. ``fuse=rrf`` orders the top ``top`` by reciprocal rank
fusion (Cormack, Clarke and Buettcher, SIGIR 2009; k=60, ranx's ``fuse``) of the
first-stage order and the cross-encoder's, instead of the cross-encoder's alone: the
interpolation of a reranker with its first stage that text-ranking practice uses when the
reranker alone is not the stronger signal everywhere (Lin, Nogueira and Yates, "Pretrained
Transformers for Text Ranking: BERT and Beyond", 2021, section 3.2.2); a reranker that
``harness finetune --cross-encoder`` trained says in its card which order its validation
chose.
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

OPTIONS = {"top", "first", "batch", "fuse"}
FUSIONS = ("none", "rrf")


class RerankRetriever(Retriever):
    def __init__(self, model: str, first: Retriever, top: int = 100, batch_size: int = 32, fuse: str = "none",
                 spec: str | None = None) -> None:
        super().__init__()
        if top < 1:
            raise HarnessError(f"rerank: top must be positive, got {top}")
        if fuse not in FUSIONS:
            raise HarnessError(f"rerank: fuse must be one of {', '.join(FUSIONS)}, got {fuse!r}")
        self.fuse = fuse
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
        return cls(model=str(spec.args[0]), first=build_retriever(first, cache_dir, shared), top=top, batch_size=batch,
                   fuse=spec.option("fuse", "none") or "none", spec=str(spec))

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
        if self.fuse == "rrf":
            fused_with_first_stage({"q": ["a", "b"]}, {"q": {"a": 0.0, "b": 1.0}})  # ranx's numba compile, outside the clock
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
                if self.fuse == "rrf":
                    reranked = fused_with_first_stage({query_id: head}, {query_id: reranked})[query_id]
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
            "fuse": self.fuse,
            "first": self.first.describe(),
        }


def fused_with_first_stage(heads: dict[str, list[str]], reranker_scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per query, RRF (k=60) of the first stage's order of its head (``heads``: query id ->
    doc ids in first-stage order) and the reranker's order of it; one ranx call for all."""
    from harness.adapters.hybrid import fuse_hits

    first_order = {qid: {doc_id: float(len(head) - rank) for rank, doc_id in enumerate(head)} for qid, head in heads.items()}
    depth = max((len(head) for head in heads.values()), default=1)
    return fuse_hits([first_order, reranker_scores], list(heads), "rrf", params={"k": 60}, k=depth)
