"""``harness embed``: Parquet shards of document vectors (local and Spark) that the embedding
cache and ``dense`` read, so an evaluation over them encodes no document."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import requires_minilm
from harness.adapters import build_retriever
from harness.adapters.cache import text_key
from harness.data import load_dataset
from harness.embed import embed_corpus, make_predict_fn
from harness.errors import HarnessError
from harness.evaluate import evaluate

COLUMNS = ["doc_id", "text_key", "fingerprint", "prompt", "max_seq_length", "backend", "vector"]


def _shards(folder: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(folder / "vectors")
    assert table.column_names == COLUMNS
    return dict(zip(table.column("doc_id").to_pylist(), np.array(table.column("vector").to_pylist(), dtype=np.float32)))


def _in_process(spec: str, data: Path, cache: Path) -> dict[str, np.ndarray]:
    corpus = load_dataset(data).corpus
    return dict(zip(corpus, build_retriever(spec, cache).embed_documents(corpus)))


def _dense_description(result) -> dict:
    return result.retrievers[0].description


def test_local_shards_hold_the_vectors_dense_computes(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    summary = embed_corpus(tiny_dataset, str(tiny_model), tmp_path / "emb")
    assert (summary.documents, summary.kept, summary.encoded, summary.stale, len(summary.shards)) == (9, 0, 9, 0, 1)
    table = pq.read_table(tmp_path / "emb" / "vectors")
    corpus = load_dataset(tiny_dataset).corpus
    assert set(table.column("backend").to_pylist()) == {"local"}
    assert set(table.column("fingerprint").to_pylist()) == {summary.fingerprint}
    assert dict(zip(table.column("doc_id").to_pylist(), table.column("text_key").to_pylist())) == {
        doc_id: text_key(doc.content) for doc_id, doc in corpus.items()}
    shards = _shards(tmp_path / "emb")
    expected = _in_process(f"dense:{tiny_model}", tiny_dataset, tmp_path / "plain-cache")
    assert set(shards) == set(expected)
    for doc_id, vector in expected.items():
        np.testing.assert_allclose(shards[doc_id], vector, atol=1e-5)


def test_eval_over_the_shards_encodes_no_document_and_says_where_they_came_from(
        tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    spec = f"dense:{tiny_model}"
    embed_corpus(tiny_dataset, str(tiny_model), tmp_path / "emb")
    over_shards = evaluate(tiny_dataset, [spec], cache_dir=tmp_path / "emb")
    described = _dense_description(over_shards)
    assert described["encoded_documents"] == 0
    assert described["document_vectors"] == {
        "encoded": 0, "cache": 0, "shards": 9, "shards_folder": str((tmp_path / "emb" / "vectors").resolve()),
        "shard_backends": {"local": 9}}
    encoded_here = evaluate(tiny_dataset, [spec], cache_dir=tmp_path / "plain-cache")
    assert "document_vectors" not in _dense_description(encoded_here)
    for ours, theirs in zip(over_shards.suites, encoded_here.suites, strict=True):
        for metric, scores in theirs.per_query[spec].items():
            assert ours.per_query[spec][metric] == pytest.approx(scores, abs=1e-9), metric


def test_a_rerun_encodes_only_new_or_changed_documents(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    emb = tmp_path / "emb"
    embed_corpus(tiny_dataset, str(tiny_model), emb)
    corpus_file = tiny_dataset / "corpus.jsonl"
    records = [json.loads(line) for line in corpus_file.read_text().splitlines()]
    records[0]["text"] = "Duplicate charges are refunded within a week."
    records.append({"_id": "d9", "title": "Backups", "text": "Backups run every night."})
    corpus_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    again = embed_corpus(tiny_dataset, str(tiny_model), emb)
    assert (again.documents, again.kept, again.encoded, again.stale, len(again.shards)) == (10, 8, 2, 1, 1)
    unchanged = embed_corpus(tiny_dataset, str(tiny_model), emb)
    assert (unchanged.kept, unchanged.encoded, unchanged.shards) == (10, 0, [])
    assert len(list((emb / "vectors").glob("*.parquet"))) == 2
    described = _dense_description(evaluate(tiny_dataset, [f"dense:{tiny_model}"], cache_dir=emb))
    assert described["encoded_documents"] == 0 and described["document_vectors"]["shards"] == 10


def test_the_shards_are_keyed_by_prompt_and_length_as_dense_is(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    spec = f"dense:{tiny_model}(prompts=e5,max_len=16)"
    summary = embed_corpus(tiny_dataset, spec, tmp_path / "emb")
    table = pq.read_table(tmp_path / "emb" / "vectors")
    assert set(table.column("prompt").to_pylist()) == {"passage: "} and set(table.column("max_seq_length").to_pylist()) == {16}
    expected = _in_process(spec, tiny_dataset, tmp_path / "plain-cache")
    shards = _shards(tmp_path / "emb")
    for doc_id, vector in expected.items():
        np.testing.assert_allclose(shards[doc_id], vector, atol=1e-5)
    assert _dense_description(evaluate(tiny_dataset, [spec], cache_dir=tmp_path / "emb"))["encoded_documents"] == 0
    # another prompt and length is another model's vectors: encoded, not taken from these shards
    other = _dense_description(evaluate(tiny_dataset, [f"dense:{tiny_model}"], cache_dir=tmp_path / "emb"))
    assert other["encoded_documents"] == 9 and other["document_vectors"]["shards"] == 0
    assert summary.fingerprint != other["fingerprint"]  # the length is part of the fingerprint


def test_an_unreadable_shard_is_an_error_naming_it_and_leftovers_are_ignored(
        tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    emb = tmp_path / "emb"
    embed_corpus(tiny_dataset, str(tiny_model), emb)
    leftover = emb / "vectors" / ".part-killed.parquet.tmp"
    leftover.write_bytes(b"half a shard")  # what a killed writer leaves: never read, cleared by the next embed
    assert _dense_description(evaluate(tiny_dataset, [f"dense:{tiny_model}"], cache_dir=emb))["encoded_documents"] == 0
    assert embed_corpus(tiny_dataset, str(tiny_model), emb).encoded == 0 and not leftover.exists()
    bad = emb / "vectors" / "part-copied.parquet"
    bad.write_bytes(b"PAR1 truncated")
    with pytest.raises(HarnessError, match=f"{bad}: not a readable embedding shard"):
        evaluate(tiny_dataset, [f"dense:{tiny_model}"], cache_dir=emb)
    with pytest.raises(HarnessError, match=f"{bad}: not a readable embedding shard"):
        embed_corpus(tiny_dataset, str(tiny_model), emb)
    assert bad.exists()  # the user's file, never deleted by a reader


def test_each_executor_checks_it_loaded_the_drivers_model(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    summary = embed_corpus(tiny_dataset, str(tiny_model), tmp_path / "emb")
    predict = make_predict_fn(f"dense:{tiny_model}", summary.fingerprint)
    corpus = load_dataset(tiny_dataset).corpus
    vectors = predict(np.array([doc.content for doc in corpus.values()], dtype=object))
    shards = _shards(tmp_path / "emb")
    np.testing.assert_allclose(vectors, np.stack([shards[doc_id] for doc_id in corpus]), atol=1e-5)
    with pytest.raises(RuntimeError, match="harness embed: .* loads with fingerprint .* not the driver's 0000"):
        make_predict_fn(f"dense:{tiny_model}", "0000")


def test_embed_command(tiny_dataset: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    from harness.cli import main

    main(["embed", "--data", str(tiny_dataset), "--model", str(tiny_model), "--out", str(tmp_path / "emb")])  # returns: exit 0
    assert "9 documents, 0 already encoded, 9 encoded (local) into 1 new shard(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "--data", str(tiny_dataset), "--model", str(tiny_model), "--out", str(tmp_path / "emb"),
              "--spark-master", "local[1]"])
    assert exit_info.value.code == 3 and "error: --spark-master is for --engine spark" in capsys.readouterr().err


def _java() -> bool:
    home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or (home is not None and os.path.exists(os.path.join(home, "bin", "java")))


@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed (pip install 'pyspark>=4,<5')")
@pytest.mark.skipif(not _java(), reason="no Java runtime (apt-get install openjdk-17-jre-headless)")
def test_spark_shards_equal_local_ones_and_eval_encodes_nothing(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    spec = f"dense:{tiny_model}"
    local = embed_corpus(tiny_dataset, str(tiny_model), tmp_path / "local")
    spark = embed_corpus(tiny_dataset, str(tiny_model), tmp_path / "spark", engine="spark", spark_master="local[1]")
    assert (spark.encoded, spark.backend, spark.fingerprint) == (9, "spark", local.fingerprint)
    table = pq.read_table(tmp_path / "spark" / "vectors")
    assert set(table.column("backend").to_pylist()) == {"spark"}
    from_spark, from_local = _shards(tmp_path / "spark"), _shards(tmp_path / "local")
    in_process = _in_process(spec, tiny_dataset, tmp_path / "plain-cache")
    assert set(from_spark) == set(in_process)
    for doc_id, vector in in_process.items():
        np.testing.assert_allclose(from_spark[doc_id], from_local[doc_id], atol=1e-5)
        np.testing.assert_allclose(from_spark[doc_id], vector, atol=1e-5)
    described = _dense_description(evaluate(tiny_dataset, [spec], cache_dir=tmp_path / "spark"))
    assert described["encoded_documents"] == 0 and described["document_vectors"]["shard_backends"] == {"spark": 9}
    assert embed_corpus(tiny_dataset, str(tiny_model), tmp_path / "spark", engine="spark", spark_master="local[1]").encoded == 0


@requires_minilm
def test_minilm_shards_serve_eval_and_mine(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    from harness.cli import main

    emb = tmp_path / "emb"
    assert embed_corpus(tiny_dataset, "default", emb).encoded == 9
    over_shards = evaluate(tiny_dataset, ["dense"], cache_dir=emb)
    assert _dense_description(over_shards)["encoded_documents"] == 0
    encoded_here = evaluate(tiny_dataset, ["dense"], cache_dir=tmp_path / "plain-cache")
    for ours, theirs in zip(over_shards.suites, encoded_here.suites, strict=True):
        assert ours.aggregates["dense"] == pytest.approx(theirs.aggregates["dense"], abs=1e-9)
    main(["mine", "--data", str(tiny_dataset), "--out", str(tmp_path / "mined"), "--range-max", "6",
          "--num-negatives", "2", "--cache", str(emb)])  # returns: exit 0
    assert "9 document vectors from the cache" in capsys.readouterr().out
