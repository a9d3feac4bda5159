"""How fast is `harness eval`? Measured in one run, on one model and one dataset:

1. the first `harness eval` (cold embedding cache) against a bare `model.encode` of the
   corpus and the queries: encoding is the physical floor on CPU (target: at most 1.1x);
2. the first `harness eval` against `mteb.evaluate` on the same local data (target: at
   most 1.0x);
3. a repeated `harness eval` against the first (target: at least 20x faster);
4. the fixed cost of a tiny `harness eval` (process start, imports, ranx kernels);
5. the MTEB suite against `mteb.evaluate` directly, cold and repeated (bench/mteb_speed.py).

Usage: python bench/eval_speed.py [--data DIR]   (default: the demo dataset, written first)
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
from adapters.models import resolve_model_name
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


def mteb_direct(data: Path, split: str, cache: Path) -> float | None:
    try:
        from bench import mteb_speed
    except ImportError:
        return None
    return mteb_speed.time_mteb_evaluate(data, split, cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="A BEIR folder (default: the demo dataset)")
    parser.add_argument("--split", default="test")
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
    direct = mteb_direct(data, args.split, scratch / "mteb-cache")

    print(f"data: {data}  split: {args.split}  model: all-MiniLM-L6-v2  cpus: {os.cpu_count()}")
    print(f"fixed cost of a tiny harness eval (bm25, 9 docs): {fixed:.1f} s")
    print(f"bare model.encode of corpus + queries:            {bare:.1f} s")
    print(f"first harness eval (cold cache):                  {first:.1f} s")
    print(f"repeated harness eval (warm cache):               {repeat:.1f} s  -> {first / repeat:.1f}x faster (target >= 20x)")
    if direct is not None:
        print(f"mteb.evaluate on the same local task:             {direct:.1f} s  -> harness/mteb = {first / direct:.2f} (target <= 1.0)")
        try:
            from bench import mteb_speed

            mteb_speed.main([f"--data={data}"])
        except (ImportError, AttributeError, SystemExit) as exc:
            print(f"MTEB suite bench skipped: {exc}")
    print(f"first harness eval / bare encode: {first / bare:.2f} (target <= 1.1)")


if __name__ == "__main__":
    main()
