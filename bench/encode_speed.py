"""How much faster do the encoding backends encode, and what do they cost in quality?

In one process, on one BEIR folder (a seeded subset of its corpus that keeps every document
judged for the split, with --docs): PyTorch, OpenVINO fp32 and OpenVINO static int8
(calibrated on the subset's own texts, as ``dense(backend=openvino,quant=int8)`` does) each
encode the corpus in --rounds chunks, alternating, the order rotated every round, so that a
machine's drift (other jobs, turbo) falls on every backend alike. Then, from those very
vectors and each backend's own query vectors: nDCG@10 on the split's judged queries (exact
search) and the cosine of each document vector to PyTorch's (mean / min). ONNX is not
measured: sentence-transformers' ONNX backend (optimum-onnx) cannot be installed next to
transformers 5 (adapters/backends.py).

With --eval, also a cold-cache ``harness eval`` of ``dense``, ``dense(backend=openvino)`` and
``dense(backend=openvino,quant=int8)`` on the same folder (export and quantisation included),
each in a new process with a cache of its own; with --keep DIR their result folders are kept
(DIR/eval-torch, DIR/eval-fp32, DIR/eval-int8) for ``harness compare --baseline dense``.
The machine's load average is printed before and after (timings under load are ratios only).

Needs the openvino extra: ``make openvino``, then
    .venv-openvino/bin/python bench/encode_speed.py --data DIR [--docs 1000] [--eval [--keep DIR]]
The last line prints the speed ratios to PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARMS = {"torch": "dense", "openvino fp32": "dense(backend=openvino)", "openvino int8": "dense(backend=openvino,quant=int8)"}


def write_subset(data: Path, split: str, docs: int, seed: int, out: Path) -> Path:
    """A BEIR folder of ``docs`` documents: every one judged in ``split``, the rest a seeded sample."""
    from harness.data import load_dataset

    dataset = load_dataset(data)
    judged = {doc for grades in dataset.split(split).qrels.values() for doc in grades}
    others = sorted(set(dataset.corpus) - judged)
    keep = judged | set(random.Random(seed).sample(others, max(0, min(len(others), docs - len(judged)))))
    (out / "qrels").mkdir(parents=True)
    with open(data / "corpus.jsonl", encoding="utf-8") as source, open(out / "corpus.jsonl", "w", encoding="utf-8") as target:
        target.writelines(line for line in source if line.strip() and json.loads(line)["_id"] in keep)
    (out / "queries.jsonl").write_bytes((data / "queries.jsonl").read_bytes())
    qrels = data / "qrels" / f"{split}.tsv"
    (out / "qrels" / f"{split}.tsv").write_bytes(qrels.read_bytes())
    return out


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def cpu_record(provenance: dict) -> str:
    """The CPU and the vector extensions the backends' speed depends on (docs/scaling.md: the
    targets were set on a CPU with AVX-512 VNNI and BF16; on plain AVX2 int8 gains nothing),
    from a ``harness.provenance.collect()`` record."""
    import openvino

    device, extensions = provenance["device"], provenance["machine"]["vector_extensions"]
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return (f"{device.get('name')}, vector extensions {', '.join(extensions) if extensions else 'unknown'}; "
            f"OpenVINO CPU capabilities {', '.join(capabilities)}")


def timed_eval(data: Path, split: str, retriever: str, folder: Path) -> float:
    """A ``harness eval`` of one arm with a cache of its own (cold), in a new process, as a user runs it."""
    env = {**os.environ, "HARNESS_CACHE": str(folder / "cache")}
    command = [sys.executable, "-m", "harness", "eval", "--data", str(data), "--split", split, "--retriever", retriever,
               "--out", str(folder / "out")]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"harness eval --retriever {retriever} failed:\n{done.stderr}")
    return time.perf_counter() - started


def ndcg_at_10(qrels: dict[str, dict[str, int]], query_ids: list[str], queries: np.ndarray, documents: np.ndarray,
               doc_ids: list[str]) -> float:
    from harness.adapters.base import top_k
    from harness.metrics import per_query

    scores = queries @ documents.T
    run = {}
    for query_id, row in zip(query_ids, scores):
        best = np.argpartition(-row, min(100, len(row) - 1))[:100]
        run[query_id] = top_k({doc_ids[i]: float(row[i]) for i in best}, 100)
    values = per_query(qrels, run, ["ndcg@10"])["ndcg@10"]
    return float(np.mean([values[q] for q in qrels]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="A BEIR folder (e.g. SciFact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--docs", type=int, default=0, help="a subset of this many documents (0: the whole corpus)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval", action="store_true", help="also time a cold-cache harness eval of each backend")
    parser.add_argument("--keep", type=Path, help="with --eval: keep the evaluations' folders here (for harness compare)")
    args = parser.parse_args()
    load_before = load_average()

    from harness.adapters import build_retriever
    from harness.adapters.backends import calibration_sample, load_backend_model
    from harness.adapters.models import fingerprint, resolve_model_name
    from harness.data import load_dataset
    from harness.errors import HarnessError
    from harness.provenance import collect

    scratch = Path(tempfile.mkdtemp(prefix="encode-speed-"))
    data = write_subset(args.data, args.split, args.docs, args.seed, scratch / "data") if args.docs else args.data
    dataset = load_dataset(data)
    doc_ids = list(dataset.corpus)
    texts = [dataset.corpus[d].content for d in doc_ids]
    qrels = dataset.split(args.split).qrels
    query_ids = list(qrels)
    query_texts = [dataset.queries[q].text for q in query_ids]

    models, export_seconds = {}, {}
    try:
        for name, spec in ARMS.items():
            arm = build_retriever(spec, scratch / "cache")
            started = time.perf_counter()
            if arm.backend.is_torch:
                models[name] = arm.source_model
            else:
                source = arm.source_model
                calibration = calibration_sample(texts) if arm.backend.quantisation else None
                models[name] = load_backend_model(source, resolve_model_name(arm.model_name), arm.backend, fingerprint(source), calibration,
                                                  scratch / "cache")
            export_seconds[name] = time.perf_counter() - started
    except HarnessError as error:
        raise SystemExit(f"error: {error}")

    chunks = np.array_split(np.arange(len(texts)), args.rounds)
    seconds = dict.fromkeys(ARMS, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARMS}
    names = list(ARMS)
    for round_index, chunk in enumerate(chunks):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            started = time.perf_counter()
            encoded = models[name].encode([texts[i] for i in chunk], batch_size=args.batch, normalize_embeddings=True,
                                          convert_to_numpy=True, show_progress_bar=False)
            seconds[name] += time.perf_counter() - started
            parts[name].append(encoded)
    documents = {name: np.vstack(chunks_of_name) for name, chunks_of_name in parts.items()}
    # the speeds first: what follows (queries, ranx's first call) is slow on a loaded machine
    print("encoded: " + ", ".join(f"{name} {len(texts) / seconds[name]:.1f} docs/s ({seconds['torch'] / seconds[name]:.2f}x)"
                                  for name in ARMS) + f"; load average: {load_average()}", flush=True)

    print(f"data: {args.data} ({len(texts)} documents{' subset' if args.docs else ''}, {len(query_ids)} {args.split} queries)"
          f"  model: all-MiniLM-L6-v2  max_seq_length: {models['torch'].max_seq_length}  batch: {args.batch}"
          f"  rounds: {args.rounds}  cpus: {os.cpu_count()}  load average before: {load_before}")
    provenance = collect()
    print(f"cpu: {cpu_record(provenance)}")
    reference = documents["torch"]
    ndcg = {}
    for name in ARMS:
        queries = models[name].encode(query_texts, batch_size=args.batch, normalize_embeddings=True, convert_to_numpy=True,
                                      show_progress_bar=False)
        ndcg[name] = ndcg_at_10(qrels, query_ids, queries, documents[name], doc_ids)
        cosine = np.sum(documents[name] * reference, axis=1)
        print(f"{name:14s} {len(texts) / seconds[name]:6.1f} docs/s ({len(texts) / seconds[name] / (os.cpu_count() or 1):.1f} a core)  "
              f"{seconds['torch'] / seconds[name]:5.2f}x torch  "
              f"nDCG@10 {ndcg[name]:.4f} ({ndcg[name] - ndcg['torch']:+.4f})  cosine to torch mean {cosine.mean():.5f} "
              f"min {cosine.min():.5f}  load/export {export_seconds[name]:.1f} s")
    print(f"load average after encoding: {load_average()}")
    if args.eval:
        keep = args.keep or scratch
        cold = {name: timed_eval(data, args.split, ARMS[name], keep / f"eval-{name.split()[-1]}")
                for name in ("torch", "openvino int8", "openvino fp32")}
        print(f"cold-cache harness eval: torch {cold['torch']:.1f} s, int8 {cold['openvino int8']:.1f} s "
              f"-> {cold['openvino int8'] / cold['torch']:.2f}x (target <= 0.4), fp32 {cold['openvino fp32']:.1f} s "
              f"-> {cold['openvino fp32'] / cold['torch']:.2f}x (export included; results in {keep}); "
              f"load average after: {load_average()}")
    print(f"speed vs torch: openvino fp32 {seconds['torch'] / seconds['openvino fp32']:.2f}x (target >= 2), "
          f"openvino int8 {seconds['torch'] / seconds['openvino int8']:.2f}x (target >= 3) "
          f"on {', '.join(provenance['machine']['vector_extensions'] or ['unknown extensions'])}")


if __name__ == "__main__":
    main()
