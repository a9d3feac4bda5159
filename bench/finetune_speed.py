"""Fine-tuning throughput of the harness against a plain SentenceTransformerTrainer script,
and the peak memory of CachedMultipleNegativesRankingLoss at an effective batch of 256.

Both throughput arms train the same MiniLM on the same pairs with the same settings
(MultipleNegativesRankingLoss, batch 32, lr 2e-5, warm-up 10%, NO_DUPLICATES, seed 42,
one epoch), alternately in this one process (plain, harness, plain, harness, ...) so that
a shared, noisy CPU hits both alike. The harness arm is ``harness.train.bi_encoder.train_pass``
(what ``harness finetune`` runs), with its per-epoch validation and checkpointing. Both
arms are clocked the same way, inside the epoch (``step_timer``: batching, forward,
backward, optimiser); the harness's validation and checkpointing after each epoch are
reported on their own, as end-to-end pairs/s.

The memory arm runs in a fresh subprocess (peak RSS of that process, ``ru_maxrss``):
CachedMNRL, batch 256, mini-batch 32 (``--mini-batch``), texts up to 256 tokens, on SciFact
abstracts when ``../shared/datasets/scifact`` is there (long texts), else the pairs used above.

The last line printed is the ratio: harness pairs/s divided by plain pairs/s.

    python bench/finetune_speed.py [--data DIR] [--pairs 256] [--repeats 2] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HARNESS_QUIET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCIFACT = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "scifact"


def _pairs(data: Path, n: int, seed: int = 42):
    from harness.data import load_dataset
    from harness.train.pairs import training_data

    dataset = load_dataset(data)
    training = training_data(dataset, seed=seed, min_grade=1)
    return dataset, training, training.pairs[:n]


def plain_arm(model_path: str, pairs, max_len: int, workdir: Path) -> float:
    """The plain script: what a user would write with sentence-transformers alone."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = SentenceTransformer(model_path, device="cpu")
    model.max_seq_length = max_len
    dataset = Dataset.from_dict({"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir / "plain"), num_train_epochs=1, per_device_train_batch_size=32, learning_rate=2e-5,
        warmup_steps=0.1, batch_sampler=BatchSamplers.NO_DUPLICATES, seed=42, data_seed=42, report_to="none",
        save_strategy="no", eval_strategy="no", disable_tqdm=True, dataloader_pin_memory=False, logging_steps=10,
    )
    from harness.train.trainer import step_timer

    timer = step_timer()  # the same clock as the harness arm: time inside the epoch
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                         loss=MultipleNegativesRankingLoss(model), callbacks=[timer])
    trainer.train()
    return len(pairs) / timer.seconds


def harness_arm(model_path: str, pairs, max_len: int, workdir: Path, evaluator) -> tuple[float, float, float]:
    from harness.adapters.models import load_trainable_sentence_transformer
    from harness.train.bi_encoder import FinetuneConfig, pair_rows, train_pass

    model = load_trainable_sentence_transformer(model_path, max_len)
    config = FinetuneConfig(passes="in-batch", epochs=1, max_seq_length=max_len)
    started = time.perf_counter()
    record = train_pass(model, pair_rows(pairs), config, evaluator, workdir / f"harness-{time.time_ns()}", 1, with_negatives=False)
    total = time.perf_counter() - started
    return record["pairs_per_second"], len(pairs) / total, record["evaluation_seconds"]


def memory_arm(args: argparse.Namespace) -> dict:
    """Runs in a fresh process: peak RSS of CachedMNRL at batch 256."""
    from harness.adapters.models import load_trainable_sentence_transformer
    from harness.train.bi_encoder import FinetuneConfig, pair_rows, train_pass

    data = Path(args.memory_data)
    _, _, pairs = _pairs(data, 256 * args.memory_steps)
    model = load_trainable_sentence_transformer("default", 256)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    config = FinetuneConfig(passes="in-batch", loss="cmnrl", batch_size=256, mini_batch_size=args.mini_batch, epochs=1)
    with tempfile.TemporaryDirectory() as tmp:
        from harness.train.evaluators import make_retrieval_evaluator

        evaluator = make_retrieval_evaluator({"q": pairs[0].query}, {"q": {"d": 1}}, {"d": pairs[0].positive})
        started = time.perf_counter()
        record = train_pass(model, pair_rows(pairs), config, evaluator, Path(tmp), 1, with_negatives=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    return {"data": data.name, "pairs": len(pairs), "steps": record["steps"], "mini_batch": args.mini_batch,
            "peak_rss_gb": round(peak, 2), "rss_after_model_load_gb": round(before, 2),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="BEIR folder (default: the demo dataset, written to a temp folder)")
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--mini-batch", type=int, default=16)
    parser.add_argument("--memory-steps", type=int, default=1)
    parser.add_argument("--memory-data", default=str(SCIFACT) if SCIFACT.is_dir() else "")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_child:
        print(json.dumps(memory_arm(args)))
        return

    from harness.adapters.models import resolve_model_name

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = args.data
        if data is None:
            from harness.data.demo import write_demo_dataset

            data = write_demo_dataset(workdir / "demo")
        memory: dict | None = None
        if not args.skip_memory:
            memory_data = args.memory_data or str(data)
            child = subprocess.run(
                [sys.executable, __file__, "--memory-child", "--memory-data", memory_data, "--mini-batch", str(args.mini_batch),
                 "--memory-steps", str(args.memory_steps)],
                capture_output=True, text=True,
            )
            if child.returncode != 0:
                print(child.stderr[-2000:], file=sys.stderr)
                raise SystemExit("the memory arm failed")
            memory = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"CachedMNRL, effective batch 256 (mini-batch {memory['mini_batch']}), {memory['data']}: "
                  f"peak RSS {memory['peak_rss_gb']} GB (after loading the model {memory['rss_after_model_load_gb']} GB), "
                  f"{memory['steps']} step(s) in {memory['seconds']} s; target < 4 GB")
        if args.skip_speed:
            return
        dataset, training, pairs = _pairs(data, args.pairs)
        from harness.train.evaluators import make_retrieval_evaluator, validation_corpus

        corpus, _ = validation_corpus(dataset, training.validation_queries, training.validation_qrels, 300, 42, workdir / "cache")
        queries = dict(list(training.validation_queries.items())[:50])
        evaluator = make_retrieval_evaluator(queries, {q: training.validation_qrels[q] for q in queries}, corpus)
        model_path = resolve_model_name("default")
        plain, harness_train, harness_total, eval_seconds = [], [], [], []
        for repeat in range(args.repeats):
            plain.append(plain_arm(model_path, pairs, args.max_len, workdir))
            rate, total, seconds = harness_arm(model_path, pairs, args.max_len, workdir, evaluator)
            harness_train.append(rate), harness_total.append(total), eval_seconds.append(seconds)
            print(f"repeat {repeat + 1}: plain {plain[-1]:.2f} pairs/s, harness {rate:.2f} pairs/s training "
                  f"({total:.2f} pairs/s with validation and checkpoints, validation {seconds:.1f} s)")
        ratio = statistics.mean(harness_train) / statistics.mean(plain)
        print(f"{len(pairs)} pairs, batch 32, max {args.max_len} tokens, {args.repeats} alternating repeats: "
              f"plain {statistics.mean(plain):.2f} pairs/s, harness {statistics.mean(harness_train):.2f} pairs/s "
              f"(end to end {statistics.mean(harness_total):.2f} pairs/s); target ratio >= 0.95")
        print(f"ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
