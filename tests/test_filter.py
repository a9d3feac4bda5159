"""The metadata-filter arm: ``filter(first=SPEC,field=KEY)`` and ``filter(first=SPEC,where=...)``
over real first stages (bm25, a tiny random BERT, the real MiniLM on the demo data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import requires_minilm
from harness.adapters import build_retriever
from harness.adapters.filter import FilterRetriever, attach_metadata
from harness.adapters.spec import Spec
from harness.data import load_dataset
from harness.errors import HarnessError
from harness.evaluate import evaluate


def test_the_spec_reads_predicates_as_written() -> None:
    for text in ("filter(first=dense,field=subdomain)", "filter(first=hybrid(bm25,dense),where=date>=2025-01-01&type=runbook)"):
        assert str(Spec.parse(text)) == text
    spec = Spec.parse("filter(first=dense:m(dim=64),field=subdomain,where=date>=2025-01-01T10:00)")
    assert spec.option("where") == "date>=2025-01-01T10:00" and str(spec.option_spec("first")) == "dense:m(dim=64)"
    # a quoted value reads without its quotes (spaces, commas)
    assert Spec.parse("filter(first=bm25,where='date >= 2025-01-01 & type = runbook')").option("where") == "date >= 2025-01-01 & type = runbook"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("filter(first=bm25)", "give field=KEY"),
        ("filter(bm25,field=x)", "filter takes options only"),
        ("filter(field=subdomain)", "needs a first stage"),
        ("filter(first=bm25,field=x,depth=3)", "unknown option"),
        ("filter(first=bm25,where=date)", "bad predicate 'date'"),
    ],
)
def test_bad_filter_specs(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=message):
        build_retriever(text, tmp_path)


def skewed_corpus(root: Path) -> Path:
    """32 'network' documents that BM25 ranks above the 8 'billing' ones for the query, no
    two with the same score."""
    (root / "qrels").mkdir(parents=True)
    docs = [(f"n{i:02d}", "network", " ".join(["invoice"] * 6 + ["gateway"] * (i + 1))) for i in range(32)]
    docs += [(f"b{i}", "billing", " ".join(["invoice"] + ["ledger"] * (i + 4))) for i in range(8)]
    corpus = [{"_id": doc_id, "title": "", "text": text, "metadata": {"subdomain": sub}} for doc_id, sub, text in docs]
    queries = [
        {"_id": "billing-q", "text": "invoice", "metadata": {"subdomain": "billing"}},
        {"_id": "bare-q", "text": "invoice", "metadata": {}},
    ]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nbilling-q\tb0\t1\nbare-q\tn00\t1\n")
    return root


def test_it_searches_deeper_until_k_matching_documents_survive(tmp_path: Path) -> None:
    data = load_dataset(skewed_corpus(tmp_path / "data"))
    arm = build_retriever("filter(first=bm25,field=subdomain)", tmp_path / "cache")
    assert isinstance(arm, FilterRetriever)
    attach_metadata([arm], data.corpus, data.queries, "skewed")
    arm.build(data.corpus)
    texts = {qid: query.text for qid, query in data.queries.items()}
    with pytest.warns(UserWarning, match=r"1 of 2 queries have no 'subdomain' metadata: searched without that filter"):
        run = arm.search(texts, k=3)
    # the first depth k*2^j >= k*N/M = 3*40/8 is 24, which holds network documents only;
    # the second search, the whole corpus deep, finds billing
    full = arm.first.search(texts, 40)
    reference = [doc for doc in full.ranking("billing-q") if doc.startswith("b")][:3]
    assert run.ranking("billing-q") == reference and len(reference) == 3
    assert run.ranking("bare-q") == full.ranking("bare-q")[:3]  # not filtered
    info = arm.describe()
    assert info["queries_without_field"] == 1 and info["queries_without_field_examples"] == ["bare-q"]
    assert info["searched_depth"] == {"min": 3, "median": 21.5, "max": 40} and info["search_rounds_max"] == 2
    assert info["queries_short_of_k"] == 0 and info["training"] == "none" and info["re_embedding"] == "none"
    assert set(run.latency_ms) == {"billing-q", "bare-q"}
    # fewer matching documents than k: all of them, counted
    run = arm.search({"billing-q": "invoice"}, k=10)
    assert sorted(run.ranking("billing-q")) == [f"b{i}" for i in range(8)] and arm.describe()["queries_short_of_k"] == 1


def test_a_filter_needs_the_queries_metadata(tiny_dataset: Path, tmp_path: Path) -> None:
    data = load_dataset(tiny_dataset)
    arm = build_retriever("filter(first=bm25,field=subdomain)", tmp_path)
    arm.build(data.corpus)
    with pytest.raises(HarnessError, match="needs the queries' metadata"):
        arm.search({"q1": "refund"}, k=3)


def test_the_arm_evaluates_with_a_tiny_model_and_keeps_its_filters(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    # q4 loses its subdomain: it is searched unfiltered and counted
    lines = [json.loads(line) for line in (tiny_dataset / "queries.jsonl").read_text().splitlines()]
    for record in lines:
        if record["_id"] == "q4":
            record["metadata"] = {}
    (tiny_dataset / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    dense = f"dense:{tiny_model}"
    by_field = f"filter(first={dense},field=subdomain)"
    by_date = f"filter(first={dense},where=date>=2024-05-01)"
    fused = f"hybrid(bm25,filter(first=bm25,field=subdomain))"
    with pytest.warns(UserWarning, match="1 of 5 queries have no 'subdomain' metadata"):
        result = evaluate(tiny_dataset, [dense, by_field, by_date, fused], ["heldout"], out=tmp_path / "out", cache_dir=tmp_path / "cache")
    data = load_dataset(tiny_dataset)
    runs = {}
    for spec in (dense, by_field, by_date):
        path = tmp_path / "out" / result.retriever(spec).run_files["test"]
        for line in path.read_text().splitlines():
            qid, _, doc, *_ = line.split()
            runs.setdefault(spec, {}).setdefault(qid, []).append(doc)
    for qid, docs in runs[by_field].items():
        if qid == "q4":
            assert docs == runs[dense]["q4"]  # unfiltered: the first stage's ranking
        else:
            wanted = data.queries[qid].metadata["subdomain"]
            assert docs == [d for d in runs[dense][qid] if data.corpus[d].metadata["subdomain"] == wanted]
    for qid, docs in runs[by_date].items():
        assert docs == [d for d in runs[dense][qid] if data.corpus[d].metadata["date"] >= "2024-05-01"]
    info = result.retriever(by_field).description
    assert info["queries_without_field"] == 1 and info["queries_searched"] == 5 and info["first"]["spec"] == dense
    assert result.retriever(by_date).description["documents_passing_where"] == 5
    assert result.retriever(fused).description["components"][1]["queries_without_field"] == 1
    # its cost: the first stage's build plus the filter's, no encoding of its own
    assert result.retriever(by_field).build_seconds >= result.retriever(dense).build_seconds
    assert result.retriever(by_field).latency["p95_ms"] > 0

    from harness.comparison import compare_results

    table = compare_results(result, baseline=dense, n_resamples=99)["decision_table"][0]
    row = next(r for r in table["rows"] if r["arm"] == by_field)
    assert row["p95_ms"] > 0 and row["build_seconds"] is not None and row["dimension"] == 32


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("filter(first=DENSE,field=colour)", r"none of the documents of .* has metadata 'colour' \(keys present: date, subdomain\)"),
        ("filter(first=DENSE,field=date)", r"none of the queries of .* has metadata 'date' \(keys present: subdomain\)"),
        ("filter(first=DENSE,where=date>=2024-1-1)", r"'2024-1-1' is not an ISO 8601 date"),
        ("filter(first=DENSE,where=subdomain<m)", r"'<' needs numbers or ISO 8601 dates, but 'subdomain' holds text"),
        ("filter(first=DENSE,where=date>=2030-01-01)", r"no document of .* passes date>=2030-01-01"),
    ],
)
def test_a_filter_the_data_cannot_answer_fails_before_any_model_loads(
    tiny_dataset: Path, tiny_model: Path, tmp_path: Path, spec: str, message: str
) -> None:
    spec = spec.replace("DENSE", f"dense:{tiny_model}")
    with pytest.raises(HarnessError, match=message):
        evaluate(tiny_dataset, [spec], ["heldout"], cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "embeddings").exists() and not (tmp_path / "cache" / "models").exists()


@requires_minilm
@pytest.mark.minilm
def test_the_filter_arm_on_the_demo_data_with_minilm(tmp_path: Path) -> None:
    from harness.data.demo import write_demo_dataset

    data = write_demo_dataset(tmp_path / "demo")
    # 30 test queries lose their subdomain: searched unfiltered, and counted
    qrels = (data / "qrels" / "test.tsv").read_text().splitlines()[1:]
    bare = sorted({line.split("\t")[0] for line in qrels})[:30]
    records = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines()]
    for record in records:
        if record["_id"] in bare:
            del record["metadata"]["subdomain"]
    (data / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    arm = "filter(first=dense,field=subdomain)"
    result = evaluate(data, ["dense", arm], ["heldout"], out=tmp_path / "out", cache_dir=tmp_path / "cache")
    info = result.retriever(arm).description
    assert info["queries_without_field"] == 30 and info["queries_searched"] == 300
    assert info["queries_short_of_k"] == 0  # every subdomain holds more than k=100 documents
    heldout = result.suite("heldout:test")
    scores = {spec: heldout.per_query[spec]["ndcg@10"] for spec in ("dense", arm)}
    for qid in bare:  # unfiltered queries: the first stage's figures exactly
        assert scores[arm][qid] == scores["dense"][qid]
    # a demo query's subdomain is its relevant documents' own: removing documents of other
    # subdomains moves relevant ones up, never down
    assert all(scores[arm][qid] >= scores["dense"][qid] - 1e-12 for qid in heldout.query_ids)
    assert heldout.aggregates[arm]["ndcg@10"] > heldout.aggregates["dense"]["ndcg@10"]
    assert result.retriever(arm).latency["p95_ms"] > 0
    shutil.rmtree(tmp_path / "cache")
