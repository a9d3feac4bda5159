"""Dense retrieval with any sentence-transformers model over a FAISS index.

Spec: ``dense[:MODEL][(option=value,...)]`` with options

- ``dim``: keep the first N dimensions (Matryoshka), renormalised;
- ``index``: ``flat`` (exact inner product, default), ``hnsw``, ``ivf`` or ``ivfpq``
  (approximate; their recall@k against exact search is measured and reported); ``ivfpq``
  is the on-disk IVF-PQ index of ``adapters/faiss_index.py``, built once in the cache,
  with ``nlist`` (lists), ``m`` (PQ sub-quantizers, bytes a vector), ``nprobe`` and
  ``refine`` (the top k * refine of the codes re-scored on the full vectors, default 10;
  0: the codes' own scores);
- ``prompts``: ``e5`` or ``bge`` presets, or ``query_prompt`` / ``doc_prompt`` verbatim;
- ``max_len``: maximum sequence length in tokens; ``batch``: encoding batch size;
- ``backend``: ``torch`` (default) or ``openvino``, with ``quant=int8`` for static int8
  calibrated on the corpus's own texts (``adapters/backends.py``): an arm of its own, whose
  backend and quantisation are in its description and its embedding cache's namespace.

Document and query embeddings go through the on-disk cache, so a repeated evaluation
encodes nothing; latency is measured apart, on up to 100 queries (seeded sample) each
encoded and searched on its own, as a live service would answer them. The model's
identity (fingerprint, sequence length, dimension) and that latency sample are kept in
the cache too, keyed by the model files and the machine: a fully cached evaluation does
not load the model at all, and its result says when the latency was measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.backends import EncodingBackend, calibration_sample, load_backend_model
from harness.adapters.base import Retriever, Text, top_k
from harness.adapters.cache import EmbeddingCache
from harness.adapters.models import display_name, fingerprint, load_sentence_transformer, resolve_model_name
from harness.adapters.spec import Spec
from harness.errors import HarnessError
from harness.files import write_json
from harness.provenance import selected_device

PROMPT_PRESETS = {
    "e5": ("query: ", "passage: "),
    "bge": ("Represent this sentence for searching relevant passages: ", ""),
    "none": ("", ""),
}
INDEXES = ("flat", "hnsw", "ivf", "ivfpq")
IVFPQ_OPTIONS = ("nlist", "m", "nprobe", "refine")
OPTIONS = {"dim", "index", "prompts", "query_prompt", "doc_prompt", "max_len", "batch", "backend", "quant", *IVFPQ_OPTIONS}
LATENCY_SAMPLE = 100


class DenseRetriever(Retriever):
    def __init__(
        self,
        model: str | None = None,
        cache_dir: Path | None = None,
        dim: int | None = None,
        index: str = "flat",
        query_prompt: str = "",
        doc_prompt: str = "",
        max_len: int | None = None,
        batch_size: int = 32,
        spec: str | None = None,
        backend: EncodingBackend = EncodingBackend(),
        ivfpq: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        if index not in INDEXES:
            raise HarnessError(f"dense: unknown index {index!r} (known: {', '.join(INDEXES)})")
        if ivfpq and index != "ivfpq":
            raise HarnessError(f"dense: option {', '.join(sorted(ivfpq))} applies to index=ivfpq only")
        if dim is not None and dim < 1:
            raise HarnessError(f"dense: dim must be positive, got {dim}")
        self.model_name = model or "default"
        self.cache_dir = cache_dir
        self.dim = dim
        self.index_kind = index
        self.ivfpq_options = dict(ivfpq or {})
        self._ivfpq: Any = None  # the opened IvfPqIndex, for its description
        self._ivfpq_reused = False
        self.query_prompt = query_prompt
        self.doc_prompt = doc_prompt
        self.max_len = max_len
        self.batch_size = batch_size
        self.backend = backend
        self.calibration: list[str] | None = None  # int8: the corpus texts it is calibrated on
        self.spec = spec or (f"dense:{self.model_name}" if model else "dense")
        self.encode_seconds = 0.0
        self.encoded_documents = 0
        self.approximate_recall: float | None = None
        self._model: Any = None
        self._source_model: Any = None
        self._doc_ids: list[str] = []
        self._index_obj: Any = None
        self._exact: Any = None
        self._cache: EmbeddingCache | None = None
        self._identity: tuple[str, int, int] | None = None
        self.latency_measured_at: str | None = None
        self.latency_cached = False
        self.device: str | None = None  # where the model ran, or where the cached latency was measured

    @classmethod
    def from_spec(cls, spec: Spec, cache_dir: Path) -> "DenseRetriever":
        if spec.args:
            raise HarnessError(f"dense takes its model after ':', not as an argument: {spec}")
        spec.check_options(OPTIONS)
        preset = spec.option("prompts")
        if preset is not None and preset not in PROMPT_PRESETS:
            raise HarnessError(f"dense: unknown prompts preset {preset!r} (known: {', '.join(PROMPT_PRESETS)})")
        query_prompt, doc_prompt = PROMPT_PRESETS[preset or "none"]
        return cls(
            model=spec.value,
            cache_dir=cache_dir,
            dim=_int_option(spec, "dim"),
            index=spec.option("index", "flat") or "flat",
            query_prompt=spec.option("query_prompt", query_prompt) or "",
            doc_prompt=spec.option("doc_prompt", doc_prompt) or "",
            max_len=_int_option(spec, "max_len"),
            batch_size=_int_option(spec, "batch") or 32,
            spec=str(spec),
            backend=EncodingBackend.parse(spec.option("backend"), spec.option("quant")),
            ivfpq={key: _int_option(spec, key) for key in IVFPQ_OPTIONS if spec.option(key) is not None},
        )

    @property
    def model(self) -> Any:
        """The SentenceTransformer that encodes: the torch model, or its export on the backend."""
        if self._model is None:
            if self.backend.is_torch:
                self._model = self.source_model
            else:
                self._model = load_backend_model(self.source_model, resolve_model_name(self.model_name), self.backend,
                                                 self.identity[0], self.calibration, self.cache_dir or Path("."))
            self.device = str(self._model.device)
        return self._model

    @property
    def source_model(self) -> Any:
        """The torch model of the arm's model name and sequence length (what it is fingerprinted by)."""
        if self._source_model is None:
            self._source_model = load_sentence_transformer(resolve_model_name(self.model_name))
            if self.max_len is not None and self.max_len != self._source_model.max_seq_length:
                import copy

                # the loaded model is shared by every retriever of that model: change a copy
                self._source_model = copy.deepcopy(self._source_model)
                self._source_model.max_seq_length = self.max_len
                self._source_model._harness_fingerprint = None
        return self._source_model

    @property
    def encoder_key(self) -> str:
        """The embedding cache's fingerprint: the model's, with backend and quantisation where not torch."""
        return self.backend.key(self.identity[0], self.calibration)

    @property
    def identity(self) -> tuple[str, int, int]:
        """(fingerprint, max sequence length, dimension), from the memo in the cache when
        these model files were loaded before, else from the model (then memoised)."""
        if self._identity is None:
            memo = self._memo_file()
            data = None
            if memo is not None and memo.is_file():
                try:
                    data = json.loads(memo.read_text(encoding="utf-8"))
                    data = (str(data["fingerprint"]), int(data["max_seq_length"]), int(data["dimension"]))
                except (ValueError, KeyError, TypeError):
                    data = None  # a corrupt memo is rebuilt
            if data is None:
                source = self.source_model
                data = (fingerprint(source), source.max_seq_length, source.get_embedding_dimension())
                if memo is not None:
                    write_json(memo, {"fingerprint": data[0], "max_seq_length": data[1], "dimension": data[2]})
            self._identity = data
            if self.dim is not None and self.dim > data[2]:
                raise HarnessError(f"dense: dim={self.dim} exceeds the model's {data[2]} dimensions")
        return self._identity

    def _memo_file(self) -> Path | None:
        """The memo of a local model folder: keyed by its files' names, sizes and times."""
        folder = Path(resolve_model_name(self.model_name)).expanduser()
        if self.cache_dir is None or not folder.is_dir():
            return None
        files = sorted((str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in folder.rglob("*") if f.is_file())
        key = hashlib.sha256(json.dumps([str(folder.resolve()), self.max_len, files]).encode()).hexdigest()[:24]
        return self.cache_dir / "models" / f"{key}.json"

    def _encode(self, texts: list[str], prompt: str, show_progress: bool) -> np.ndarray:
        return self.model.encode(
            texts,
            prompt=prompt or None,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )

    def _shape(self, vectors: np.ndarray) -> np.ndarray:
        if self.dim is not None:
            vectors = vectors[:, : self.dim]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_documents(self, corpus: Mapping[str, Text]) -> np.ndarray:
        """Document vectors through the cache (full dimension, normalised)."""
        from harness.progress import enabled

        cache_root = self.cache_dir or Path(".")
        _, max_seq_length, _ = self.identity
        texts = [doc.content for doc in corpus.values()]
        if self.backend.quantisation:
            self.calibration = calibration_sample([self.doc_prompt + text for text in texts])
        self._cache = EmbeddingCache(cache_root, self.encoder_key, self.doc_prompt, max_seq_length)
        started = time.perf_counter()
        vectors, encoded = self._cache.embed(
            texts,
            lambda texts: self._encode(texts, self.doc_prompt, show_progress=enabled()),
        )
        self.encode_seconds = time.perf_counter() - started
        self.encoded_documents = encoded
        return vectors

    def _index(self, corpus: Mapping[str, Text]) -> None:
        import faiss

        vectors = self._shape(self.embed_documents(corpus))
        self._doc_ids = list(corpus)
        dim = vectors.shape[1]
        self._exact = faiss.IndexFlatIP(dim)
        self._exact.add(vectors)
        if self.index_kind == "flat":
            self._index_obj = self._exact
        elif self.index_kind == "hnsw":
            self._index_obj = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            self._index_obj.hnsw.efSearch = 64
            self._index_obj.add(vectors)
        elif self.index_kind == "ivfpq":
            from harness.adapters.faiss_index import cached_ivfpq

            options = self.ivfpq_options
            self._ivfpq, self._ivfpq_reused = cached_ivfpq(self._doc_ids, vectors, self.cache_dir or Path("."),
                                                           options.get("nlist") or _default_lists(len(vectors)),
                                                           options.get("m"), options.get("nprobe"), options.get("refine"))
            self._index_obj = self._ivfpq.searcher
        else:
            lists = _default_lists(len(vectors))
            quantizer = faiss.IndexFlatIP(dim)
            self._index_obj = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
            self._index_obj.train(vectors)
            self._index_obj.add(vectors)
            self._index_obj.nprobe = max(1, lists // 8)
            self._quantizer = quantizer  # faiss does not own the quantizer; keep it alive

    def _answer(self, queries: Mapping[str, str], k: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """Rank all queries from batch-encoded (and cached) query vectors; time single-query
        answers, encoding included, on a seeded sample of up to LATENCY_SAMPLE queries."""
        import random

        texts = list(queries.values())
        _, max_seq_length, _ = self.identity
        cache = EmbeddingCache(self.cache_dir or Path("."), self.encoder_key, self.query_prompt, max_seq_length)
        vectors, _ = cache.embed(texts, lambda batch: self._encode(batch, self.query_prompt, show_progress=False))
        scores = dict(zip(queries, self._top_k(self._shape(vectors), k)))
        sample = random.Random(0).sample(list(queries.items()), min(LATENCY_SAMPLE, len(queries)))
        memo = self._latency_file(sample, k)
        if memo is not None and memo.is_file():
            try:
                stored = json.loads(memo.read_text(encoding="utf-8"))
                self.latency_measured_at, self.latency_cached = str(stored["measured_at"]), True
                self.device = self.device or stored.get("device")
                return scores, {query_id: float(ms) for (query_id, _), ms in zip(sample, stored["latency_ms"], strict=True)}
            except (ValueError, KeyError, TypeError):
                pass  # a corrupt memo: measure again
        self.model  # loaded before the clock starts
        latency = {}
        for query_id, text in sample:
            started = time.perf_counter()
            self._search_one(query_id, text, k)
            latency[query_id] = (time.perf_counter() - started) * 1000.0
        self.latency_measured_at, self.latency_cached = datetime.now(timezone.utc).isoformat(timespec="seconds"), False
        if memo is not None:
            write_json(memo, {"measured_at": self.latency_measured_at, "device": self.device,
                              "latency_ms": [latency[q] for q, _ in sample]})
        return scores, latency

    def _latency_file(self, sample: list[tuple[str, str]], k: int) -> Path | None:
        """The latency of this model, index, corpus size, machine, device and query sample."""
        if self.cache_dir is None:
            return None
        key = json.dumps([(self.encoder_key, *self.identity[1:]), self.query_prompt, self.dim, self.index_kind, k, len(self._doc_ids),
                          platform.node(), platform.machine(), os.cpu_count(), selected_device(), [text for _, text in sample],
                          *sorted(self.ivfpq_options.items()),
                          *([] if self._ivfpq is None else [("ivfpq", self._ivfpq.nprobe, self._ivfpq.refine)])])
        return self.cache_dir / "latency" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def _search_one(self, query_id: str, text: str, k: int) -> dict[str, float]:
        return self._top_k(self._shape(self._encode([text], self.query_prompt, show_progress=False)), k)[0]

    def _top_k(self, vectors: np.ndarray, k: int) -> list[dict[str, float]]:
        """Each query's top k, tied scores at the cut decided by the one ranking order.

        FAISS breaks ties at the k-th place arbitrarily, so it is asked for one more hit;
        a query whose extra hit still ties the k-th is asked again with twice the depth,
        until the tie is wholly inside what came back (or the corpus is exhausted).
        """
        total = len(self._doc_ids)
        found: list[dict[str, float]] = [{} for _ in range(len(vectors))]
        pending = np.arange(len(vectors))
        depth = min(k + 1, total)
        while len(pending):
            similarities, rows = self._index_obj.search(vectors[pending], depth)
            unresolved = []
            for index, values, hits in zip(pending, similarities, rows):
                kept = hits >= 0
                values, hits = values[kept], hits[kept]
                if depth < total and len(values) > k and values[-1] == values[k - 1]:
                    unresolved.append(index)
                    continue
                found[index] = top_k({self._doc_ids[row]: float(value) for row, value in zip(hits, values)}, k)
            pending = np.asarray(unresolved, dtype=int)
            depth = min(2 * depth, total)
        return found

    def search(self, queries: Mapping[str, str], k: int = 100):  # type: ignore[override]
        run = super().search(queries, k)
        if self.index_kind != "flat" and queries:
            self.approximate_recall = self._recall_against_exact(run.scores, queries, k)
        return run

    def _recall_against_exact(self, approximate: dict[str, dict[str, float]], queries: Mapping[str, str], k: int) -> float:
        vectors = self._shape(self._encode(list(queries.values()), self.query_prompt, show_progress=False))
        _, rows = self._exact.search(vectors, min(k, len(self._doc_ids)))
        found = total = 0
        for query_id, exact_rows in zip(queries, rows):
            exact_ids = {self._doc_ids[row] for row in exact_rows if row >= 0}
            found += len(exact_ids & set(approximate.get(query_id, {})))
            total += len(exact_ids)
        return found / total if total else 1.0

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "spec": self.spec,
            "kind": "dense",
            "model": display_name(self.model_name),
            "model_path": resolve_model_name(self.model_name),
            "fingerprint": self.identity[0],
            "dimension": self.dim or self.identity[2],
            "max_seq_length": self.identity[1],
            "index": self.index_kind,
            "query_prompt": self.query_prompt,
            "doc_prompt": self.doc_prompt,
            "encode_seconds": round(self.encode_seconds, 3),
            "encoded_documents": self.encoded_documents,
            "latency_measured_at": self.latency_measured_at,
            "latency_cached": self.latency_cached,
            "device": self.device,
            **self.backend.describe(self.calibration),
        }
        if self.approximate_recall is not None:
            info["approximate_recall_vs_exact"] = round(self.approximate_recall, 4)
        if self._ivfpq is not None:
            info["ivfpq"] = {**{key: self._ivfpq.manifest[key] for key in ("nlist", "subquantizers", "bits", "code_bytes")},
                             "nprobe": self._ivfpq.nprobe, "refine": self._ivfpq.refine, "index_from_cache": self._ivfpq_reused}
        if self._cache is not None and self._cache.rebuilt_shards:
            info["cache_shards_rebuilt"] = len(self._cache.rebuilt_shards)
        if self._cache is not None and "shards" in self._cache.sources:  # the cache held harness embed's shards
            info["document_vectors"] = self._cache.sources
        return info


def _int_option(spec: Spec, key: str) -> int | None:
    raw = spec.option(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise HarnessError(f"{spec}: option {key}={raw!r} must be an integer") from None


def _default_lists(vectors: int) -> int:
    """IVF lists for a corpus: about sqrt(n), with at least 39 training vectors a list."""
    return max(1, min(int(np.sqrt(vectors)), vectors // 39 or 1))
