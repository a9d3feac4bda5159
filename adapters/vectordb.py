"""The arm that searches a served index in a vector database: what the index serves,
evaluated by ``harness eval`` and the gate exactly as it would answer.

Spec: ``qdrant[:MODEL](db=DIR|URL,alias=NAME)`` (or ``collection=NAME`` for one index that
no alias serves); ``MODEL`` is the query encoder, a dense model as in ``dense:MODEL``
(default MiniLM), with the dense options ``prompts``, ``query_prompt``, ``doc_prompt``,
``max_len`` and ``batch``. The alias is resolved once, when the arm is built: every query
of an evaluation reads that one collection, even if a swap happens meanwhile, and the
result records db, alias, collection and what the index says it is (model fingerprint,
corpus hash, backend, registry version).

It refuses to search an index that is incomplete (a build that did not finish), one whose
documents were encoded by another model than its query encoder (fingerprint, sequence
length or document prompt differ), or one built from another corpus than the one evaluated
(its corpus hash), so a figure always describes the index as served. Search is exact
(``SearchParams(exact=True)``; local mode is always exact) over the inner product of
normalised vectors, the cosine ``dense`` computes; hits are cut with ``top_k``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.adapters.base import Retriever, Text, top_k
from harness.adapters.cache import EmbeddingCache
from harness.adapters.spec import Spec
from harness.errors import HarnessError

ENCODER_OPTIONS = {"prompts", "query_prompt", "doc_prompt", "max_len", "batch"}
OPTIONS = {"db", "alias", "collection"} | ENCODER_OPTIONS
LATENCY_SAMPLE = 100


class VectorDatabaseRetriever(Retriever):
    def __init__(self, spec: Spec, cache_dir: Path) -> None:
        from harness.serving.build import encoder_for
        from harness.serving.versions import ModelVersion

        super().__init__()
        spec.check_options(OPTIONS)
        if spec.args:
            raise HarnessError(f"qdrant takes its query model after ':', not as an argument: {spec}")
        self.spec = str(spec)
        self.db = spec.option("db")
        self.alias, self.collection = spec.option("alias"), spec.option("collection")
        if not self.db or (self.alias is None) == (self.collection is None):
            raise HarnessError(f"qdrant needs db= and one of alias= or collection=, e.g. qdrant(db=indexes,alias=search): {spec}")
        encoder_spec = Spec(kind="dense", value=spec.value, options=tuple((k, v) for k, v in spec.options if k in ENCODER_OPTIONS))
        self.encoder = encoder_for(ModelVersion(encoder_spec), cache_dir)
        self.cache_dir = cache_dir
        self.index_info: Any = None
        self._store: Any = None  # the database, open while queries are answered

    @classmethod
    def from_spec(cls, spec: Spec, cache_dir: Path) -> "VectorDatabaseRetriever":
        return cls(spec, cache_dir)

    def _index(self, corpus: Mapping[str, Text]) -> None:
        """Nothing to index: resolve the alias and check that the index is the one to search."""
        from harness.serving.build import corpus_hash
        from harness.serving.store import COMPLETE, open_store

        with open_store(self.db) as store:
            info = store.resolve(self.alias or self.collection)
        where = f"{self.spec}: index {info.collection}"
        if info.state != COMPLETE:
            raise HarnessError(f"{where} is {info.state} (its build did not finish): it cannot be searched")
        fingerprint, max_seq_length, _ = self.encoder.identity
        expected = (info.fingerprint, info.max_seq_length, info.doc_prompt)
        if (fingerprint, max_seq_length, self.encoder.doc_prompt) != expected:
            raise HarnessError(f"{where} was encoded by {info.model} (fingerprint {info.fingerprint}, max length "
                               f"{info.max_seq_length}, document prompt {info.doc_prompt!r}); the query encoder "
                               f"{self.encoder.spec} is fingerprint {fingerprint}, max length {max_seq_length}, "
                               f"document prompt {self.encoder.doc_prompt!r}: queries must be encoded by the index's model")
        digest = corpus_hash(corpus)
        if digest != info.corpus_hash:
            raise HarnessError(f"{where} holds corpus {info.corpus_hash[:12]} ({info.documents} documents); the data "
                               f"evaluated is corpus {digest[:12]} ({len(corpus)} documents): build an index of this corpus")
        self.index_info = info

    def _answer(self, queries: Mapping[str, str], k: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """Every query's top k from its cached vector; latency (encoding and search of one
        query) on a seeded sample of up to LATENCY_SAMPLE queries, as ``dense`` measures it."""
        from harness.serving.store import open_store

        fingerprint, max_seq_length, _ = self.encoder.identity
        cache = EmbeddingCache(self.cache_dir, fingerprint, self.encoder.query_prompt, max_seq_length)
        # the dense arm's own encoding call, so a query's vector is the one dense searches with
        encode = self.encoder._encode
        vectors, _ = cache.embed(list(queries.values()), lambda texts: encode(texts, self.encoder.query_prompt, show_progress=False))
        sample = random.Random(0).sample(list(queries.items()), min(LATENCY_SAMPLE, len(queries)))
        with open_store(self.db) as self._store:
            scores = {query_id: self._top_k(vector, k) for query_id, vector in zip(queries, vectors)}
            self.encoder.model  # loaded before the clock starts
            latency = {}
            for query_id, text in sample:
                started = time.perf_counter()
                self._search_one(query_id, text, k)
                latency[query_id] = (time.perf_counter() - started) * 1000.0
        self._store = None
        return scores, latency

    def _top_k(self, vector: Any, k: int) -> dict[str, float]:
        """The top k in the one ranking order: the database breaks ties at the cut its own
        way, so it is asked one deeper, and twice as deep while the extra hit ties the k-th."""
        total = self.index_info.documents
        depth = min(k + 1, total)
        while True:
            hits = self._store.nearest(self.index_info.collection, vector, depth)
            if depth >= total or len(hits) <= k or hits[-1][1] != hits[k - 1][1]:
                return top_k(dict(hits), k)
            depth = min(2 * depth, total)

    def _search_one(self, query_id: str, text: str, k: int) -> dict[str, float]:
        return self._top_k(self.encoder._encode([text], self.encoder.query_prompt, show_progress=False)[0], k)

    def describe(self) -> dict[str, Any]:
        encoder = self.encoder.describe()
        info = self.index_info
        return {
            "spec": self.spec,
            "kind": "qdrant",
            "db": self.db,
            "alias": self.alias,
            "collection": info.collection if info else self.collection,
            "backend": info.backend if info else None,
            "index_model": info.model if info else None,
            "fingerprint": encoder["fingerprint"],
            "index_fingerprint": info.fingerprint if info else None,
            "corpus_hash": info.corpus_hash if info else None,
            "registry": info.registry if info else None,
            "index_built_at": info.built_at if info else None,
            "documents": info.documents if info else None,
            "model": encoder["model"],
            "model_path": encoder["model_path"],
            "dimension": encoder["dimension"],
            "max_seq_length": encoder["max_seq_length"],
            "index": "exact",
            "query_prompt": encoder["query_prompt"],
            "doc_prompt": encoder["doc_prompt"],
            "device": encoder["device"],
        }
