"""``harness index build``: a new index beside the one serving (blue-green).

Documents are encoded through the dense arm's embedding cache
(``DenseRetriever.embed_documents``), so a build after ``harness eval`` of the same model
encodes nothing again, and a corpus change with the same model encodes only its new or
changed texts (the cache keys vectors by content hash). The index is then written in
batches into a collection of its own, marked ``incomplete`` until its last point is
written and counted (``harness.serving.store``); the serving alias is never touched here.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.adapters.base import Text
from harness.adapters.cache import text_key
from harness.errors import HarnessError
from harness.serving.store import COMPLETE, INCOMPLETE, PREVIOUS, IndexInfo, fault, now, open_store
from harness.serving.versions import ModelVersion

WRITE_BATCH = 256
SERVING_NAME = re.compile(r"[A-Za-z0-9_.-]+")
UNSUPPORTED_OPTIONS = ("dim", "index")  # a served index holds the model's full vectors, searched exactly


def corpus_hash(corpus: Mapping[str, Text]) -> str:
    """The hash of what an index holds: every document id with its text's content hash
    (the embedding cache's key), in id order, so reordering the corpus file changes nothing."""
    digest = hashlib.sha256()
    for doc_id in sorted(corpus):
        digest.update(f"{doc_id}\0{text_key(corpus[doc_id].content)}\n".encode())
    return digest.hexdigest()


def check_serving_name(name: str) -> str:
    if not SERVING_NAME.fullmatch(name) or name.endswith(PREVIOUS):
        raise HarnessError(f"--alias {name!r}: a serving name is letters, digits, '_', '-' and '.'")
    return name


def encoder_for(version: ModelVersion, cache_dir: Path):
    """The dense retriever whose model and cache encode an index's documents and queries."""
    from harness.adapters.dense import DenseRetriever

    for option in UNSUPPORTED_OPTIONS:
        if version.spec.option(option) is not None:
            raise HarnessError(f"{version.spec}: option {option} does not apply to a served index (full vectors, exact search)")
    return DenseRetriever.from_spec(version.spec, cache_dir)


@dataclass
class Built:
    info: IndexInfo
    new: bool  # False: an index of this model and corpus was already complete
    encoded_documents: int = 0
    encode_seconds: float = 0.0
    write_seconds: float = 0.0


def build_index(db: str | Path, corpus: Mapping[str, Text], version: ModelVersion, serves: str, cache_dir: Path,
                batch: int = WRITE_BATCH) -> Built:
    """Write the index of ``corpus`` encoded by ``version`` into ``db``, for the serving name
    ``serves``; one of the same model and corpus already complete is returned as it is."""
    check_serving_name(serves)
    encoder = encoder_for(version, cache_dir)
    fingerprint, max_seq_length, dimension = encoder.identity
    digest = corpus_hash(corpus)
    # one name per (model, sequence length, document prompt, corpus): a rebuild of the same finds it
    key = hashlib.sha256(f"{fingerprint}\0{max_seq_length}\0{encoder.doc_prompt}\0{digest}".encode()).hexdigest()
    info = IndexInfo(collection=f"{serves}-{fingerprint[:8]}-{key[:8]}", state=INCOMPLETE, serves=serves,
                     model=str(version.spec), fingerprint=fingerprint, max_seq_length=max_seq_length,
                     doc_prompt=encoder.doc_prompt, dimension=dimension, corpus_hash=digest, documents=len(corpus),
                     registry=version.registry, built_at=now())
    with open_store(db) as store:
        existing = store.index(info.collection)
        if existing is not None and existing.state == COMPLETE:
            return Built(existing, new=False)
        if existing is not None:  # what a killed build left: never served, so cleared
            store.delete(info.collection)
        vectors = encoder.embed_documents(corpus)
        started = time.perf_counter()
        store.create(info)
        doc_ids = list(corpus)
        pause_after = fault("build-pause-after")
        for number, first in enumerate(range(0, len(doc_ids), batch), start=1):
            store.write(info.collection, first, doc_ids[first : first + batch], vectors[first : first + batch])
            if pause_after is not None and number == int(pause_after):
                print(f"paused after {number} batches", file=sys.stderr, flush=True)
                time.sleep(3600)
        written = store.count(info.collection)
        if written != len(doc_ids):
            raise HarnessError(f"--db {db}: index {info.collection} holds {written} points, not the corpus's {len(doc_ids)}; left incomplete")
        store.mark_complete(info)
        return Built(info, new=True, encoded_documents=encoder.encoded_documents, encode_seconds=encoder.encode_seconds,
                     write_seconds=time.perf_counter() - started)
