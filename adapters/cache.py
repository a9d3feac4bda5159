"""An on-disk embedding cache keyed by model fingerprint, prompt, max length and text.

Layout: ``<root>/embeddings/<namespace>/<shard>.npz`` where the namespace hashes the
model fingerprint, prompt and max sequence length, and each shard holds the SHA-1 keys of
its texts and their vectors. Every shard has a sidecar ``<shard>.sha256`` written after
the shard itself: a shard whose checksum is missing or wrong (a crash mid-write, a
truncated copy) is deleted and its texts are encoded again, never used.

``<root>/vectors/*.parquet`` are the document shards ``harness embed`` writes (locally or
on Spark; ``harness.embed``), one row a document: ``doc_id``, ``text_key`` (the same SHA-1
of the text), ``fingerprint``, ``prompt``, ``max_seq_length``, ``backend`` (where it was
encoded) and ``vector``. The cache consults them first, so ``--cache EMB_DIR`` serves a
corpus encoded elsewhere; they are never deleted here: an unreadable one is an error that
names it (it is the user's data, not a cache entry).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

SHARDS_FOLDER = "vectors"
NAMESPACE_COLUMNS = ("fingerprint", "prompt", "max_seq_length")


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    def __init__(self, root: Path, fingerprint: str, prompt: str, max_seq_length: int | None) -> None:
        namespace = hashlib.sha256(f"{fingerprint}\0{prompt}\0{max_seq_length}".encode()).hexdigest()[:24]
        self.directory = Path(root) / "embeddings" / namespace
        self.shards = ShardFolder(root)
        self.namespace = (fingerprint, prompt, max_seq_length)
        self.rebuilt_shards: list[str] = []
        # where the last embed's distinct texts came from: encoded here, this cache, the Parquet shards
        self.sources: dict[str, Any] = {}

    def _load(self) -> dict[str, np.ndarray]:
        vectors: dict[str, np.ndarray] = {}
        if not self.directory.is_dir():
            return vectors
        for shard in sorted(self.directory.glob("*.npz")):
            checksum_file = shard.with_suffix(".sha256")
            data = shard.read_bytes()
            if not checksum_file.is_file() or checksum_file.read_text().strip() != hashlib.sha256(data).hexdigest():
                self._discard(shard)
                continue
            try:
                with np.load(shard, allow_pickle=False) as archive:
                    keys, matrix = archive["keys"], archive["vectors"]
            except Exception:
                self._discard(shard)
                continue
            if len(keys) != len(matrix):
                self._discard(shard)
                continue
            for key, vector in zip(keys.tolist(), matrix):
                vectors[key] = vector
        return vectors

    def _discard(self, shard: Path) -> None:
        self.rebuilt_shards.append(shard.name)
        shard.unlink(missing_ok=True)
        shard.with_suffix(".sha256").unlink(missing_ok=True)

    def _store(self, keys: list[str], matrix: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        tmp = self.directory / f".{name}.npz.tmp"
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=np.array(keys), vectors=matrix)
        data = tmp.read_bytes()
        shard = self.directory / f"{name}.npz"
        os.replace(tmp, shard)
        checksum_tmp = self.directory / f".{name}.sha256.tmp"
        checksum_tmp.write_text(hashlib.sha256(data).hexdigest())
        os.replace(checksum_tmp, shard.with_suffix(".sha256"))

    def embed(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, int]:
        """Vectors for ``texts`` in order, encoding only those neither in the Parquet shards
        nor cached; returns (matrix, encoded)."""
        keys = [text_key(text) for text in texts]
        shard_vectors, backends = self.shards.vectors(self.namespace, set(keys)) if self.shards.exists() else ({}, {})
        stored = self._load()
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in shard_vectors and key not in stored and key not in missing:
                missing[key] = text
        if missing:
            fresh = np.asarray(encode(list(missing.values())), dtype=np.float32)
            self._store(list(missing), fresh)
            stored.update(zip(missing, fresh))
        distinct = set(keys)
        from_shards = distinct & shard_vectors.keys()
        self.sources = {"encoded": len(missing), "cache": len(distinct) - len(missing) - len(from_shards)}
        if self.shards.exists():
            self.sources.update(shards=len(from_shards), shards_folder=str(self.shards.folder.resolve()),
                                shard_backends=dict(sorted(Counter(backends[key] for key in from_shards).items())))
        vectors = [shard_vectors[key] if key in shard_vectors else stored[key] for key in keys]
        return np.stack(vectors).astype(np.float32, copy=False), len(missing)


class ShardFolder:
    """The Parquet shards of ``<root>/vectors``: read by the cache, written by ``harness embed``.

    A shard is written under a hidden temporary name and renamed into place, so a reader
    (or a run killed mid-write) only ever sees whole shards; hidden names are never read.
    """

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / SHARDS_FOLDER

    def exists(self) -> bool:
        return self.folder.is_dir()

    def paths(self) -> list[Path]:
        return sorted(path for path in self.folder.glob("*.parquet") if not path.name.startswith("."))

    def _read(self, path: Path, columns: list[str], namespace: tuple[str, str, int | None],
              keys: set[str] | None = None) -> Any:
        import pyarrow.parquet as pq

        filters = [(name, "=", value) for name, value in zip(NAMESPACE_COLUMNS, namespace) if value is not None]
        if keys is not None:
            filters.append(("text_key", "in", sorted(keys)))
        try:
            return pq.read_table(path, columns=columns, filters=filters)
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise HarnessError(f"{path}: not a readable embedding shard ({first_line}); "
                               "delete it and run harness embed again") from exc

    def pairs(self, fingerprint: str, prompt: str, max_seq_length: int | None) -> set[tuple[str, str]]:
        """The (doc id, text key) pairs the shards hold for this model, prompt and length."""
        found: set[tuple[str, str]] = set()
        for path in self.paths():
            table = self._read(path, ["doc_id", "text_key"], (fingerprint, prompt, max_seq_length))
            found.update(zip(table.column("doc_id").to_pylist(), table.column("text_key").to_pylist()))
        return found

    def vectors(self, namespace: tuple[str, str, int | None], keys: set[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """text key -> vector and text key -> backend of these texts, for this model, prompt and
        length (namespace); only their rows are read (a query lookup does not load the corpus)."""
        vectors: dict[str, np.ndarray] = {}
        backends: dict[str, str] = {}
        dimension = None
        for path in self.paths() if keys else []:
            table = self._read(path, ["text_key", "backend", "vector"], namespace, keys)
            if not table.num_rows:
                continue
            matrix = _matrix(table.column("vector"), path)
            if dimension is not None and matrix.shape[1] != dimension:
                raise HarnessError(f"{path}: vectors of {matrix.shape[1]} dimensions, other shards of the same model have {dimension}")
            dimension = matrix.shape[1]
            found = table.column("text_key").to_pylist()
            vectors.update(zip(found, matrix))
            backends.update(zip(found, table.column("backend").to_pylist()))
        return vectors, backends

    def write(self, doc_ids: Sequence[str], keys: Sequence[str], matrix: np.ndarray, namespace: tuple[str, str, int],
              backend: str) -> Path:
        """One new shard of these rows, in place whole or not at all."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        rows, dimension = matrix.shape
        fingerprint, prompt, max_seq_length = namespace
        offsets = pa.array(np.arange(0, rows * dimension + 1, dimension, dtype=np.int32))
        table = pa.table({
            "doc_id": pa.array(list(doc_ids), pa.string()),
            "text_key": pa.array(list(keys), pa.string()),
            "fingerprint": pa.array([fingerprint] * rows, pa.string()),
            "prompt": pa.array([prompt] * rows, pa.string()),
            "max_seq_length": pa.array([max_seq_length] * rows, pa.int32()),
            "backend": pa.array([backend] * rows, pa.string()),
            # list<float>, as Spark writes array<float>: one layout whatever encoded it
            "vector": pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), pa.float32())),
        })
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        return self.place(tmp, name)

    def place(self, written: Path, name: str) -> Path:
        """Rename a whole written shard into the folder under ``name``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        os.replace(written, target)
        return target

    def clear_leftovers(self) -> list[Path]:
        """Remove what a killed writer left (hidden temporary shards); returns them."""
        leftovers = sorted(self.folder.glob(".*.tmp")) if self.exists() else []
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers


def _matrix(column: Any, path: Path) -> np.ndarray:
    """A list<float> column as a rows x dimension float32 matrix; null or ragged vectors are an error."""
    import pyarrow.compute as pc

    column = column.combine_chunks()
    if column.null_count:
        raise HarnessError(f"{path}: {column.null_count} rows have no vector")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != lengths.max() or lengths[0] == 0):
        raise HarnessError(f"{path}: vectors of different lengths ({lengths.min()} to {lengths.max()})")
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(column), int(lengths[0]) if len(lengths) else 0)
