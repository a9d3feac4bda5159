"""Does the IVF-PQ index search past memory? Measured in one run on synthetic vectors:

1. build time of the on-disk IVF-PQ index (`harness.adapters.faiss_index.build_ivfpq`)
   from blocks of 384-d vectors that never sit in memory together (seeded, generated
   block by block: a mixture of clusters, normalised, like sentence embeddings);
2. peak resident memory of the process (ru_maxrss: faiss's own allocations and the
   memory-mapped lists included), against a bound (default 4 GB, the issue's bound at 10M);
3. recall@10 of IVF-PQ against the exact top 10 (`knn_ground_truth`, block by block) on
   held-out queries of the same distribution, and queries/s of a batch search, at a few
   nprobe values (the index's default last).

Usage: python bench/index_scale.py [--vectors 1000000] [--via-parquet] [--out DIR]
       (--via-parquet writes the blocks as Parquet shards first and builds from them)
The last line prints the peak memory over the bound (target <= 1.0) and the recall@10.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class SyntheticBlocks:
    """``vectors`` seeded vectors in blocks, the same ones on every pass: each is one of
    ``clusters`` random centres plus Gaussian noise, normalised (recall on structureless
    Gaussian vectors says nothing about embeddings, whose neighbours are much closer)."""

    def __init__(self, vectors: int, dimension: int, block: int, seed: int, clusters: int = 4096, noise: float = 0.6) -> None:
        self.vectors, self.dimension, self.block, self.seed, self.noise = vectors, dimension, block, seed, noise
        centres = np.random.default_rng(seed).standard_normal((clusters, dimension), dtype=np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(self, rows: int, stream: int) -> np.ndarray:
        random = np.random.default_rng([self.seed, stream])
        vectors = self.centres[random.integers(0, len(self.centres), rows)]
        vectors += random.standard_normal((rows, self.dimension), dtype=np.float32) * (self.noise / np.sqrt(self.dimension))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def __iter__(self):
        for start in range(0, self.vectors, self.block):
            rows = min(self.block, self.vectors - start)
            yield [f"v{row}" for row in range(start, start + rows)], self.draw(rows, 1 + start // self.block)


class Logged:
    """The blocks, each pass and block noted on stderr with wall and CPU time, so that a run
    cut short says how far it got."""

    def __init__(self, blocks: object, total: int) -> None:
        self.blocks, self.total, self.passes, self.started = blocks, total, 0, time.perf_counter()

    def __iter__(self):
        self.passes += 1
        for number, block in enumerate(self.blocks, start=1):
            yield block
            print(f"  pass {self.passes}: block {number}/{self.total} done at {time.perf_counter() - self.started:.0f} s "
                  f"(CPU {time.process_time():.0f} s)", file=sys.stderr, flush=True)


def write_parquet(blocks: SyntheticBlocks, folder: Path) -> None:
    """The blocks as shards with the columns of `harness embed` that the index reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    for number, (ids, vectors) in enumerate(blocks):
        values = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), blocks.dimension)
        pq.write_table(pa.table({"doc_id": ids, "vector": values}), folder / f"part-{number:05d}.parquet")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--block", type=int, default=50_000, help="vectors a block (what memory holds at once)")
    parser.add_argument("--nlist", type=int, help="inverted lists (default: sqrt(vectors), as dense(index=ivf))")
    parser.add_argument("--m", type=int, default=48, help="PQ sub-quantizers (bytes a vector at 8 bits)")
    parser.add_argument("--nprobe", type=int, action="append", help="lists visited a query (repeatable)")
    parser.add_argument("--bound-gb", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--via-parquet", action="store_true", help="write the blocks as Parquet shards and build from them")
    parser.add_argument("--out", type=Path, help="keep the index folder here (default: a temporary folder, removed)")
    args = parser.parse_args()

    import faiss

    from harness.adapters.faiss_index import IvfPqSettings, ParquetVectorBlocks, build_ivfpq, exact_top_k, recall_against_exact

    scratch = Path(tempfile.mkdtemp(prefix="index-scale-"))
    try:
        synthetic = SyntheticBlocks(args.vectors, args.dim, args.block, args.seed)
        blocks: object = synthetic
        if args.via_parquet:
            started = time.perf_counter()
            write_parquet(synthetic, scratch / "shards")
            blocks = ParquetVectorBlocks(scratch / "shards", rows_per_block=args.block)
            print(f"Parquet shards written: {time.perf_counter() - started:.1f} s", flush=True)
        blocks = Logged(blocks, -(-args.vectors // args.block))
        nlist = args.nlist or int(np.sqrt(args.vectors))
        started = time.perf_counter()
        index = build_ivfpq(blocks, args.out or scratch / "index", IvfPqSettings(nlist=nlist, subquantizers=args.m, seed=args.seed),
                            source="bench/index_scale.py synthetic")
        build = time.perf_counter() - started
        build_rss = peak_rss_gb()
        print(f"built: {build:.1f} s (training {index.manifest['train_seconds']:.1f} s)  peak RSS so far {build_rss:.2f} GB", flush=True)
        queries = synthetic.draw(args.queries, 0)
        started = time.perf_counter()
        _, exact = exact_top_k(queries, blocks, 10)
        truth = time.perf_counter() - started
        print(f"exact top 10, block by block: {truth:.1f} s", flush=True)
        sweep = []
        default = index.manifest["nprobe"]
        for nprobe in sorted(set(args.nprobe or [max(1, nlist // 64), max(1, nlist // 16)]) - {default}) + [default]:
            index.nprobe = nprobe
            started = time.perf_counter()
            _, rows = index.search(queries, 10)
            sweep.append((nprobe, recall_against_exact(rows, exact), args.queries / (time.perf_counter() - started)))
            print(f"nprobe {nprobe:5d}: recall@10 {sweep[-1][1]:.4f}  {sweep[-1][2]:,.0f} queries/s", flush=True)
        folder = index.folder
        disk = sum(f.stat().st_size for f in folder.iterdir()) / 1024**3
        peak = peak_rss_gb()

        print(f"vectors: {args.vectors:,} x {args.dim}  blocks of {args.block:,}  source: {'Parquet shards' if args.via_parquet else 'generated'}"
              f"  faiss threads: {faiss.omp_get_max_threads()}  cpus: {os.cpu_count()}")
        print(f"index: IVF{nlist},PQ{args.m}x{index.manifest['bits']} ({index.manifest['code_bytes']} bytes a vector), "
              f"default nprobe {index.manifest['nprobe']}, {disk:.2f} GB on disk")
        print(f"build time:                         {build:.1f} s")
        print(f"exact top 10 (knn_ground_truth):    {truth:.1f} s")
        for nprobe, recall, rate in sweep:
            print(f"nprobe {nprobe:5d}: recall@10 vs exact {recall:.4f}, {rate:,.0f} queries/s (batch of {args.queries})")
        print(f"peak RSS: {peak:.2f} GB (after the build {build_rss:.2f} GB)")
        print(f"peak RSS / bound: {peak / args.bound_gb:.2f} (target <= 1.0, bound {args.bound_gb} GB); "
              f"recall@10 vs exact {sweep[-1][1]:.4f} at nprobe {sweep[-1][0]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
