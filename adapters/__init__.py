"""Retrievers behind one interface, each named by a spec string (see ``adapters.spec``)."""

from __future__ import annotations

from pathlib import Path

from harness.adapters.base import Retriever, Run
from harness.adapters.spec import Spec
from harness.errors import HarnessError

KINDS = ("bm25", "dense", "hybrid", "rerank", "filter", "qdrant")


def build_retriever(
    spec: str | Spec, cache_dir: str | Path | None = None, shared: dict[str, Retriever] | None = None
) -> Retriever:
    """Turn a spec string into a retriever; ``cache_dir`` holds indexes and embeddings.

    ``shared`` memoises retrievers by canonical spec, so ``dense`` and the ``dense`` inside
    ``hybrid(bm25,dense)`` are one object: one index, one search.
    """
    parsed = Spec.parse(spec) if isinstance(spec, str) else spec
    if shared is not None:
        key = str(parsed)
        if key not in shared:
            shared[key] = _build(parsed, cache_dir, shared)
        return shared[key]
    return _build(parsed, cache_dir, None)


def _build(parsed: Spec, cache_dir: str | Path | None, shared: dict[str, Retriever] | None) -> Retriever:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if parsed.kind == "bm25":
        from harness.adapters.bm25 import BM25Retriever

        return BM25Retriever.from_spec(parsed, cache)
    if parsed.kind == "dense":
        from harness.adapters.dense import DenseRetriever

        return DenseRetriever.from_spec(parsed, cache)
    if parsed.kind == "hybrid":
        from harness.adapters.hybrid import HybridRetriever

        return HybridRetriever.from_spec(parsed, cache, shared)
    if parsed.kind == "rerank":
        from harness.adapters.rerank import RerankRetriever

        return RerankRetriever.from_spec(parsed, cache, shared)
    if parsed.kind == "filter":
        from harness.adapters.filter import FilterRetriever

        return FilterRetriever.from_spec(parsed, cache, shared)
    if parsed.kind == "qdrant":
        from harness.adapters.vectordb import VectorDatabaseRetriever

        return VectorDatabaseRetriever.from_spec(parsed, cache)
    raise HarnessError(f"unknown retriever kind {parsed.kind!r} in spec {str(parsed)!r} (known: {', '.join(KINDS)})")


def default_cache_dir() -> Path:
    import os

    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "embedding-harness"))


__all__ = ["KINDS", "Retriever", "Run", "Spec", "build_retriever", "default_cache_dir"]
