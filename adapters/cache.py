"""An on-disk embedding cache keyed by model fingerprint, prompt, max length and text.

Layout: ``<root>/embeddings/<namespace>/<shard>.npz`` where the namespace hashes the
model fingerprint, prompt and max sequence length, and each shard holds the SHA-1 keys of
its texts and their vectors. Every shard has a sidecar ``<shard>.sha256`` written after
the shard itself: a shard whose checksum is missing or wrong (a crash mid-write, a
truncated copy) is deleted and its texts are encoded again, never used.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    def __init__(self, root: Path, fingerprint: str, prompt: str, max_seq_length: int | None) -> None:
        namespace = hashlib.sha256(f"{fingerprint}\0{prompt}\0{max_seq_length}".encode()).hexdigest()[:24]
        self.directory = Path(root) / "embeddings" / namespace
        self.rebuilt_shards: list[str] = []

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
        """Vectors for ``texts`` in order, encoding only those not cached; returns (matrix, encoded)."""
        stored = self._load()
        keys = [text_key(text) for text in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in stored and key not in missing:
                missing[key] = text
        if missing:
            fresh = np.asarray(encode(list(missing.values())), dtype=np.float32)
            self._store(list(missing), fresh)
            stored.update(zip(missing, fresh))
        return np.stack([stored[key] for key in keys]).astype(np.float32, copy=False), len(missing)
