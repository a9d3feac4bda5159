"""How fast is `harness eval`? Measured in one run, on one model and one dataset:

1. the first `harness eval` (cold embedding cache) against a bare `model.encode` of the
   corpus and the queries: encoding is the physical floor on CPU (target: at most 1.1x);
2. the first `harness eval` against `mteb.evaluate` on the same local data (target: at
   most 1.0x), both as a user runs them: a new process that imports, loads the model,
   encodes and scores (the in-process time of `mteb.evaluate` alone is printed too);
3. a repeated `harness eval` against the first (target: at least 20x faster);
4. the fixed cost of a tiny `harness eval` (process start, imports, ranx kernels);
5. with --mteb-suite, the MTEB suite against `mteb.evaluate` directly, cold and repeated
   (bench/mteb_speed.py; two more encodes of the corpus).

Usage: python bench/eval_speed.py [--data DIR] [--mteb-suite]
       (default data: the demo dataset, written first)
The last line prints the ratio of the first harness eval to the bare encode.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed_cli(*args: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} failed:\n{done.stderr}")
    return elapsed


def bare_encode(data: Path, split: str) -> float:
    """The floor: load the model, encode corpus and judged queries, nothing else."""
    code = f"""
import time, sys
sys.path.insert(0, {str(ROOT)!r})
started = time.perf_counter()
from sentence_transformers import SentenceTransformer
from harness.adapters.models import resolve_model_name
from harness.data import load_dataset
dataset = load_dataset({str(data)!r})
model = SentenceTransformer(resolve_model_name("default"), device="cpu")
model.encode([d.content for d in dataset.corpus.values()], batch_size=32, normalize_embeddings=True)
model.encode([dataset.queries[q].text for q in dataset.split({split!r}).qrels], batch_size=32, normalize_embeddings=True)
print(time.perf_counter() - started)
"""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def mteb_process(data: Path, split: str, cache: Path) -> tuple[float, float]:
    """``mteb.evaluate`` as a user runs it: a new process that imports mteb, loads the
    model and evaluates the local task. Returns (process seconds, in-process seconds of
    ``mteb.evaluate`` alone)."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from bench.mteb_speed import time_mteb_evaluate
print(time_mteb_evaluate(__import__("pathlib").Path({str(data)!r}), {split!r}, __import__("pathlib").Path({str(cache)!r})))
"""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return time.perf_counter() - started, float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="A BEIR folder (default: the demo dataset)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--mteb-suite", action="store_true", help="also run bench/mteb_speed.py on the same data")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="eval-speed-"))
    data = args.data
    if data is None:
        data = scratch / "demo"
        timed_cli("datasets", "demo", "--out", str(data))
    env = {**os.environ, "HARNESS_CACHE": str(scratch / "cache")}
    common = ["eval", "--data", str(data), "--retriever", "dense", "--split", args.split]

    tiny = scratch / "tiny"
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import write_beir

    write_beir(tiny)
    fixed = timed_cli("eval", "--data", str(tiny), "--retriever", "bm25", "--out", str(scratch / "o0"), env=env)
    bare = bare_encode(data, args.split)
    first = timed_cli(*common, "--out", str(scratch / "o1"), env=env)
    repeat = timed_cli(*common, "--out", str(scratch / "o2"), env=env)
    direct, direct_inside = mteb_process(data, args.split, scratch / "mteb-cache")

    print(f"data: {data}  split: {args.split}  model: all-MiniLM-L6-v2  cpus: {os.cpu_count()}")
    print(f"fixed cost of a tiny harness eval (bm25, 9 docs): {fixed:.1f} s")
    print(f"bare model.encode of corpus + queries:            {bare:.1f} s")
    print(f"first harness eval (cold cache):                  {first:.1f} s")
    print(f"repeated harness eval (warm cache):               {repeat:.1f} s  -> {first / repeat:.1f}x faster (target >= 20x)")
    print(f"mteb.evaluate in a new process:                   {direct:.1f} s  -> harness/mteb = {first / direct:.2f} (target <= 1.0)")
    print(f"  of which mteb.evaluate itself:                  {direct_inside:.1f} s")
    if args.mteb_suite:
        from bench import mteb_speed

        mteb_speed.main([f"--data={data}", f"--split={args.split}"])
    print(f"first harness eval / bare encode: {first / bare:.2f} (target <= 1.1)")


if __name__ == "__main__":
    main()
