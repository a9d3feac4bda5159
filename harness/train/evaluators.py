"""Validation during training, scored with the harness's own metrics (``harness.metrics``).

Both evaluators follow sentence-transformers' evaluator interface (``__call__(model,
output_path, epoch, steps) -> dict`` with ``primary_metric``), so the trainers use them
for early stopping and for choosing the best checkpoint; every call is kept in
``history`` for the training log.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np

from harness import metrics as metric_lib
from harness.data import Dataset

VALIDATION_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def _base_class() -> type:
    from sentence_transformers.base.evaluation import BaseEvaluator

    return BaseEvaluator


def first_stage_top(dataset: Dataset, queries: dict[str, str], spec: str, k: int, cache_dir: Any = None) -> dict[str, list[str]]:
    """Each query's top ``k`` documents by the retriever ``spec`` (the harness's own, so the
    cut and the order follow its one tie rule), as ``rerank(...)`` would receive them."""
    from harness.adapters import build_retriever

    retriever = build_retriever(spec, cache_dir)
    retriever.build(dataset.corpus)
    run = retriever.search(queries, k)
    return {qid: run.ranking(qid) for qid in queries}


def bm25_neighbours(dataset: Dataset, queries: dict[str, str], k: int, cache_dir: Any = None) -> dict[str, list[str]]:
    return first_stage_top(dataset, queries, "bm25", k, cache_dir)


def ranking_figures(qrels: dict[str, dict[str, int]], candidates: dict[str, list[str]],
                    metrics: tuple[str, ...] = ("ndcg@10", "mrr@10"), name: str = "val") -> dict[str, float]:
    """The first stage's own figures over ``candidates`` (in their order): what a reranker
    of these candidates has to beat."""
    run = {q: {d: float(len(docs) - rank) for rank, d in enumerate(docs)} for q, docs in candidates.items()}
    per_query = metric_lib.per_query({q: qrels[q] for q in candidates}, run, list(metrics))
    return {f"{name}_{metric}": float(np.mean(list(values.values()))) for metric, values in per_query.items()}


def validation_corpus(
    dataset: Dataset, queries: dict[str, str], qrels: dict[str, dict[str, int]], limit: int, seed: int, cache_dir: Any = None
) -> tuple[dict[str, str], str]:
    """The documents validation ranks: all of them when there are at most ``limit``, else
    every judged document, then BM25's nearest neighbours of each query (hard distractors),
    then a seeded random fill."""
    if len(dataset.corpus) <= limit:
        return {d: doc.content for d, doc in dataset.corpus.items()}, f"whole corpus ({len(dataset.corpus)} documents)"
    chosen: dict[str, None] = {}
    for rels in qrels.values():
        for doc_id in rels:
            if doc_id in dataset.corpus:
                chosen[doc_id] = None
    neighbours = bm25_neighbours(dataset, queries, 30, cache_dir)
    for rank in range(30):
        for qid in queries:
            if len(chosen) >= limit:
                break
            ranking = neighbours.get(qid, [])
            if rank < len(ranking):
                chosen[ranking[rank]] = None
    rest = sorted(set(dataset.corpus) - set(chosen))
    random.Random(seed).shuffle(rest)
    for doc_id in rest[: max(0, limit - len(chosen))]:
        chosen[doc_id] = None
    return (
        {d: dataset.corpus[d].content for d in chosen},
        f"{len(chosen)} of {len(dataset.corpus)} documents (judged, then BM25 neighbours of each query, then random)",
    )


def make_retrieval_evaluator(
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    corpus: dict[str, str],
    metrics: tuple[str, ...] = VALIDATION_METRICS,
    name: str = "val",
    batch_size: int = 32,
    cache_dir: Any = None,
) -> Any:
    """Dense retrieval over ``corpus`` (exact inner product of normalised vectors).

    With ``cache_dir``, the documents' vectors go through the harness's embedding cache,
    keyed by the fingerprint of the weights as they are at that call: the model validated
    before training is the base, whose vectors an evaluation of the base reads; the last
    validation of a pass is of the weights the pass ends on, whose vectors the mining that
    follows, or the evaluation of the saved model, then reads instead of encoding them again.
    """

    class HarnessRetrievalEvaluator(_base_class()):
        def __init__(self) -> None:
            super().__init__()
            self.name = name
            self.primary_metric = f"{name}_ndcg@10"
            self.greater_is_better = True
            self.history: list[dict[str, Any]] = []
            self.doc_ids = list(corpus)
            self.query_ids = [q for q in queries if q in qrels]

        def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
            from harness.progress import enabled
            from harness.train.mining import CachedEncoder

            started = time.perf_counter()
            texts = [corpus[d] for d in self.doc_ids]
            if cache_dir is not None:
                from harness.train.trainer import forget_fingerprint

                forget_fingerprint(model)  # the cache keys on the weights as they are now...
                try:
                    docs = CachedEncoder(model, cache_dir).encode_document(texts, batch_size=batch_size)
                finally:
                    forget_fingerprint(model)  # ...and training changes them in place next
            else:
                docs = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=enabled())
            vecs = model.encode([queries[q] for q in self.query_ids], batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
            scores = np.asarray(vecs, dtype=np.float32) @ np.asarray(docs, dtype=np.float32).T
            depth = min(100, len(self.doc_ids))
            run: dict[str, dict[str, float]] = {}
            for row, qid in enumerate(self.query_ids):
                top = np.argpartition(-scores[row], depth - 1)[:depth]
                run[qid] = {self.doc_ids[i]: float(scores[row, i]) for i in top}
            per_query = metric_lib.per_query({q: qrels[q] for q in self.query_ids}, run, list(metrics))
            return _record(self.history, name, per_query, epoch, steps, started)

    return HarnessRetrievalEvaluator()


def make_rerank_evaluator(
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    candidates: dict[str, list[str]],
    texts: dict[str, str],
    metrics: tuple[str, ...] = ("ndcg@10", "mrr@10"),
    name: str = "val",
    batch_size: int = 32,
    fuse: str = "none",
) -> Any:
    """A cross-encoder reordering each query's first-stage candidates (in first-stage
    order), scored in the order ``rerank(...,fuse=FUSE)`` serves: the cross-encoder's
    alone, or with ``fuse="rrf"`` its fusion with the first stage (then the cross-encoder's
    own order is recorded too, as ``NAME_reranker_only_METRIC``)."""
    from harness.adapters.rerank import fused_with_first_stage

    class HarnessRerankEvaluator(_base_class()):
        def __init__(self) -> None:
            super().__init__()
            self.name = name
            self.primary_metric = f"{name}_ndcg@10"
            self.greater_is_better = True
            self.history: list[dict[str, Any]] = []

        def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
            started = time.perf_counter()
            items = [(qid, d) for qid in candidates for d in candidates[qid]]
            values = model.predict([(queries[q], texts[d]) for q, d in items], batch_size=batch_size, show_progress_bar=False)
            run: dict[str, dict[str, float]] = {}
            for (qid, doc_id), value in zip(items, values):
                run.setdefault(qid, {})[doc_id] = float(value)
            judged = {q: qrels[q] for q in candidates}
            if fuse == "rrf":
                alone = metric_lib.per_query(judged, run, list(metrics))
                run = fused_with_first_stage({qid: candidates[qid] for qid in run}, run)
            per_query = metric_lib.per_query(judged, run, list(metrics))
            if fuse == "rrf":
                per_query.update({f"reranker_only_{metric}": values for metric, values in alone.items()})
            return _record(self.history, name, per_query, epoch, steps, started)

    return HarnessRerankEvaluator()


def _record(
    history: list[dict[str, Any]], name: str, per_query: dict[str, dict[str, float]], epoch: float, steps: int, started: float
) -> dict[str, float]:
    """Mean of each metric over queries, named as the trainer expects, appended to the history."""
    result = {f"{name}_{metric}": float(np.mean(list(values.values()))) for metric, values in per_query.items()}
    history.append({"epoch": epoch, "step": steps, **result, "seconds": round(time.perf_counter() - started, 2)})
    return result
