"""``harness embed``."""

from __future__ import annotations

import click

from harness.cli.options import OutputPath, data_option, device_option


@click.command("embed")
@data_option
@click.option("--model", "model", default="default", show_default=True,
              help="A model folder or hub name, or a dense spec with its options: dense:MODEL(max_len=128,prompts=e5).")
@click.option("--out", "out", type=OutputPath(), required=True,
              help="The embeddings folder (EMB_DIR): Parquet shards in EMB_DIR/vectors; read with --cache EMB_DIR.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="Encode in this process, or on Spark with predict_batch_udf (the model loaded once per executor).")
@click.option("--spark-master", "spark_master",
              help="Spark master URL (local[4], spark://host:7077, yarn); default: the session spark-submit gives, else local[*].")
@device_option
def embed(data, model, out, engine, spark_master):
    """Encode a corpus's documents into Parquet shards that dense, mine and the gate read.

    Each row is one document: doc id, text hash, model fingerprint, prompt, maximum
    length, backend (local or spark) and vector, the vector dense computes for the same
    spec. A re-run encodes only documents that are new or whose text changed. Point
    --cache at EMB_DIR and harness eval, mine and gate encode no document again.

    \b
    Example:
      harness embed --data data/demo --model default --out emb/demo
      harness embed --data data/demo --out emb/demo --engine spark --spark-master "local[4]"
      harness eval --data data/demo --retriever dense --cache emb/demo --out out/eval
    """
    from harness.embed import embed_corpus

    summary = embed_corpus(data, model, out, engine=engine, spark_master=spark_master)
    click.echo(summary.line())
