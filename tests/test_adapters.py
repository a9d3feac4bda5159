"""Retrievers behind one interface, on real computations with tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.adapters import build_retriever
from harness.data import load_dataset
from harness.errors import HarnessError


@pytest.fixture
def corpus(tiny_dataset: Path):
    return load_dataset(tiny_dataset).corpus


def test_bm25_ranks_the_matching_document_first(corpus, tmp_path: Path) -> None:
    retriever = build_retriever("bm25", tmp_path)
    retriever.build(corpus)
    run = retriever.search({"q": "forgot password", "empty": "the of and"}, k=3)
    assert run.ranking("q")[0] == "d6"
    assert run.scores["empty"] == {}
    assert set(run.latency_ms) == {"q", "empty"} and retriever.build_seconds is not None


def test_bm25_index_is_cached_on_disk(corpus, tmp_path: Path) -> None:
    first = build_retriever("bm25(stemmer=english)", tmp_path)
    first.build(corpus)
    second = build_retriever("bm25(stemmer=english)", tmp_path)
    second.build(corpus)
    assert second.describe()["index_from_cache"] is True
    queries = {"q": "gateways supporting gigabit uplinks"}
    assert first.search(queries, 5).scores == second.search(queries, 5).scores


def test_dense_encodes_once_then_reads_the_cache(corpus, tiny_model: Path, tmp_path: Path) -> None:
    first = build_retriever(f"dense:{tiny_model}", tmp_path)
    first.build(corpus)
    assert first.describe()["encoded_documents"] == len(corpus)
    second = build_retriever(f"dense:{tiny_model}", tmp_path)
    second.build(corpus)
    assert second.describe()["encoded_documents"] == 0
    queries = {"q": "forgot my password"}
    assert first.search(queries, 5).scores["q"] == pytest.approx(second.search(queries, 5).scores["q"])
    assert len(first.search(queries, 5).scores["q"]) == 5


def test_a_fully_cached_dense_run_does_not_load_the_model(corpus, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    import harness.adapters.dense

    queries = {"q": "forgot my password", "r": "gateway uplinks"}
    first = build_retriever(f"dense:{tiny_model}", tmp_path)
    first.build(corpus)
    expected = first.search(queries, 5)
    assert first.describe()["latency_cached"] is False
    # the memo of the model's identity, rebuilt when corrupt
    memo = next((tmp_path / "models").glob("*.json"))
    memo.write_text("{not json")

    def no_model(name):
        raise AssertionError("the model was loaded")

    again = build_retriever(f"dense:{tiny_model}", tmp_path)
    again.build(corpus)  # the corrupt memo needs the model once
    assert again.describe()["fingerprint"] == first.describe()["fingerprint"]
    monkeypatch.setattr(harness.adapters.dense, "load_sentence_transformer", no_model)
    cached = build_retriever(f"dense:{tiny_model}", tmp_path)
    cached.build(corpus)
    run = cached.search(queries, 5)
    assert all(run.scores[q] == pytest.approx(expected.scores[q]) for q in queries) and run.latency_ms == expected.latency_ms
    info = cached.describe()
    assert info["latency_cached"] is True and info["latency_measured_at"] == first.describe()["latency_measured_at"]
    assert info["fingerprint"] == first.describe()["fingerprint"] and info["encoded_documents"] == 0


def test_corrupt_cache_shard_is_rebuilt_not_used(corpus, tiny_model: Path, tmp_path: Path) -> None:
    reference = build_retriever(f"dense:{tiny_model}", tmp_path)
    reference.build(corpus)
    expected = reference.search({"q": "gateway"}, 9).scores
    shards = list((tmp_path / "embeddings").rglob("*.npz"))
    assert len(shards) == 2  # the documents', then the queries' (one namespace: no prompts)
    for shard in shards:
        shard.write_bytes(shard.read_bytes()[:100])  # a truncated write
    again = build_retriever(f"dense:{tiny_model}", tmp_path)
    again.build(corpus)
    info = again.describe()
    assert info["encoded_documents"] == len(corpus) and info["cache_shards_rebuilt"] == 2
    assert again.search({"q": "gateway"}, 9).scores["q"] == pytest.approx(expected["q"])


def test_fingerprint_follows_weights_not_path(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from harness.adapters.models import fingerprint, load_sentence_transformer

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert fingerprint(load_sentence_transformer(str(tiny_model))) == fingerprint(load_sentence_transformer(str(copy)))


def test_truncated_dimension_and_approximate_index(corpus, tiny_model: Path, tmp_path: Path) -> None:
    short = build_retriever(f"dense:{tiny_model}(dim=8)", tmp_path)
    short.build(corpus)
    assert short.describe()["dimension"] == 8
    approx = build_retriever(f"dense:{tiny_model}(index=hnsw)", tmp_path)
    approx.build(corpus)
    approx.search({"a": "gateway", "b": "password"}, 5)
    assert 0.0 <= approx.describe()["approximate_recall_vs_exact"] <= 1.0


def test_hybrid_fuses_both_rankings(corpus, tiny_model: Path, tmp_path: Path) -> None:
    shared: dict = {}
    hybrid = build_retriever(f"hybrid(bm25,dense:{tiny_model})", tmp_path, shared)
    hybrid.build(corpus)
    run = hybrid.search({"q": "forgot password"}, 9)
    bm25_run = shared["bm25"].search({"q": "forgot password"}, 100)
    assert set(bm25_run.scores["q"]) <= set(run.scores["q"])
    assert run.ranking("q")[0] == "d6"  # first in BM25, and RRF keeps a strong head
    weighted = build_retriever(f"hybrid(bm25,dense:{tiny_model},weights=1;0)", tmp_path, shared)
    weighted.build(corpus)
    query = {"q": "reset password from the identity portal"}
    assert weighted.search(query, 3).ranking("q")[0] == shared["bm25"].search(query, 100).ranking("q")[0] == "d6"


def test_rerank_reorders_the_first_stage(corpus, tiny_cross_encoder: Path, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    retriever = build_retriever(f"rerank({tiny_cross_encoder},top=3,first=bm25)", tmp_path)
    retriever.build(corpus)
    run = retriever.search({"q": "gateway gigabit uplinks"}, 5)
    first = build_retriever("bm25", tmp_path)
    first.build(corpus)
    head = first.search({"q": "gateway gigabit uplinks"}, 5).ranking("q")[:3]
    model = CrossEncoder(str(tiny_cross_encoder))
    expected = model.predict([("gateway gigabit uplinks", corpus[d].content) for d in head])
    by_ce = [d for _, d in sorted(zip(expected, head), key=lambda pair: -pair[0])]
    assert run.ranking("q")[:3] == by_ce
    assert retriever.describe()["fingerprint"]


def test_missing_model_folder_is_a_clear_error(corpus, tmp_path: Path) -> None:
    retriever = build_retriever(f"dense:{tmp_path / 'no-such-model'}", tmp_path)
    with pytest.raises(HarnessError, match="no-such-model: sentence-transformers model folder does not exist"):
        retriever.build(corpus)
