"""A FAISS IVF-PQ index for corpora beyond memory, and the exact top-k it is judged against.

The index is built from blocks of (document ids, float32 vectors), e.g. the Parquet shards
of ``harness embed`` (:class:`ParquetVectorBlocks`), and never holds more than one block of
raw vectors plus a seeded training sample:

1. one pass draws a seeded uniform sample of ``train_size`` vectors (each vector gets a
   random key; the smallest keys are kept, so the sample does not depend on block sizes
   beyond their order) and trains the coarse quantizer and the product quantizer on it;
2. a second pass encodes the blocks one at a time into small IVF-PQ shard files, which
   ``faiss.contrib.ondisk.merge_ondisk`` merges into one ``faiss.OnDiskInvertedLists``
   file, memory-mapped when searched; the same pass appends the full float32 vectors to
   ``vectors.faiss``, an ``IndexFlatIP`` file that is opened memory-mapped
   (``faiss.IO_FLAG_MMAP_IFC``) for re-ranking.

Re-ranking (``refine=R``, default :data:`DEFAULT_REFINE`): the product-quantised codes
alone cannot order near neighbours finer than their quantisation error, so a search takes
the top ``k * R`` candidates of the codes and re-scores them exactly against the full
vectors, keeping the top ``k``: ``faiss.IndexRefine`` (FAISS's ``k_factor``, the
"IVFADC + re-ranking" of Jegou et al., "Searching in one billion vectors: re-rank with
source coding", ICASSP 2011) over the memory-mapped flat index, so only the pages of the
candidates' vectors are read. ``refine=0`` returns the codes' own (approximate) scores.

The index folder (``index.faiss``, ``lists.ivfdata``, ``vectors.faiss``, ``doc_ids.parquet``,
``index.json``) is written aside and renamed into place whole (``harness.files.staged``). Row
``i`` of the input is FAISS id ``i`` and ``doc_ids.parquet`` row ``i``. Similarity is the
inner product of the stored vectors (cosine for normalised ones, as ``dense`` and
``harness embed`` write).

Recall against exact search: :func:`exact_top_k` runs
``faiss.contrib.exhaustive_search.knn_ground_truth`` over the same blocks (a flat index a
block, results merged in a heap) and :func:`recall_against_exact` is
``faiss.contrib.evaluation.knn_intersection_measure`` of the two result tables.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError, located
from harness.files import staged, write_json

Block = tuple[Sequence[str], np.ndarray]
FORMAT_VERSION = 2  # 2: the full vectors (vectors.faiss) for re-ranking
# candidates a result re-scored on the full vectors: k * DEFAULT_REFINE (0: no re-ranking)
DEFAULT_REFINE = 10
# k-means wants this many training points a centroid (faiss warns below it)
POINTS_PER_CENTROID = 39


@dataclass(frozen=True)
class IvfPqSettings:
    """``nlist`` inverted lists; ``subquantizers`` (PQ's m, a divisor of the dimension;
    default: the largest divisor not above dimension / 8, i.e. about 8 dimensions a byte);
    ``bits`` a sub-quantizer code (default 8, fewer when the sample is too small to give
    every centroid POINTS_PER_CENTROID points); ``train_size`` vectors sampled for training
    (default 64 per list, at least enough for the PQ code books); ``seed`` of that sample."""

    nlist: int
    subquantizers: int | None = None
    bits: int | None = None
    train_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("nlist", "subquantizers", "bits", "train_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise HarnessError(f"ivfpq: {name} must be positive, got {value}")
        if self.bits is not None and self.bits > 16:
            raise HarnessError(f"ivfpq: bits must be at most 16, got {self.bits}")

    def sample_size(self) -> int:
        return self.train_size or max(64 * self.nlist, POINTS_PER_CENTROID * 2 ** (self.bits or 8))


class ParquetVectorBlocks:
    """The ``doc_id`` and ``vector`` columns of every ``*.parquet`` file under ``folder``
    (sorted by path), read ``rows_per_block`` rows at a time with pyarrow; iterable again.

    A ``fingerprint`` column, where present, must hold one model's fingerprint throughout:
    vectors of two models in one index would be compared as if they were one space."""

    def __init__(self, folder: str | Path, rows_per_block: int = 65_536) -> None:
        import pyarrow.parquet as pq

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise HarnessError(f"{self.folder}: no such folder of Parquet vector shards")
        # hidden names are files still being written (harness embed renames a shard when whole)
        self.files = sorted(path for path in self.folder.rglob("*.parquet") if not path.name.startswith("."))
        if not self.files:
            raise HarnessError(f"{self.folder}: holds no *.parquet files")
        self.rows_per_block = rows_per_block
        for path in self.files:
            names = set(pq.read_schema(path).names)
            missing = {"doc_id", "vector"} - names
            if missing:
                raise located(path, None, f"missing column(s) {', '.join(sorted(missing))} (a vector shard has doc_id and vector)")
        self.fingerprint: str | None = None

    def __iter__(self) -> Iterator[Block]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        dimension: int | None = None
        for path in self.files:
            parquet = pq.ParquetFile(path)
            columns = ["doc_id", "vector"] + (["fingerprint"] if "fingerprint" in parquet.schema_arrow.names else [])
            first_row = 1
            for batch in parquet.iter_batches(batch_size=self.rows_per_block, columns=columns):
                if batch.num_rows == 0:
                    continue
                where = f"rows {first_row}-{first_row + batch.num_rows - 1}"
                ids, vectors = batch.column("doc_id"), batch.column("vector")
                if ids.null_count or vectors.null_count:
                    row = first_row + int(pc.index(pc.or_(pc.is_null(ids), pc.is_null(vectors)), True).as_py())
                    raise located(path, None, f"row {row}: empty doc_id or vector")
                lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
                dimension = int(lengths[0]) if dimension is None else dimension
                wrong = np.flatnonzero((lengths != dimension) | (lengths == 0))
                if len(wrong):
                    raise located(path, None, f"row {first_row + int(wrong[0])}: vector of {lengths[wrong[0]]} values, the rows before hold {dimension}")
                if "fingerprint" in columns:
                    self._check_one_model(path, where, batch.column("fingerprint"))
                flat = pc.list_flatten(vectors).to_numpy(zero_copy_only=False)
                yield ids.to_pylist(), np.ascontiguousarray(flat.reshape(batch.num_rows, dimension), dtype=np.float32)
                first_row += batch.num_rows

    def _check_one_model(self, path: Path, where: str, fingerprints: Any) -> None:
        import pyarrow.compute as pc

        for value in pc.unique(fingerprints).to_pylist():
            if self.fingerprint is None:
                self.fingerprint = value
            elif value != self.fingerprint:
                raise located(path, None, f"{where}: fingerprint {value!r}, the shards before were {self.fingerprint!r} (one model an index)")


class IvfPqIndex:
    """An IVF-PQ index folder opened for search; its inverted lists and its full vectors
    stay on disk (mmap). ``index`` is the IVF-PQ index, ``searcher`` what answers: the
    IVF-PQ index itself (``refine`` 0) or ``faiss.IndexRefine`` over it and the flat index
    of the full vectors, re-scoring ``k * refine`` candidates."""

    def __init__(self, folder: Path, index: Any, manifest: dict[str, Any], vectors: Any) -> None:
        self.folder = folder
        self.index = index
        self.manifest = manifest
        self.vectors = vectors  # faiss.IndexFlatIP over vectors.faiss, memory-mapped
        self._refined = _refine_with(index, vectors)
        self._refine = DEFAULT_REFINE
        self._doc_ids: Any = None

    @classmethod
    def open(cls, folder: str | Path, nprobe: int | None = None, refine: int | None = None) -> "IvfPqIndex":
        import faiss

        folder = Path(folder)
        manifest_file = folder / "index.json"
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise located(manifest_file, None, f"not an IVF-PQ index folder ({exc})") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise located(manifest_file, None, f"format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
        try:
            with _faiss_chatter_to_stderr():
                # the lists file is looked for beside index.faiss: the folder was renamed after the build
                index = faiss.read_index(str(folder / "index.faiss"), faiss.IO_FLAG_ONDISK_SAME_DIR)
        except RuntimeError as exc:  # faiss's C++ errors: a truncated or foreign file
            message = (str(exc).strip().splitlines() or ["unreadable"])[-1]
            raise located(folder / "index.faiss", None, f"not a readable FAISS index ({message})") from None
        vectors = _read_vectors(folder / "vectors.faiss", index.ntotal, index.d)
        opened = cls(folder, index, manifest, vectors)
        opened.nprobe = nprobe or manifest["nprobe"]
        opened.refine = DEFAULT_REFINE if refine is None else refine
        return opened

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if value < 1:
            raise HarnessError(f"ivfpq: nprobe must be positive, got {value}")
        self.index.nprobe = min(int(value), self.index.nlist)

    @property
    def refine(self) -> int:
        """Candidates re-scored on the full vectors, as a multiple of k (0: none)."""
        return self._refine

    @refine.setter
    def refine(self, value: int) -> None:
        if value < 0:
            raise HarnessError(f"ivfpq: refine must be 0 (no re-ranking) or a positive multiple of k, got {value}")
        self._refine = int(value)
        self._refined.k_factor = float(max(1, self._refine))

    @property
    def searcher(self) -> Any:
        """The FAISS index that answers a search at the current nprobe and refine."""
        return self._refined if self._refine else self.index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, rows) of each query's top k; row -1 where fewer came back. The
        similarities are exact inner products when re-ranked, the codes' estimates when not."""
        return self.searcher.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def doc_ids(self, rows: np.ndarray) -> list[list[str]]:
        """The document ids of a table of rows (a -1 row, no hit, is left out)."""
        if self._doc_ids is None:
            import pyarrow.parquet as pq

            self._doc_ids = pq.read_table(self.folder / "doc_ids.parquet").column("doc_id")
        return [self._doc_ids.take(line[line >= 0]).to_pylist() for line in np.asarray(rows)]


def build_ivfpq(blocks: Iterable[Block], folder: str | Path, settings: IvfPqSettings, nprobe: int | None = None,
                source: str | None = None) -> IvfPqIndex:
    """Build the on-disk IVF-PQ index of ``blocks`` into ``folder`` (replaced whole) and open it.

    ``blocks`` is read twice (the training sample, then the codes): a list, a
    :class:`ParquetVectorBlocks`, or any iterable that starts again; a one-shot iterator
    is refused. ``nprobe`` (lists visited a query; default nlist / 8) is stored as the
    index's default. ``source`` says where the vectors came from, for the manifest."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    if iter(blocks) is blocks:
        raise HarnessError("ivfpq: the vector blocks are read twice; pass a list or a re-iterable (not a generator)")
    started = time.perf_counter()
    sample, total, dimension = _seeded_sample(blocks, settings.sample_size(), settings.seed)
    nlist = settings.nlist
    if nlist > len(sample):
        raise HarnessError(f"ivfpq: nlist={nlist} lists need at least as many training vectors, the sample has {len(sample)}")
    bits = settings.bits or max(1, min(8, int(math.log2(max(1, len(sample) // POINTS_PER_CENTROID)))))
    subquantizers = settings.subquantizers or _default_subquantizers(dimension)
    if dimension % subquantizers:
        raise HarnessError(f"ivfpq: subquantizers (m) must divide the dimension {dimension}, got {subquantizers}")
    if len(sample) < 2**bits:
        raise HarnessError(f"ivfpq: {len(sample)} training vectors cannot train {2**bits} centroids (bits={bits})")
    quantizer = faiss.IndexFlatIP(dimension)
    trained = faiss.IndexIVFPQ(quantizer, dimension, nlist, subquantizers, bits, faiss.METRIC_INNER_PRODUCT)
    trained.train(sample)
    del sample
    trained_seconds = time.perf_counter() - started
    target = Path(folder)
    with staged(target) as (staging,):
        staging.mkdir()
        faiss.write_index(trained, str(staging / "trained.faiss"))
        shards = _encode_shards(blocks, staging, total)
        with _faiss_chatter_to_stderr():
            merge_ondisk(trained, [str(s) for s in shards], str(staging / "lists.ivfdata"))
            faiss.write_index(trained, str(staging / "index.faiss"))
        _read_vectors(staging / "vectors.faiss", total, dimension)  # what was appended reads back as faiss's flat index
        for shard in [*shards, staging / "trained.faiss"]:
            shard.unlink()
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "ivfpq",
            "metric": "inner_product",
            "vectors": total,
            "dimension": dimension,
            "nlist": nlist,
            "subquantizers": subquantizers,
            "bits": bits,
            "code_bytes": int(trained.code_size),
            "nprobe": min(nprobe or max(1, nlist // 8), nlist),
            "full_vectors_bytes": total * dimension * 4,
            "settings": asdict(settings),
            "source": source,
            "train_seconds": round(trained_seconds, 3),
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        write_json(staging / "index.json", manifest)
    return IvfPqIndex.open(target)


def cached_ivfpq(doc_ids: Sequence[str], vectors: np.ndarray, cache_root: Path, nlist: int, subquantizers: int | None,
                 nprobe: int | None, refine: int | None = None, rows_per_block: int = 65_536) -> tuple[IvfPqIndex, bool]:
    """The IVF-PQ index of vectors held in memory (``dense(index=ivfpq)``), built once in
    ``cache_root/indexes`` under a key of the ids, the vectors and the build settings;
    returns it, opened at ``nprobe`` and ``refine`` (search-time settings: one build serves
    them all), and whether it was already there."""
    import hashlib

    settings = IvfPqSettings(nlist=nlist, subquantizers=subquantizers)
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, list(doc_ids), asdict(settings)]).encode())
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    folder = Path(cache_root) / "indexes" / f"ivfpq-{digest.hexdigest()[:24]}"
    if (folder / "index.json").is_file():
        return IvfPqIndex.open(folder, nprobe, refine), True
    blocks = [(doc_ids[start:start + rows_per_block], vectors[start:start + rows_per_block])
              for start in range(0, len(vectors), rows_per_block)]
    index = build_ivfpq(blocks, folder, settings, nprobe, source="dense")
    index.refine = DEFAULT_REFINE if refine is None else refine
    return index, False


def exact_top_k(queries: np.ndarray, blocks: Iterable[Block], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, rows) of each query's exact top k by inner product, computed block by
    block (``knn_ground_truth``): memory holds one block, never the corpus."""
    import faiss
    from faiss.contrib.exhaustive_search import knn_ground_truth

    return knn_ground_truth(np.ascontiguousarray(queries, dtype=np.float32), (vectors for _, vectors in blocks), k,
                            metric_type=faiss.METRIC_INNER_PRODUCT)


def recall_against_exact(approximate_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    """The share of the exact top-k rows the approximate search found (recall@k against exact)."""
    from faiss.contrib.evaluation import knn_intersection_measure

    return float(knn_intersection_measure(np.asarray(approximate_rows), np.asarray(exact_rows)))


def _seeded_sample(blocks: Iterable[Block], size: int, seed: int) -> tuple[np.ndarray, int, int]:
    """A uniform sample of ``size`` vectors (all of them when fewer), the number of vectors
    and their dimension, in one pass that holds the sample and one block."""
    random = np.random.default_rng(seed)
    kept_keys = np.empty(0)
    kept: np.ndarray | None = None
    total = 0
    for number, (ids, vectors) in enumerate(blocks, start=1):
        vectors = _checked_block(number, ids, vectors, None if kept is None else kept.shape[1])
        keys = np.concatenate([kept_keys, random.random(len(vectors))])
        pool = vectors if kept is None else np.concatenate([kept, vectors])
        chosen = np.argsort(keys, kind="stable")[:size]
        kept_keys, kept = keys[chosen], np.ascontiguousarray(pool[chosen])
        total += len(vectors)
    if kept is None or total == 0:
        raise HarnessError("ivfpq: no vectors to index")
    return kept, total, kept.shape[1]


def _encode_shards(blocks: Iterable[Block], staging: Path, expected: int) -> list[Path]:
    """Encode each block into an IVF-PQ shard file (rows numbered on from the blocks
    before), append its full vectors to ``vectors.faiss`` and write the document ids
    beside them; returns the shard files."""
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards, first_row = [], 0
    dimension = faiss.read_index(str(staging / "trained.faiss")).d
    with pq.ParquetWriter(staging / "doc_ids.parquet", pa.schema([("doc_id", pa.string())])) as writer, \
            open(staging / "vectors.faiss", "wb") as full:
        full.write(_flat_header(expected, dimension))
        for number, (ids, vectors) in enumerate(blocks, start=1):
            shard = faiss.read_index(str(staging / "trained.faiss"))
            vectors = _checked_block(number, ids, vectors, shard.d)
            shard.add_with_ids(vectors, np.arange(first_row, first_row + len(vectors), dtype=np.int64))
            shards.append(staging / f"shard-{number:06d}.faiss")
            faiss.write_index(shard, str(shards[-1]))
            full.write(vectors.tobytes())
            writer.write_table(pa.table({"doc_id": pa.array([str(i) for i in ids], pa.string())}))
            first_row += len(vectors)
    if first_row != expected:
        raise HarnessError(f"ivfpq: the blocks held {expected} vectors when sampled and {first_row} when encoded")
    return shards


def _flat_header(rows: int, dimension: int) -> bytes:
    """The header of faiss's ``IndexFlatIP`` file of ``rows`` vectors, so that the vectors can
    be appended to it a block at a time (faiss writes a flat index only from memory, which
    would hold the whole corpus). It is faiss's own header of an empty index
    (``faiss.serialize_index``) with the two counts patched: ``ntotal`` (int64 after the
    fourcc and ``d``) and the code vector's length in floats (the int64 at its end), as
    ``write_index`` lays them out (faiss/impl/index_write.cpp: ``write_index_header``,
    ``WRITEXBVECTOR``); :func:`_read_vectors` checks the result with faiss's reader."""
    import faiss

    header = bytearray(faiss.serialize_index(faiss.IndexFlatIP(dimension)))
    if len(header) != 45 or bytes(header[:4]) != b"IxFI" or struct.unpack_from("<iqq", header, 4) != (dimension, 0, 1 << 20):
        raise HarnessError(f"ivfpq: faiss {faiss.__version__} writes a flat index in a layout this code does not know")
    struct.pack_into("<q", header, 8, rows)
    struct.pack_into("<q", header, 37, rows * dimension)
    return bytes(header)


def _read_vectors(path: Path, rows: int, dimension: int) -> Any:
    """``vectors.faiss`` opened memory-mapped (``IO_FLAG_MMAP_IFC``: the codes are not read into memory)."""
    import faiss

    try:
        vectors = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as exc:
        message = (str(exc).strip().splitlines() or ["unreadable"])[-1]
        raise located(path, None, f"not a readable flat index of the full vectors ({message})") from None
    if (vectors.ntotal, vectors.d, vectors.metric_type) != (rows, dimension, faiss.METRIC_INNER_PRODUCT):
        raise located(path, None, f"holds {vectors.ntotal} vectors of {vectors.d} dimensions, the index {rows} of {dimension}")
    return vectors


def _refine_with(index: Any, vectors: Any) -> Any:
    """``faiss.IndexRefine``: ``index``'s top ``k * k_factor`` re-scored by ``vectors`` (a
    flat index of the same rows), the best ``k`` kept. It does not own either index: the
    caller keeps both alive (``IvfPqIndex`` holds them)."""
    import faiss

    return faiss.IndexRefine(index, vectors)


def _checked_block(number: int, ids: Sequence[str], vectors: np.ndarray, dimension: int | None) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise HarnessError(f"ivfpq: vector block {number}: {len(ids)} ids for an array of shape {vectors.shape}")
    if dimension is not None and vectors.shape[1] != dimension:
        raise HarnessError(f"ivfpq: vector block {number}: {vectors.shape[1]} dimensions, the blocks before hold {dimension}")
    if not np.isfinite(vectors).all():
        raise HarnessError(f"ivfpq: vector block {number}: row {int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0]) + 1} is not finite")
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _default_subquantizers(dimension: int) -> int:
    return max(m for m in range(1, max(1, dimension // 8) + 1) if dimension % m == 0)


@contextlib.contextmanager
def _faiss_chatter_to_stderr() -> Iterator[None]:
    """faiss's C++ prints progress ("resizing ...", "updating ondisk filename ...") on the
    process's stdout, which carries the harness's own output: send it to stderr meanwhile."""
    import ctypes

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C stdio's buffer goes out while fd 1 is still stderr
        os.dup2(saved, 1)
        os.close(saved)
