"""``harness embed``: a corpus's document vectors as Parquet shards that the embedding
cache, and so ``dense``, ``mine`` and the gate, read (``--cache EMB_DIR``).

The vectors are those ``dense`` itself computes for the same spec (its model, document
prompt, maximum length and normalisation: both engines call ``DenseRetriever``'s own
encoding), so a shard and an in-process encoding are interchangeable. Two engines:

- ``local``: this process, one shard every ``SHARD_ROWS`` documents;
- ``spark``: pyspark's ``predict_batch_udf``, the model loaded once per Python worker of
  each executor, which checks the model it loaded has the driver's fingerprint.

A re-run reads the (doc id, text key) pairs already in ``EMB_DIR/vectors`` and encodes
only the documents that are new or whose text changed, into new shards; rows of an old
text stay (they are counted as stale) and are harmless: the cache looks vectors up by text.
Shards are written under hidden names and renamed into place, so a killed run leaves
only whole shards, and the next run encodes what it had not finished.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.cache import ShardFolder, text_key
from harness.errors import HarnessError

ENGINES = ("local", "spark")
SHARD_ROWS = 50_000  # a local shard's rows: what a killed local run loses at most
SPARK_STAGING = ".spark-staging-"  # Spark's own output folder, inside EMB_DIR, until its files are renamed into place
ERROR_MARKER = "harness embed:"  # how an executor's error is found again in Spark's exception text


@dataclass
class EmbedSummary:
    folder: Path
    documents: int
    kept: int
    encoded: int
    stale: int
    shards: list[Path]
    backend: str
    fingerprint: str
    seconds: float

    def line(self) -> str:
        return (f"{self.folder}: {self.documents} documents, {self.kept} already encoded, {self.encoded} encoded "
                f"({self.backend}) into {len(self.shards)} new shard(s) in {self.seconds:.1f} s; {self.stale} rows of "
                f"changed or removed documents kept; model fingerprint {self.fingerprint}")


def dense_spec(model: str) -> str:
    """``--model``: a dense spec (``dense:MODEL(max_len=128)``) or a model folder or hub name."""
    return model if model == "dense" or model.startswith(("dense:", "dense(")) else f"dense:{model}"


def embed_corpus(data: str | Path, model: str, out: str | Path, engine: str = "local",
                 spark_master: str | None = None) -> EmbedSummary:
    from harness.adapters.dense import DenseRetriever
    from harness.adapters.spec import Spec
    from harness.data import load_dataset

    if engine not in ENGINES:
        raise HarnessError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if spark_master is not None and engine != "spark":
        raise HarnessError("--spark-master is for --engine spark")
    spec = dense_spec(model)
    out = Path(out)
    # the identity memo goes into EMB_DIR too, so an evaluation with --cache EMB_DIR need not load the model
    retriever = DenseRetriever.from_spec(Spec.parse(spec), out)
    dataset = load_dataset(data)
    started = time.perf_counter()
    fingerprint, max_seq_length, _ = retriever.identity
    namespace = (fingerprint, retriever.doc_prompt, max_seq_length)
    shards = ShardFolder(out)
    shards.clear_leftovers()
    for staging in out.glob(f"{SPARK_STAGING}*"):
        shutil.rmtree(staging, ignore_errors=True)
    present = shards.pairs(*namespace)
    current = {(doc_id, text_key(doc.content)) for doc_id, doc in dataset.corpus.items()}
    pending = [(doc_id, key, dataset.corpus[doc_id].content) for doc_id, key in sorted(current - present)]
    if engine == "local" or not pending:
        written = [shards.write(*_encoded_chunk(retriever, pending[start:start + SHARD_ROWS]), namespace, backend="local")
                   for start in range(0, len(pending), SHARD_ROWS)]
    else:
        written = _encode_on_spark(spec, namespace, pending, out, spark_master, retriever.batch_size)
    return EmbedSummary(folder=shards.folder, documents=len(current), kept=len(current & present), encoded=len(pending),
                        stale=len(present - current), shards=written, backend=engine, fingerprint=fingerprint,
                        seconds=time.perf_counter() - started)


def _encoded_chunk(retriever: Any, rows: list[tuple[str, str, str]]) -> tuple[list[str], list[str], np.ndarray]:
    from harness.progress import enabled

    vectors = retriever._encode([text for _, _, text in rows], retriever.doc_prompt, show_progress=enabled())
    return [doc_id for doc_id, _, _ in rows], [key for _, key, _ in rows], vectors


def make_predict_fn(spec: str, expected_fingerprint: str) -> Any:
    """Run on each executor's Python worker once: load the model, check it is the driver's."""
    from harness.adapters.dense import DenseRetriever
    from harness.adapters.models import fingerprint
    from harness.adapters.spec import Spec

    retriever = DenseRetriever.from_spec(Spec.parse(spec), None)
    found = fingerprint(retriever.model)
    if found != expected_fingerprint:
        raise RuntimeError(f"{ERROR_MARKER} {spec} loads with fingerprint {found} on this executor, not the driver's "
                           f"{expected_fingerprint}: give every executor the same model files")

    def predict(texts: np.ndarray) -> np.ndarray:
        return retriever._encode(texts.tolist(), retriever.doc_prompt, show_progress=False)

    return predict


def _encode_on_spark(spec: str, namespace: tuple[str, str, int], pending: list[tuple[str, str, str]], out: Path,
                     master: str | None, batch_size: int) -> list[Path]:
    """Encode ``pending`` on Spark into Parquet in a staging folder of EMB_DIR, then rename
    each of Spark's files into ``EMB_DIR/vectors`` (EMB_DIR must be a path every executor
    can write: local mode, or a file system mounted alike on the cluster)."""
    import pyarrow.parquet as pq
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    from harness.progress import enabled

    if master is None or master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local workers run this interpreter
    created = SparkSession.getActiveSession() is None
    builder = (SparkSession.builder.appName("harness-embed").config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", str(enabled()).lower()))  # no progress bar into a log
    session = (builder.master(master) if master else builder).getOrCreate()
    fingerprint, prompt, max_seq_length = namespace
    token = uuid.uuid4().hex
    staging = out / f"{SPARK_STAGING}{token}"
    try:
        frame = session.createDataFrame(pending, schema="doc_id string, text_key string, text string")
        partitions = max(1, min(session.sparkContext.defaultParallelism, len(pending) // batch_size or 1))
        encode = predict_batch_udf(partial(make_predict_fn, spec, fingerprint), return_type=ArrayType(FloatType()),
                                   batch_size=batch_size)
        frame = frame.repartition(partitions).select(
            "doc_id", "text_key", F.lit(fingerprint).alias("fingerprint"), F.lit(prompt).alias("prompt"),
            F.lit(max_seq_length).cast("int").alias("max_seq_length"), F.lit("spark").alias("backend"),
            encode("text").alias("vector"),
        )
        out.mkdir(parents=True, exist_ok=True)
        try:
            frame.write.parquet(staging.resolve().as_uri())
        except Exception as exc:
            raise HarnessError(_spark_failure(exc)) from exc
        parts = sorted(staging.glob("part-*.parquet"))
        stored = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
        if stored != len(pending):
            raise HarnessError(f"{out}: Spark wrote {stored} rows for {len(pending)} documents")
        shards = ShardFolder(out)
        written = [shards.place(part, f"part-{token}-{index:05d}.parquet") for index, part in enumerate(parts)]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            session.stop()
    return written


def _spark_failure(exc: Exception) -> str:
    """One line for a failed Spark job: an executor's own message where there is one."""
    lines = str(exc).splitlines()
    own = next((line[line.index(ERROR_MARKER) + len(ERROR_MARKER):].strip() for line in lines if ERROR_MARKER in line), None)
    return own or f"Spark failed: {next((line.strip() for line in lines if line.strip()), type(exc).__name__)}"
