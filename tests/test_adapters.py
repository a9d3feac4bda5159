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


def test_rerank_fused_with_its_first_stage_is_reciprocal_rank_fusion(corpus, tiny_cross_encoder: Path, tmp_path: Path) -> None:
    """fuse=rrf: each of the top N scores 1/(60 + first-stage rank) + 1/(60 + reranker rank)
    (Cormack et al. 2009), ties in the one ranking order; the rest keep the first stage's order."""
    from sentence_transformers import CrossEncoder

    from harness.adapters.base import ranked

    query = {"q": "gateway gigabit uplinks"}
    retriever = build_retriever(f"rerank({tiny_cross_encoder},top=3,first=bm25,fuse=rrf)", tmp_path)
    retriever.build(corpus)
    run = retriever.search(query, 5)
    first = build_retriever("bm25", tmp_path)
    first.build(corpus)
    order = first.search(query, 5).ranking("q")
    head = order[:3]
    values = CrossEncoder(str(tiny_cross_encoder)).predict([(query["q"], corpus[d].content) for d in head])
    by_ce = ranked({d: float(v) for d, v in zip(head, values)})
    expected = {d: 1 / (60 + head.index(d) + 1) + 1 / (60 + by_ce.index(d) + 1) for d in head}
    assert run.ranking("q") == ranked(expected) + order[3:]
    assert run.scores["q"][run.ranking("q")[0]] == pytest.approx(max(expected.values()))
    assert retriever.describe()["fuse"] == "rrf"
    with pytest.raises(HarnessError, match="fuse must be one of none, rrf"):
        build_retriever(f"rerank({tiny_cross_encoder},top=3,first=bm25,fuse=max)", tmp_path)


def test_missing_model_folder_is_a_clear_error(corpus, tmp_path: Path) -> None:
    retriever = build_retriever(f"dense:{tmp_path / 'no-such-model'}", tmp_path)
    with pytest.raises(HarnessError, match="no-such-model: sentence-transformers model folder does not exist"):
        retriever.build(corpus)


def _with_copies(corpus, copies: int = 5):
    """The corpus plus ``copies`` documents with one text: their scores tie for every query."""
    from harness.data import Document

    extra = {f"copy-{i}": Document(id=f"copy-{i}", title="Vortex 500 gateway", text="The Vortex 500 gateway routes eighty gigabit uplinks.")
             for i in range(copies)}
    return {**corpus, **extra}


@pytest.mark.parametrize("spec", ["bm25", "dense:TINY", "dense:TINY(index=hnsw)"])
def test_the_top_k_cut_through_tied_scores_keeps_the_highest_doc_ids(spec: str, corpus, tiny_model: Path, tmp_path: Path) -> None:
    """trec_eval's order (score descending, then doc id descending) decides which tied hits the cut keeps."""
    retriever = build_retriever(spec.replace("TINY", str(tiny_model)), tmp_path)
    retriever.build(_with_copies(corpus))
    query = {"q": "Vortex 500 gateway routes eighty gigabit uplinks"}
    full = retriever.search(query, 14).scores["q"]
    assert len({full[f"copy-{i}"] for i in range(5)}) == 1  # the five copies tie
    run = retriever.search(query, 3)
    assert run.ranking("q") == ["copy-4", "copy-3", "copy-2"]
    lines = run.to_trec().splitlines()
    assert [line.split()[2:4] for line in lines] == [["copy-4", "1"], ["copy-3", "2"], ["copy-2", "3"]]


def test_run_files_keep_every_digit_of_the_scores() -> None:
    from harness.adapters.base import Run

    run = Run("x", {"q": {"a": 0.12345612, "b": 0.12345614, "c": 1 / 3}})
    read = {line.split()[2]: float(line.split()[4]) for line in run.to_trec().splitlines()}
    assert read == run.scores["q"]  # no tie created by rounding ("%.6f" wrote a and b as 0.123456)
    assert run.ranking("q") == ["c", "b", "a"]


def test_rank_fusion_reads_its_inputs_in_the_one_order(corpus, tmp_path: Path) -> None:
    """RRF of a run with an identical copy of itself scores each hit 2/(60+rank): its order is the
    run's own, ties included, only if ranx was handed the run in the harness's order."""
    shared: dict = {}
    hybrid = build_retriever("hybrid(bm25,bm25(k1=1.5))", tmp_path, shared)
    tied = _with_copies(corpus)
    hybrid.build(tied)
    query = {"q": "Vortex gateway uplinks"}
    alone = shared["bm25"].search(query, 100)
    assert len(set(alone.scores["q"].values())) < len(alone.scores["q"])  # ties to break
    assert hybrid.search(query, 100).ranking("q") == alone.ranking("q")
    assert hybrid.search(query, 4).ranking("q") == alone.ranking("q")[:4]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("bm25(k1=-1)", "k1 must be a number >= 0, got -1.0"), ("bm25(b=2)", r"b must be between 0 and 1, got 2.0"),
     ("bm25(k1=nan)", "k1 must be a number >= 0, got nan")],
)
def test_bm25_parameters_out_of_range_are_errors(spec: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=message):
        build_retriever(spec, tmp_path)
