"""The loop (issue 15): the demo's unlabelled query pool, the simulator serving it with its
hidden relevance, and `harness finetune --pairs` on a `harness ab pairs` file (weights as
repetition, the file's skip-above negatives instead of mining), on the tiny dataset with
the tiny random BERT, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import QUERIES, write_beir
from harness.ab import pairs as P
from harness.ab import simulate as S
from harness.data import load_dataset
from harness.data.demo import HELD_OUT_SUBDOMAIN, POOL_FOLDER, POOL_RELEVANCE, write_demo_dataset
from harness.errors import HarnessError
from harness.train.pairs import copies_by_weight, read_pairs
from test_ab_analysis import exit_code as cli_exit_code

# the tiny dataset's live traffic nobody judged, worded so that BM25 ranks another document
# above the relevant one (a skip-above negative); the last one is the test query q7 typed otherwise
POOL = [
    ("p1", "gateway uplinks", "d3"),  # the two gateway pages tie: d4 first (the doc-id rule)
    ("p2", "corporate identity portal", "d6"),
    ("p3", "rules reviewed each quarter by managers", "d8"),
    ("p4", "card refund", "d0"),
    ("p5", "  FORGOT my   Password ", "d6"),
]


def exit_code(argv) -> int:
    return cli_exit_code([str(a) for a in argv])


def write_pool(root: Path, pool=POOL) -> None:
    (root / POOL_FOLDER).mkdir()
    (root / POOL_FOLDER / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": qid, "text": text}) + "\n" for qid, text, _ in pool), encoding="utf-8")
    (root / POOL_FOLDER / POOL_RELEVANCE).write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{qid}\t{doc}\t2\n" for qid, _, doc in pool), encoding="utf-8")


# ------------------------------------------------------------------ the demo's pool


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_dataset(tmp_path_factory.mktemp("loop-demo") / "kb")


def test_the_demo_pool_is_unlabelled_deterministic_and_apart_from_every_split(demo, tmp_path):
    ds = load_dataset(demo)
    pool = [json.loads(line) for line in (demo / POOL_FOLDER / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(pool) == 1200 and len({q["_id"] for q in pool}) == 1200
    judged_texts = {q.text.lower() for q in ds.queries.values()}
    assert not {q["text"].lower() for q in pool} & judged_texts  # no pool text is a query of any split
    assert not {q["_id"] for q in pool} & set(ds.queries)
    assert HELD_OUT_SUBDOMAIN not in {q["metadata"]["subdomain"] for q in pool}  # the storage slice stays never trained on
    assert not any(path.name == POOL_RELEVANCE for path in (demo / "qrels").iterdir())
    again = write_demo_dataset(tmp_path / "again")
    for name in ("queries.jsonl", POOL_RELEVANCE):
        assert (demo / POOL_FOLDER / name).read_bytes() == (again / POOL_FOLDER / name).read_bytes()


def test_the_simulator_serves_the_pool_with_its_hidden_relevance(demo):
    ds = load_dataset(demo)
    relevance, texts, pooled = S.served_queries(ds, "test")
    test = ds.split("test").qrels
    assert pooled == 1200 and len(relevance) == len(test) + 1200 and set(texts) == set(relevance)
    hidden = (demo / POOL_FOLDER / POOL_RELEVANCE).read_text(encoding="utf-8").splitlines()[1:]
    qid, doc, grade = hidden[0].split("\t")
    assert relevance[qid][doc] == int(grade) and qid not in ds.queries
    assert all(relevance[q] == dict(test[q]) for q in test)
    assert list(relevance) != sorted(relevance)  # pool and judged queries mixed in the popularity order


def test_a_pool_query_that_is_also_judged_is_an_error(tmp_path):
    data = write_beir(tmp_path / "tiny")
    write_pool(data, [("q3", "how can customers pay", "d2")])
    with pytest.raises(HarnessError, match="pool query 'q3' is also a judged query"):
        S.served_queries(load_dataset(data), "test")


# ------------------------------------------------------------------ weights


def test_copies_by_weight_repeats_by_the_rounded_ratio_to_the_mean_and_keeps_every_row():
    assert copies_by_weight([2.0, 2.0, 8.0, 12.0]) == [1, 1, 1, 2]  # mean 6: 0.33, 0.33, 1.33, 2
    assert copies_by_weight([1.0, 1.0, 1.0, 29.0]) == [1, 1, 1, 4]  # mean 8: 29 / 8 = 3.6
    assert copies_by_weight([5.0]) == [1]


# ------------------------------------------------------------------ logs -> pairs -> finetune --pairs


@pytest.fixture(scope="module")
def loop(tmp_path_factory, tiny_model):
    """Simulated logs of two BM25 rankers serving the tiny dataset's test queries and its
    pool, `ab pairs` with the held-out guard, then `finetune --pairs` with the tiny BERT."""
    tmp = tmp_path_factory.mktemp("loop")
    data = write_beir(tmp / "tiny")
    write_pool(data)
    logs, db, pairs = tmp / "logs", tmp / "ab.duckdb", tmp / "pairs.jsonl"
    assert exit_code(["ab", "simulate", "--out", logs, "--data", data, "--retriever", "bm25",
                      "--retriever", "bm25(k1=0.3,b=0.1,stopwords=none)", "--users", "300", "--days", "4",
                      "--pre-days", "0", "--queries-per-day", "1", "--cache", tmp / "cache", "--seed", "3"]) == 0
    assert exit_code(["ab", "ingest", "--db", db, "--experiment", logs / "experiment.json", str(logs / "*.jsonl")]) == 0
    # a long dwell: fewer long clicks on irrelevant documents, which would make the document
    # above a click a positive of its query (never a negative) in so few queries
    assert exit_code(["ab", "pairs", "--db", db, "--exclude-queries-of", data, "--dwell", "60", "--out", pairs]) == 0
    model = tmp / "round2"
    # no warm-up: with one step of warm-up from 0 the learning rate stays 0
    assert exit_code(["finetune", "--data", data, "--base", tiny_model, "--pairs", pairs, "--passes", "hard-negatives",
                      "--batch-size", "4", "--warmup", "0", "--lr", "1e-3", "--out", model, "--cache", tmp / "cache"]) == 0
    card = json.loads((model / "training_card.json").read_text(encoding="utf-8"))
    return {"data": data, "pairs": pairs, "card": card, "dataset": load_dataset(data)}


def test_a_logged_test_query_never_reaches_the_pairs_only_the_pool_does(loop):
    read = P.read_pairs_file(loop["pairs"], loop["dataset"])
    test_texts = {P.normalise_query(text) for _, _, text, _, split in QUERIES if split in ("dev", "test")}
    logged = {P.normalise_query(r.query) for r in read.rows}
    assert logged and not logged & test_texts
    assert logged <= {P.normalise_query(text) for _, text, _ in POOL}
    assert read.header["leakage"]["excluded_queries"] >= 1  # the test queries served, and p5 (q7 typed otherwise)


def test_finetune_on_a_pairs_file_repeats_rows_by_weight_and_trains_on_its_negatives(loop):
    read = P.read_pairs_file(loop["pairs"], loop["dataset"])
    rows = read.split("train")
    card = loop["card"]
    data = card["training_data"]
    assert data["source"] == "ab-pairs" and data["file_rows_sha256"] == read.header["rows_sha256"]
    assert data["window"] == read.header["window"] and data["debias"] == read.header["debias"]
    assert data["store"] == read.header["store"]
    copies = copies_by_weight([r.weight for r in rows])
    assert data["weighting"]["rows"] == len(rows) and data["weighting"]["rows_trained"] == sum(copies) == data["pairs"]
    assert data["validation"]["kind"] == "split"  # the dataset's dev split, as the trainer does
    # the hard-negative pass: the file's own negatives, no mining; rows without one are counted
    assert card["mining"] is None and card["chosen"] == "pass2"
    with_negatives = sum(n for r, n in zip(rows, copies, strict=True) if r.negatives)
    assert card["passes"]["pass2"]["rows"] == with_negatives
    assert data["negatives"]["rows_with_negatives"] == sum(1 for r in rows if r.negatives)
    assert data["negatives"]["rows_without_negatives"] == sum(1 for r in rows if not r.negatives)
    trained = [json.loads(line) for line in (Path(card["output"]) / "training_pairs.jsonl").read_text().splitlines()]
    assert len(trained) == sum(copies) and {t["source"] for t in trained} == {"ab-clicks"}


def test_mine_reads_the_train_rows_of_a_pairs_file(loop):
    read = P.read_pairs_file(loop["pairs"], loop["dataset"])
    assert read_pairs(loop["pairs"], loop["dataset"]) == [r.pair for r in read.split("train")]
