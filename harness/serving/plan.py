"""``harness index plan``: what switching the served index from one model version to another
costs, before anything is encoded.

The cost model (``docs/index.md``):

- **documents to encode**: the corpus's distinct texts that the embedding cache does not
  hold for the target model. On a model change that is every text (less what an eval of
  the new model already encoded); with the same model, only new or changed texts, since
  the cache keys vectors by content hash. A planned corpus of ``--documents N`` is taken as
  new: all N.
- **time**: this machine's throughput measured with the target model on a seeded sample of
  the corpus (``SAMPLE`` documents after one warm-up batch), plus the database's write rate
  measured by writing the sample's vectors to a scratch local database; ``--workers N`` divides the encoding
  time by N, the ideal of N model replicas each on its own device or cores, never better.
- **size**: vectors are ``dimension x 4`` bytes a document (float32); an index adds each
  point's id and payload and, on a server, its HNSW graph (``GRAPH_BYTES`` a point:
  ``m = 16``, 32 level-0 links of 4 bytes). Both indexes are stored during the switch,
  until ``harness index prune``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.base import Text
from harness.adapters.cache import EmbeddingCache, text_key
from harness.serving.build import encoder_for
from harness.serving.versions import ModelVersion

SAMPLE = 64
WARM_UP = 32
GRAPH_BYTES = 128
LOCAL_MODE_LIMIT = 20_000  # points above which qdrant-client's local mode warns: a server's job
POINT_OVERHEAD_BYTES = 16  # the point's 8-byte id and its payload's framing


def index_bytes(documents: int, dimension: int, mean_id_bytes: float) -> int:
    return int(documents * (dimension * 4 + GRAPH_BYTES + POINT_OVERHEAD_BYTES + mean_id_bytes))


def plan_switch(corpus: Mapping[str, Text], source: ModelVersion, target: ModelVersion, cache_dir: Path,
                workers: int = 1, documents: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The plan as a record: counts, measured rates, estimated seconds and bytes."""
    old, new = encoder_for(source, cache_dir), encoder_for(target, cache_dir)
    model_changed = (old.identity, old.doc_prompt) != (new.identity, new.doc_prompt)
    texts = {text_key(doc.content): doc.content for doc in corpus.values()}
    cache = EmbeddingCache(cache_dir, new.identity[0], new.doc_prompt, new.identity[1])
    # the cache's own table of what it holds (read, never written): its keys are text_key's
    cached = len(texts.keys() & cache._load().keys())
    planned = documents if documents is not None else len(corpus)
    to_encode = planned if documents is not None else len(texts) - cached
    encode_rate, write_rate = measure_rates(corpus, new, seed)
    mean_id_bytes = float(np.mean([len(doc_id.encode()) for doc_id in corpus]))
    encode_seconds = to_encode / encode_rate
    write_seconds = planned / write_rate
    old_bytes = index_bytes(planned, old.identity[2], mean_id_bytes)
    new_bytes = index_bytes(planned, new.identity[2], mean_id_bytes)
    return {
        "from": {"model": str(source.spec), "fingerprint": old.identity[0], "dimension": old.identity[2], "registry": source.registry},
        "to": {"model": str(target.spec), "fingerprint": new.identity[0], "dimension": new.identity[2], "registry": target.registry},
        "model_changed": model_changed,
        "documents": planned,
        "distinct_texts": len(texts) if documents is None else planned,
        "cached": 0 if documents is not None else cached,
        "to_encode": to_encode,
        "sample": min(SAMPLE, len(corpus)),
        "encode_docs_per_s": encode_rate,
        "write_points_per_s": write_rate,
        "workers": workers,
        "estimated_seconds": encode_seconds + write_seconds,
        "estimated_seconds_with_workers": encode_seconds / workers + write_seconds,
        "vector_bytes": planned * new.identity[2] * 4,
        "index_bytes": new_bytes,
        "old_index_bytes": old_bytes,
        "switch_bytes": old_bytes + new_bytes,
        "local_mode_limit": LOCAL_MODE_LIMIT,
    }


def measure_rates(corpus: Mapping[str, Text], encoder: Any, seed: int) -> tuple[float, float]:
    """(documents encoded per second, points written per second) on this machine."""
    import tempfile

    from qdrant_client import QdrantClient, models

    documents = list(corpus.values())
    rng = random.Random(seed)
    sample = [doc.content for doc in rng.sample(documents, min(SAMPLE, len(documents)))]
    warm_up = [doc.content for doc in rng.sample(documents, min(WARM_UP, len(documents)))]
    encoder._encode(warm_up, encoder.doc_prompt, show_progress=False)  # the dense arm's own encoding call
    started = time.perf_counter()
    vectors = encoder._encode(sample, encoder.doc_prompt, show_progress=False)
    encode_rate = len(sample) / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory(prefix="harness-rate-") as folder:  # a local database, as build writes one
        client = QdrantClient(path=folder)
        client.create_collection("rate", vectors_config=models.VectorParams(size=vectors.shape[1], distance=models.Distance.DOT))
        started = time.perf_counter()
        client.upsert("rate", wait=True, points=models.Batch(ids=list(range(len(sample))), vectors=vectors.tolist(),
                                                             payloads=[{"doc_id": str(i)} for i in range(len(sample))]))
        write_rate = len(sample) / (time.perf_counter() - started)
        client.close()
    return encode_rate, write_rate
