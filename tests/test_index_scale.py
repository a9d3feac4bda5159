"""The on-disk IVF-PQ index (adapters/faiss_index.py): built block by block, judged against
exact search, re-ranked on the memory-mapped full vectors, reloaded from disk, fed by
Parquet shards, and as ``dense(index=ivfpq)``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import requires_minilm
from harness.adapters import build_retriever
from harness.adapters.cache import ShardFolder
from harness.adapters.faiss_index import (IvfPqIndex, IvfPqSettings, ParquetVectorBlocks, build_ivfpq, exact_top_k,
                                          recall_against_exact)
from harness.data import load_dataset
from harness.errors import HarnessError

ROWS, DIMENSION, BLOCK = 20_000, 32, 4_000


def clustered(rows: int, seed: int) -> np.ndarray:
    """Normalised vectors around 200 seeded centres: neighbours that mean something, as in embeddings."""
    random = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((200, DIMENSION))
    vectors = centres[random.integers(0, 200, rows)] + 0.5 * random.standard_normal((rows, DIMENSION))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> tuple[list, np.ndarray]:
    vectors = clustered(ROWS, 1)
    blocks = [([f"d{row}" for row in range(start, start + BLOCK)], vectors[start:start + BLOCK]) for start in range(0, ROWS, BLOCK)]
    return blocks, vectors


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory: pytest.TempPathFactory) -> IvfPqIndex:
    blocks, _ = corpus
    return build_ivfpq(blocks, tmp_path_factory.mktemp("ivfpq") / "index", IvfPqSettings(nlist=64, subquantizers=8, train_size=10_000))


def test_exact_top_k_block_by_block_is_the_flat_index_over_everything(corpus) -> None:
    import faiss

    blocks, vectors = corpus
    queries = clustered(50, 2)
    flat = faiss.IndexFlatIP(DIMENSION)
    flat.add(vectors)
    reference_scores, reference_rows = flat.search(queries, 10)
    scores, rows = exact_top_k(queries, blocks, 10)
    np.testing.assert_allclose(scores, reference_scores, rtol=1e-5)
    assert recall_against_exact(rows, reference_rows) == 1.0


def test_ivfpq_recall_against_exact_is_reported_and_grows_with_nprobe(built: IvfPqIndex, corpus) -> None:
    blocks, _ = corpus
    queries = clustered(200, 2)
    _, exact = exact_top_k(queries, blocks, 10)
    recalls = []
    built.refine = 0  # the codes alone
    for nprobe in (1, 8, 64):
        built.nprobe = nprobe
        recalls.append(recall_against_exact(built.search(queries, 10)[1], exact))
    # 8-byte codes of 32-d vectors: quantisation, not the lists visited, bounds the recall
    assert 0.3 < recalls[0] <= recalls[1] <= recalls[2] < 1.0
    manifest = built.manifest
    assert (manifest["vectors"], manifest["nlist"], manifest["subquantizers"], manifest["bits"], manifest["code_bytes"]) == (ROWS, 64, 8, 8, 8)


def test_refine_re_scores_the_shortlist_on_the_full_vectors(built: IvfPqIndex, corpus) -> None:
    blocks, vectors = corpus
    queries = clustered(200, 2)
    _, exact = exact_top_k(queries, blocks, 10)
    built.nprobe = 8
    recall = {}
    for refine in (0, 10):
        built.refine = refine
        scores, rows = built.search(queries, 10)
        recall[refine] = recall_against_exact(rows, exact)
    # 8-byte codes of 32-d vectors find ~0.4 of the exact top 10; re-scoring 100 candidates nearly all
    assert recall[0] < 0.6 and recall[10] > 0.95
    # the re-ranked scores are the exact inner products of the rows returned
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[rows]), rtol=1e-5, atol=1e-6)
    assert built.vectors.ntotal == ROWS and built.manifest["full_vectors_bytes"] == ROWS * DIMENSION * 4
    with pytest.raises(HarnessError, match="refine must be 0"):
        built.refine = -1


def test_the_index_folder_reloads_from_disk_whole(built: IvfPqIndex) -> None:
    queries = clustered(20, 3)
    built.nprobe, built.refine = 8, 10
    scores, rows = built.search(queries, 10)
    assert sorted(p.name for p in built.folder.iterdir()) == ["doc_ids.parquet", "index.faiss", "index.json", "lists.ivfdata",
                                                              "vectors.faiss"]
    moved = built.folder.rename(built.folder.with_name("moved"))  # the lists and vectors are found beside the index
    reloaded = IvfPqIndex.open(moved, nprobe=8)
    assert reloaded.refine == 10
    reloaded_scores, reloaded_rows = reloaded.search(queries, 10)
    np.testing.assert_array_equal(reloaded_rows, rows)
    np.testing.assert_allclose(reloaded_scores, scores)
    assert reloaded.doc_ids(rows[:1]) == [[f"d{row}" for row in rows[0]]]
    moved.rename(built.folder)


class FailsOnSecondPass:
    """Blocks that can be sampled but break while the codes are added (a killed or bad source)."""

    def __init__(self, blocks: list) -> None:
        self.blocks, self.passes = blocks, 0

    def __iter__(self):
        self.passes += 1
        for number, block in enumerate(self.blocks):
            if self.passes == 2 and number == 2:
                raise OSError("source went away")
            yield block


def test_a_failed_build_leaves_the_previous_index_in_place(corpus, tmp_path: Path) -> None:
    blocks, _ = corpus
    settings = IvfPqSettings(nlist=8, subquantizers=4, train_size=2_000)
    first = build_ivfpq(blocks[:1], tmp_path / "index", settings)
    with pytest.raises(OSError, match="source went away"):
        build_ivfpq(FailsOnSecondPass(blocks), tmp_path / "index", settings)
    assert [p.name for p in tmp_path.iterdir()] == ["index"]
    assert IvfPqIndex.open(tmp_path / "index").manifest["vectors"] == first.manifest["vectors"] == BLOCK


def test_bad_blocks_and_settings_are_one_line_errors(corpus, tmp_path: Path) -> None:
    blocks, vectors = corpus
    with pytest.raises(HarnessError, match="read twice"):
        build_ivfpq(iter(blocks), tmp_path / "a", IvfPqSettings(nlist=8))
    with pytest.raises(HarnessError, match="must divide the dimension 32"):
        build_ivfpq(blocks[:1], tmp_path / "a", IvfPqSettings(nlist=8, subquantizers=5))
    broken = vectors[:10].copy()
    broken[3, 0] = np.nan
    with pytest.raises(HarnessError, match="vector block 2: row 4 is not finite"):
        build_ivfpq([blocks[0], ([f"x{i}" for i in range(10)], broken)], tmp_path / "a", IvfPqSettings(nlist=8))
    with pytest.raises(HarnessError, match="nlist=64 lists need at least as many training vectors, the sample has 10"):
        build_ivfpq([([f"x{i}" for i in range(10)], vectors[:10])], tmp_path / "a", IvfPqSettings(nlist=64))
    assert not (tmp_path / "a").exists()


def test_parquet_shards_of_harness_embed_are_read_block_by_block(corpus, tmp_path: Path) -> None:
    _, vectors = corpus
    shards = ShardFolder(tmp_path)
    ids = [f"d{row}" for row in range(3_000)]
    for start in (0, 1_000, 2_000):
        shards.write(ids[start:start + 1_000], ids[start:start + 1_000], vectors[start:start + 1_000], ("fp", "", 128), "torch")
    blocks = ParquetVectorBlocks(shards.folder, rows_per_block=700)
    read = {doc_id: vector for block_ids, block in blocks for doc_id, vector in zip(block_ids, block)}
    assert len(read) == 3_000 and max(len(b) for b, _ in blocks) == 700
    np.testing.assert_array_equal(np.stack([read[doc_id] for doc_id in ids]), vectors[:3_000])
    index = build_ivfpq(blocks, tmp_path / "index", IvfPqSettings(nlist=16, subquantizers=8), source=str(shards.folder))
    assert index.manifest["vectors"] == 3_000 and index.manifest["source"] == str(shards.folder)

    shards.write(["other"], ["other"], vectors[:1], ("another-model", "", 128), "torch")
    with pytest.raises(HarnessError, match=r"\.parquet: rows 1-\d+: fingerprint .*, the shards before were .* \(one model an index\)"):
        build_ivfpq(ParquetVectorBlocks(shards.folder), tmp_path / "index2", IvfPqSettings(nlist=16))


def test_a_shard_without_vectors_names_its_file(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp_path.joinpath("vectors").mkdir()
    pq.write_table(pa.table({"doc_id": ["a"]}), tmp_path / "vectors" / "part-0.parquet")
    with pytest.raises(HarnessError, match=r"part-0\.parquet: missing column\(s\) vector"):
        ParquetVectorBlocks(tmp_path / "vectors")
    pq.write_table(pa.table({"doc_id": ["a", "b"], "vector": [[1.0, 0.0], [1.0]]}), tmp_path / "vectors" / "part-0.parquet")
    with pytest.raises(HarnessError, match=r"part-0\.parquet: row 2: vector of 1 values, the rows before hold 2"):
        list(ParquetVectorBlocks(tmp_path / "vectors"))


def test_dense_ivfpq_reports_recall_and_reuses_its_index(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    corpus = load_dataset(tiny_dataset).corpus
    queries = {"a": "gateway", "b": "password", "c": "invoice"}
    first = build_retriever(f"dense:{tiny_model}(index=ivfpq,m=4,nprobe=1)", tmp_path)
    first.build(corpus)
    run = first.search(queries, 5)
    info = first.describe()
    assert 0.0 <= info["approximate_recall_vs_exact"] <= 1.0 and info["index"] == "ivfpq"
    assert info["ivfpq"] == {"nlist": 1, "subquantizers": 4, "bits": 1, "code_bytes": 1, "nprobe": 1, "refine": 10,
                             "index_from_cache": False}
    second = build_retriever(f"dense:{tiny_model}(index=ivfpq,m=4,nprobe=1)", tmp_path)
    second.build(corpus)
    assert second.search(queries, 5).scores == run.scores and second.describe()["ivfpq"]["index_from_cache"] is True
    with pytest.raises(HarnessError, match="option m applies to index=ivfpq only"):
        build_retriever(f"dense:{tiny_model}(index=hnsw,m=4)", tmp_path)


def test_dense_ivfpq_refine_is_in_its_description_and_latency_key(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    corpus = load_dataset(tiny_dataset).corpus
    queries = {"a": "gateway", "b": "password"}
    memos = {}
    for refine in ("0", "4"):
        retriever = build_retriever(f"dense:{tiny_model}(index=ivfpq,m=4,nprobe=1,refine={refine})", tmp_path)
        retriever.build(corpus)
        retriever.search(queries, 5)
        info = retriever.describe()
        assert info["ivfpq"]["refine"] == int(refine) and "approximate_recall_vs_exact" in info
        memos[refine] = retriever._latency_file(sorted(queries.items()), 5)
    # a search-time setting: one index build serves both, but a cached latency is never another refine's
    assert info["ivfpq"]["index_from_cache"] is True
    assert memos["0"] != memos["4"]
    with pytest.raises(HarnessError, match="refine must be 0"):
        build_retriever(f"dense:{tiny_model}(index=ivfpq,refine=-1)", tmp_path).build(corpus)


@requires_minilm
@pytest.mark.minilm
def test_real_minilm_ivfpq_eval_through_the_cli(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "harness", "eval", "--data", str(tiny_dataset), "--retriever", "dense(index=ivfpq)",
                           "--suite", "heldout", "--out", str(out), "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "IO_FLAG" not in done.stdout and "resizing" not in done.stdout  # faiss's chatter stays off stdout
    data = json.loads((out / "result.json").read_text())
    description = next(r for r in data["retrievers"] if r["spec"] == "dense(index=ivfpq)")["description"]
    assert description["ivfpq"]["subquantizers"] == 48 and 0.0 <= description["approximate_recall_vs_exact"] <= 1.0
