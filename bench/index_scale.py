"""Does the IVF-PQ index search past memory? Measured in one run on synthetic vectors:

1. build time of the on-disk IVF-PQ index (`harness.adapters.faiss_index.build_ivfpq`)
   from blocks of 384-d vectors that never sit in memory together (seeded, generated
   block by block), wall and CPU seconds;
2. peak resident memory of the process (ru_maxrss: faiss's own allocations and the
   memory-mapped lists and full vectors touched by re-ranking included), against a bound
   (default 4 GB, the issue's bound at 10M);
3. recall@10 against the exact top 10 (`knn_ground_truth`, block by block) and queries/s of
   a batch search, for each nprobe (the index's default last) and refine (0: the PQ codes'
   own ranking; R: the codes' top 10*R re-scored on the memory-mapped full vectors,
   `faiss.IndexRefine`).

Two synthetic sets (`--data`, repeatable; default both, each its own index):

- `isotropic`: a mixture of 4,096 random centres with isotropic Gaussian noise (norm 0.6),
  normalised; queries are fresh draws of the mixture. Within a cluster the neighbours are
  set by noise spread evenly over all 384 dimensions: the hard case for product
  quantisation, and unlike embeddings.
- `embedding-like`: the same centres, with noise of the same total norm whose variance
  decays as 1/j over the directions j of a seeded random rotation (embeddings' spectra
  decay: most of the spread lies in a few directions); queries are documents of the set
  moved by half that noise (a query near the documents it should find).

Usage: python bench/index_scale.py [--vectors 1000000] [--data isotropic|embedding-like]
       [--nprobe N ...] [--refine R ...] [--via-parquet] [--out DIR]
       (--via-parquet writes the blocks as Parquet shards first and builds from them)
The last line prints the peak memory over the bound (target <= 1.0) and, for each set, the
recall@10 at the default nprobe without and with re-ranking.
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
    """``isotropic``: ``vectors`` seeded vectors in blocks, the same ones on every pass:
    each is one of ``clusters`` random centres plus isotropic Gaussian noise, normalised.
    Queries are fresh draws (stream 0, not in the set)."""

    name = "isotropic"

    def __init__(self, vectors: int, dimension: int, block: int, seed: int, clusters: int = 4096, noise: float = 0.6) -> None:
        self.vectors, self.dimension, self.block, self.seed, self.noise = vectors, dimension, block, seed, noise
        centres = np.random.default_rng(seed).standard_normal((clusters, dimension), dtype=np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def noise_of(self, random: np.random.Generator, rows: int) -> np.ndarray:
        return random.standard_normal((rows, self.dimension), dtype=np.float32) * (self.noise / np.sqrt(self.dimension))

    def draw(self, rows: int, stream: int) -> np.ndarray:
        random = np.random.default_rng([self.seed, stream])
        vectors = self.centres[random.integers(0, len(self.centres), rows)]
        vectors += self.noise_of(random, rows)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def __iter__(self):
        for start in range(0, self.vectors, self.block):
            rows = min(self.block, self.vectors - start)
            yield [f"v{row}" for row in range(start, start + rows)], self.draw(rows, 1 + start // self.block)

    def queries(self, count: int) -> np.ndarray:
        return self.draw(count, 0)


class EmbeddingLikeBlocks(SyntheticBlocks):
    """``embedding-like``: the centres of ``isotropic`` with anisotropic noise of the same
    expected norm (variance 1/j along direction j of a seeded rotation); queries are
    seeded documents of the set plus half such noise, normalised."""

    name = "embedding-like"

    def __init__(self, vectors: int, dimension: int, block: int, seed: int, **kwargs) -> None:
        super().__init__(vectors, dimension, block, seed, **kwargs)
        random = np.random.default_rng([seed, 10**6])
        rotation, _ = np.linalg.qr(random.standard_normal((dimension, dimension)))
        variance = 1.0 / np.arange(1, dimension + 1)
        scale = np.sqrt(variance / variance.sum()) * self.noise
        self.mixing = np.ascontiguousarray((scale[:, None] * rotation.T).astype(np.float32))  # z @ mixing

    def noise_of(self, random: np.random.Generator, rows: int) -> np.ndarray:
        return random.standard_normal((rows, self.dimension), dtype=np.float32) @ self.mixing

    def queries(self, count: int) -> np.ndarray:
        random = np.random.default_rng([self.seed, 0])
        sources = np.sort(random.choice(self.vectors, count, replace=False))
        documents = np.empty((count, self.dimension), dtype=np.float32)
        for block in np.unique(sources // self.block):  # regenerate the blocks the source documents are in
            start = int(block) * self.block
            rows = min(self.block, self.vectors - start)
            chosen = (sources // self.block) == block
            documents[chosen] = self.draw(rows, 1 + int(block))[sources[chosen] - start]
        moved = documents + 0.5 * self.noise_of(random, count)
        return moved / np.linalg.norm(moved, axis=1, keepdims=True)


DATA = {"isotropic": SyntheticBlocks, "embedding-like": EmbeddingLikeBlocks}


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


class AnonymousPeak:
    """The peak of the process's anonymous resident memory (``RssAnon`` in /proc/self/status,
    sampled every 20 ms by a daemon thread): what it holds itself (faiss's allocations, numpy
    arrays), without the pages of memory-mapped files. ``ru_maxrss`` counts those too, and a
    re-ranking search maps up to 64 KB of ``vectors.faiss`` around every candidate it reads
    (the kernel's fault-around, when the pages are in the page cache): clean file pages that
    the kernel drops under memory pressure, so they say how much page cache a search touched,
    not how much memory it needs (docs/scaling.md: the 10M run in a 4 GB memory cgroup).
    Linux only: elsewhere the peak is None."""

    def __init__(self) -> None:
        import threading

        self.kilobytes: int | None = self._read()
        if self.kilobytes is not None:
            threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def _read() -> int | None:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def _sample(self) -> None:
        while True:
            self.kilobytes = max(self.kilobytes or 0, self._read() or 0)
            time.sleep(0.02)

    def gb(self) -> float | None:
        return None if self.kilobytes is None else self.kilobytes / 1024**2


ANONYMOUS = AnonymousPeak()


def memory_so_far() -> str:
    anonymous = ANONYMOUS.gb()
    return f"peak RSS so far {peak_rss_gb():.2f} GB" + ("" if anonymous is None else f" (anonymous {anonymous:.2f} GB)")


class Clock:
    """Wall and process CPU seconds since it started (CPU counts every thread)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def measure(synthetic: SyntheticBlocks, args: argparse.Namespace, scratch: Path) -> dict:
    from harness.adapters.faiss_index import IvfPqSettings, ParquetVectorBlocks, build_ivfpq, exact_top_k, recall_against_exact

    print(f"== {synthetic.name}: {args.vectors:,} x {args.dim}, load {load()}", flush=True)
    blocks: object = synthetic
    if args.via_parquet:
        clock = Clock()
        write_parquet(synthetic, scratch / f"shards-{synthetic.name}")
        blocks = ParquetVectorBlocks(scratch / f"shards-{synthetic.name}", rows_per_block=args.block)
        print(f"Parquet shards written: {clock.stop()[0]:.1f} s", flush=True)
    blocks = Logged(blocks, -(-args.vectors // args.block))
    nlist = args.nlist or int(np.sqrt(args.vectors))
    clock = Clock()
    index = build_ivfpq(blocks, (args.out / synthetic.name) if args.out else scratch / f"index-{synthetic.name}",
                        IvfPqSettings(nlist=nlist, subquantizers=args.m, seed=args.seed), source=f"bench/index_scale.py {synthetic.name}")
    build = clock.stop()
    build_rss = peak_rss_gb()
    print(f"built: {build[0]:.1f} s wall, {build[1]:.1f} s CPU (training {index.manifest['train_seconds']:.1f} s)  "
          f"{memory_so_far()}  load {load()}", flush=True)
    clock = Clock()
    queries = synthetic.queries(args.queries)
    _, exact = exact_top_k(queries, blocks, 10)
    truth = clock.stop()
    print(f"queries and exact top 10, block by block: {truth[0]:.1f} s wall, {truth[1]:.1f} s CPU  "
          f"{memory_so_far()}", flush=True)
    sweep = []
    default = index.manifest["nprobe"]
    for nprobe in sorted(set(args.nprobe or [max(1, nlist // 64), max(1, nlist // 16)]) - {default}) + [default]:
        for refine in args.refine or [0, 10]:
            index.nprobe, index.refine = nprobe, refine
            clock = Clock()
            _, rows = index.search(queries, 10)
            wall, cpu = clock.stop()
            sweep.append({"nprobe": nprobe, "refine": refine, "recall": recall_against_exact(rows, exact),
                          "qps": args.queries / wall, "qps_cpu": args.queries / max(cpu, 1e-9)})
            print(f"nprobe {nprobe:5d} refine {refine:3d}: recall@10 {sweep[-1]['recall']:.4f}  {sweep[-1]['qps']:,.0f} queries/s "
                  f"({sweep[-1]['qps_cpu']:,.0f} a CPU second)  {memory_so_far()}", flush=True)
    disk = {f.name: f.stat().st_size / 1024**3 for f in index.folder.iterdir()}
    return {"name": synthetic.name, "index": index, "nlist": nlist, "build": build, "build_rss": build_rss, "truth": truth,
            "sweep": sweep, "disk": disk, "default": default}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--block", type=int, default=50_000, help="vectors a block (what memory holds at once)")
    parser.add_argument("--data", choices=sorted(DATA), action="append", help="synthetic set (repeatable; default both)")
    parser.add_argument("--nlist", type=int, help="inverted lists (default: sqrt(vectors), as dense(index=ivf))")
    parser.add_argument("--m", type=int, default=48, help="PQ sub-quantizers (bytes a vector at 8 bits)")
    parser.add_argument("--nprobe", type=int, action="append", help="lists visited a query (repeatable)")
    parser.add_argument("--refine", type=int, action="append",
                        help="re-score the codes' top 10*R on the full vectors (repeatable; 0: none; default 0 and 10)")
    parser.add_argument("--bound-gb", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--via-parquet", action="store_true", help="write the blocks as Parquet shards and build from them")
    parser.add_argument("--out", type=Path, help="keep the index folders here (default: a temporary folder, removed)")
    args = parser.parse_args()

    import faiss

    scratch = Path(tempfile.mkdtemp(prefix="index-scale-"))
    started, load_before = Clock(), load()
    try:
        results = [measure(DATA[name](args.vectors, args.dim, args.block, args.seed), args, scratch)
                   for name in (args.data or ["isotropic", "embedding-like"])]
        peak = peak_rss_gb()
        total = started.stop()

        print(f"\nvectors: {args.vectors:,} x {args.dim}  blocks of {args.block:,}  source: {'Parquet shards' if args.via_parquet else 'generated'}"
              f"  faiss threads: {faiss.omp_get_max_threads()}  cpus: {os.cpu_count()}  load (1/5/15 min) before {load_before}, after {load()}")
        for result in results:
            manifest = result["index"].manifest
            disk = result["disk"]
            print(f"[{result['name']}] index: IVF{result['nlist']},PQ{args.m}x{manifest['bits']} ({manifest['code_bytes']} bytes a vector), "
                  f"default nprobe {result['default']}; on disk: lists {disk.get('lists.ivfdata', 0):.2f} GB, "
                  f"full vectors {disk.get('vectors.faiss', 0):.2f} GB")
            print(f"[{result['name']}] build time:                      {result['build'][0]:.1f} s wall, {result['build'][1]:.1f} s CPU "
                  f"(peak RSS after it {result['build_rss']:.2f} GB)")
            print(f"[{result['name']}] exact top 10 (knn_ground_truth): {result['truth'][0]:.1f} s wall, {result['truth'][1]:.1f} s CPU")
            for row in result["sweep"]:
                print(f"[{result['name']}] nprobe {row['nprobe']:5d} refine {row['refine']:3d}: recall@10 vs exact {row['recall']:.4f}, "
                      f"{row['qps']:,.0f} queries/s wall, {row['qps_cpu']:,.0f} a CPU second (batch of {args.queries})")
        anonymous = ANONYMOUS.gb()
        print(f"total: {total[0]:.1f} s wall, {total[1]:.1f} s CPU; peak RSS: {peak:.2f} GB (memory-mapped file pages included), "
              f"peak anonymous memory: {'unknown' if anonymous is None else f'{anonymous:.2f} GB'}")

        def at_default(result: dict) -> str:
            rows = [row for row in result["sweep"] if row["nprobe"] == result["default"]]
            return (f"{result['name']} " + " / ".join(f"{row['recall']:.4f}" for row in rows)
                    + f" (refine {' / '.join(str(row['refine']) for row in rows)})")

        held = peak if anonymous is None else anonymous
        print(f"peak {'RSS' if anonymous is None else 'anonymous memory'} / bound: {held / args.bound_gb:.2f} "
              f"(target <= 1.0, bound {args.bound_gb} GB; peak RSS with mapped file pages {peak / args.bound_gb:.2f}); recall@10 vs exact at "
              f"nprobe {results[-1]['default']}: " + "; ".join(at_default(result) for result in results))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
