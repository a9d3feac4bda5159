"""How fast is the MTEB suite? Measured in one process, on one model and one local task:

1. the suite cold (empty result and embedding caches) against calling ``mteb.evaluate``
   directly on the same local task with the bare SentenceTransformer (target: at most 1.05x);
2. the suite repeated on the same caches against the suite cold (target: at least 20x faster:
   mteb's result cache answers, per-query scores come from the kept predictions).

Imports, the model load and ranx's kernels are warmed up first: they are paid once per
process by every ``harness eval`` whatever its suites. Encoding dominates and varies by a
third between runs on a shared CPU: compare the ratios printed here, measured in one run.

Usage: python bench/mteb_speed.py [--data DIR] [--split test] [--rounds N]
       (default data: the demo dataset, written to a scratch folder first)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HARNESS_QUIET", "1")


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mteb").setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()


def _warm_up(scratch: Path) -> None:
    """Imports, model load, first forward pass, ranx's kernels for every code path: fixed
    costs of a process (any ``harness eval`` pays them once, whatever its suites), paid here
    by running both sides once on a 9-document dataset."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import write_beir

    tiny = write_beir(scratch / "warm-up-data")
    time_mteb_evaluate(tiny, "test", scratch / "warm-up-direct")
    time_suite(tiny, "test", scratch / "warm-up-suite")
    time_suite(tiny, "test", scratch / "warm-up-suite")


def time_mteb_evaluate(data: Path, split: str, cache: Path) -> float:
    """Seconds for ``mteb.evaluate`` with the bare MiniLM on ``data`` as a local task (cold)."""
    import mteb

    from harness.adapters.models import load_sentence_transformer, resolve_model_name
    from harness.data import load_dataset
    from harness.suites.mteb_local import local_task

    _quiet()
    dataset = load_dataset(data)
    model = load_sentence_transformer(resolve_model_name("default"))
    task = local_task(dataset, split)
    started = time.perf_counter()
    result = mteb.evaluate(
        model,
        task,
        cache=mteb.ResultCache(cache_path=cache),
        encode_kwargs={"batch_size": 32, "show_progress_bar": False},
        show_progress_bar=False,
        co2_tracker=False,
    )
    elapsed = time.perf_counter() - started
    time_mteb_evaluate.last_score = result.task_results[0].get_score()  # type: ignore[attr-defined]
    return elapsed


def time_suite(data: Path, split: str, cache: Path) -> tuple[float, object]:
    """Seconds for the MTEB suite (``mteb:local``) with the ``dense`` retriever, and its result."""
    from harness.adapters.dense import DenseRetriever
    from harness.data import load_dataset
    from harness.metrics import DEFAULT_METRICS
    from harness.suites.base import EvalContext
    from harness.suites.mteb import MTEBSuite

    _quiet()
    dataset = load_dataset(data)
    started = time.perf_counter()
    context = EvalContext(
        dataset=dataset,
        retrievers={"dense": DenseRetriever(cache_dir=cache)},
        metrics=list(DEFAULT_METRICS),
        cache_dir=cache,
        default_split=split,
    )
    result = MTEBSuite.parse("local").evaluate(context)
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="A BEIR folder (default: the demo dataset)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rounds", type=int, default=1, help="cold measurements of each side, alternated (median kept)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="mteb-speed-"))
    data = args.data
    if data is None:
        from harness.data.demo import write_demo_dataset

        data = write_demo_dataset(scratch / "demo")
    from harness.data import load_dataset

    dataset = load_dataset(data)
    queries = len(dataset.split(args.split).qrels)

    started = time.perf_counter()
    _warm_up(scratch)
    warm = time.perf_counter() - started

    cold_suite, cold_direct = [], []
    for round_ in range(args.rounds):
        seconds, result = time_suite(data, args.split, scratch / f"suite-{round_}")
        cold_suite.append(seconds)
        cold_direct.append(time_mteb_evaluate(data, args.split, scratch / f"direct-{round_}"))
    repeated = [time_suite(data, args.split, scratch / "suite-0")[0] for _ in range(3)]
    info = next(iter(result.details["tasks"].values()))  # type: ignore[attr-defined]
    suite_cold, direct_cold, repeat = statistics.median(cold_suite), statistics.median(cold_direct), statistics.median(repeated)

    print(f"data: {data}  split: {args.split}  {len(dataset.corpus)} docs, {queries} queries  model: all-MiniLM-L6-v2  cpus: {os.cpu_count()}")
    print(f"warm-up (imports, model, ranx kernels on 9 docs; not compared): {warm:.1f} s")
    print(f"mteb.evaluate directly on the local task (cold):            {direct_cold:.1f} s  nDCG@10 {time_mteb_evaluate.last_score:.4f}")  # type: ignore[attr-defined]
    print(f"MTEB suite (mteb:local, cold caches):                       {suite_cold:.1f} s  nDCG@10 {info['main_score']['dense']:.4f}")
    print(f"MTEB suite repeated (mteb result cache + kept predictions): {repeat:.2f} s")
    print(f"suite cold / mteb.evaluate: {suite_cold / direct_cold:.3f} (target <= 1.05)")
    print(f"suite cold / suite repeated: {suite_cold / repeat:.0f}x faster (target >= 20x)")


if __name__ == "__main__":
    main()
