"""The MTEB suite: mteb's own evaluator on local BEIR folders, its result cache, named tasks
offline, ``mteb:general`` and agreement with the harness's own metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import requires_minilm, write_beir
from harness.errors import HarnessError
from harness.evaluate import evaluate

pytest.importorskip("mteb")

from harness.suites import parse_suite  # noqa: E402
from harness.suites.mteb import GENERAL_ENV, MTEBSuite  # noqa: E402


def only_task(suite) -> dict:
    (info,) = suite.details["tasks"].values()
    return info


def test_spellings_parse_and_bad_ones_are_errors() -> None:
    assert parse_suite("mteb:SciFact, NFCorpus").name == "mteb:SciFact,NFCorpus"
    assert [r.value for r in MTEBSuite.parse("SciFact,NFCorpus").refs] == ["SciFact", "NFCorpus"]
    local = parse_suite("mteb:local")
    assert local.refs[0].kind == "context" and local.splits() == []
    assert parse_suite("mteb:local@dev").splits() == ["dev"]
    paths = parse_suite("mteb:local=../a;../b").refs
    assert [(r.kind, r.value) for r in paths] == [("local", "../a"), ("local", "../b")]
    general = parse_suite("mteb:general")
    assert general.general and general.refs == []
    assert [r.value for r in parse_suite("mteb:general=x;y").refs] == ["x", "y"]
    with pytest.raises(HarnessError, match="mteb needs tasks"):
        parse_suite("mteb:")
    with pytest.raises(HarnessError, match="unknown mteb task.*NoSuchTask"):
        parse_suite("mteb:SciFact,NoSuchTask")
    with pytest.raises(HarnessError, match="is a STS task"):
        parse_suite("mteb:STS12")
    with pytest.raises(HarnessError, match="named twice"):
        parse_suite("mteb:SciFact,SciFact")


def demo_subset(root: Path, queries: int = 25, distractors: int = 120, seed: int = 3) -> Path:
    """A small slice of the demo dataset (its lookalike documents make rankings non-trivial)."""
    import random

    from harness.data import load_dataset
    from harness.data.demo import write_demo_dataset

    demo = load_dataset(write_demo_dataset(root / "demo-full"))
    qrels = demo.split("test").qrels
    chosen = sorted(qrels)[:queries]
    relevant = {doc for qid in chosen for doc in qrels[qid]}
    others = sorted(set(demo.corpus) - relevant)
    docs = relevant | set(random.Random(seed).sample(others, distractors))
    target = root / "demo-subset"
    (target / "qrels").mkdir(parents=True)
    with open(target / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id in sorted(docs):
            doc = demo.corpus[doc_id]
            handle.write(json.dumps({"_id": doc_id, "title": doc.title, "text": doc.text}) + "\n")
    with open(target / "queries.jsonl", "w", encoding="utf-8") as handle:
        for qid in chosen:
            handle.write(json.dumps({"_id": qid, "text": demo.queries[qid].text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q in chosen for d, g in qrels[q].items()]
    (target / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


@requires_minilm
def test_harness_and_mteb_agree_to_1e4_on_a_local_task(tmp_path: Path) -> None:
    """The harness's own figures (faiss + ranx) and mteb's (its search + pytrec_eval) on one split."""
    data = demo_subset(tmp_path)
    result = evaluate(data, ["dense", "bm25"], ["heldout", "mteb:local"], cache_dir=tmp_path / "cache")
    heldout, suite = result.suite("heldout:test"), result.suite("mteb:local")
    assert sorted(suite.query_ids) == sorted(heldout.query_ids) and len(suite.query_ids) == 25
    info = only_task(suite)
    ours = heldout.aggregates["dense"]["ndcg@10"]
    assert 0.3 < ours < 0.99  # a real ranking, not a trivial one
    # mteb's own figures, as it computed and cached them (rounded by mteb to 5 places)
    assert info["main_score"]["dense"] == pytest.approx(ours, abs=1e-4)
    for mteb_name, ours_name in [("ndcg_at_10", "ndcg@10"), ("recall_at_100", "recall@100"), ("map_at_100", "map@100"),
                                 ("mrr_at_10", "mrr@10"), ("precision_at_10", "precision@10"), ("recall_at_10", "recall@10")]:
        assert info["scores"]["dense"][mteb_name] == pytest.approx(heldout.aggregates["dense"][ours_name], abs=1e-4), mteb_name
    # and query by query
    for metric, scores in heldout.per_query["dense"].items():
        for qid, score in scores.items():
            assert suite.per_query["dense"][metric][qid] == pytest.approx(score, abs=1e-4), (metric, qid)
    assert suite.aggregates["dense"]["ndcg@10"] == pytest.approx(ours, abs=1e-4)
    assert suite.details["skipped_retrievers"] == {"bm25": "not a dense retriever: mteb evaluates embedding models"}
    assert "bm25" not in suite.per_query and suite.details["complete"] is True
    assert suite.details["mteb_version"].startswith("2.")
    assert info["encoded_documents"]["dense"] == 0  # the heldout suite's embedding cache served the corpus


def test_tied_scores_are_broken_as_trec_eval_and_mteb_break_them() -> None:
    """mteb scores with pytrec_eval, which ranks tied hits by doc id descending; the harness's
    metrics read every run in that one order, whatever order its tied hits come in."""
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    from harness.metrics import per_query

    qrels = {"q1": {"d2": 1}, "q2": {"a": 2, "c": 1}}
    run = {"q1": {"d2": 0.9, "d3": 0.9, "d4": 0.9, "d1": 0.95}, "q2": {"a": 0.5, "b": 0.5, "c": 0.5}}
    mteb_scores = calculate_retrieval_scores(run, qrels, [10])[0]
    reversed_run = {qid: dict(reversed(hits.items())) for qid, hits in run.items()}
    for hits in (run, reversed_run):
        ours = per_query(qrels, hits, ["ndcg@10"])["ndcg@10"]
        for qid in qrels:
            assert ours[qid] == pytest.approx(mteb_scores[qid]["ndcg_cut_10"], abs=1e-9)
    assert ours["q1"] < 1.0  # d2 ties with d3 and d4 and ranks below both, as in trec_eval


@requires_minilm
def test_identical_ids_option_is_explicit_and_both_ways_agree(tiny_dataset: Path, tmp_path: Path) -> None:
    """Queries that are also documents (as in Quora): mteb and the harness drop self-hits only when asked."""
    corpus = tiny_dataset / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + json.dumps({"_id": "q7", "text": "forgot my password"}) + "\n")
    figures = {}
    for ignore in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if ignore else "always")
            result = evaluate(
                tiny_dataset, ["dense"], ["heldout", "mteb:local"], cache_dir=tmp_path / "cache", ignore_identical_ids=ignore
            )
        heldout, suite = result.suite("heldout:test"), result.suite("mteb:local")
        info = only_task(suite)
        assert info["ignore_identical_ids"] is ignore
        assert info["scores"]["dense"]["ndcg_at_10"] == pytest.approx(heldout.aggregates["dense"]["ndcg@10"], abs=1e-4)
        assert suite.per_query["dense"]["mrr@10"] == pytest.approx(heldout.per_query["dense"]["mrr@10"], abs=1e-4)
        figures[ignore] = (suite.per_query["dense"]["mrr@10"]["q7"], next(iter(suite.details["tasks"])))
    assert figures[False][0] == pytest.approx(0.5) and figures[True][0] == pytest.approx(1.0)
    assert figures[False][1] != figures[True][1]  # the option is part of the task's name, so of mteb's cache key


def test_mteb_scores_kept_judgements_for_missing_documents_as_the_harness_does(
    tiny_dataset: Path, tiny_model: Path, tmp_path: Path
) -> None:
    with open(tiny_dataset / "qrels" / "test.tsv", "a") as handle:
        handle.write("q3\tgone-1\t1\nq4\tgone-2\t2\n")
    dense = f"dense:{tiny_model}"
    result = evaluate(tiny_dataset, [dense], ["heldout", "mteb:local"], cache_dir=tmp_path / "cache", unknown_docs="keep")
    heldout, suite = result.suite("heldout:test"), result.suite("mteb:local")
    assert result.dataset["unretrievable_judgements"] == {"test": 2}
    assert only_task(suite)["main_score"][dense] == pytest.approx(heldout.aggregates[dense]["ndcg@10"], abs=1e-4)
    for metric in ("ndcg@10", "recall@100"):
        assert suite.per_query[dense][metric] == pytest.approx(heldout.per_query[dense][metric], abs=1e-4)
    assert heldout.per_query[dense]["recall@100"]["q3"] == 0.5  # relevant and never retrievable, for mteb too


def test_result_cache_is_keyed_by_fingerprint_and_settings(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    dense = f"dense:{tiny_model}"
    cache = tmp_path / "cache"
    first = evaluate(tiny_dataset, [dense], ["mteb:local"], cache_dir=cache).suite("mteb:local")
    assert only_task(first)["from_cache"][dense] is False
    assert only_task(first)["encoded_documents"][dense] == 9
    results = list((cache / "mteb" / "results").rglob("HarnessLocal-*.json"))
    assert len(results) == 1 and results[0].parent.name == only_task(first)["fingerprints"][dense]

    again = evaluate(tiny_dataset, [dense], ["mteb:local"], cache_dir=cache).suite("mteb:local")
    assert only_task(again)["from_cache"][dense] is True
    assert again.per_query == first.per_query

    # another setting of the same weights is another mteb experiment, never served from the cache
    truncated = f"dense:{tiny_model}(dim=16)"
    both = evaluate(tiny_dataset, [dense, truncated], ["mteb:local"], cache_dir=cache).suite("mteb:local")
    info = only_task(both)
    assert info["from_cache"] == {dense: True, truncated: False}
    assert info["fingerprints"][dense] == info["fingerprints"][truncated]
    assert info["delta_vs_base"]["base"] == dense
    assert info["delta_vs_base"]["main_score"][truncated] == pytest.approx(
        info["main_score"][truncated] - info["main_score"][dense]
    )
    assert (cache / "mteb" / "results").joinpath(results[0].parent.parent.name, info["fingerprints"][dense], "experiments").is_dir()

    # a changed qrels file is a new task version: run again, not read back
    qrels = tiny_dataset / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "q10\td8\t1\n")
    changed = evaluate(tiny_dataset, [dense], ["mteb:local"], cache_dir=cache).suite("mteb:local")
    assert only_task(changed)["from_cache"][dense] is False and "q10" in changed.query_ids


def test_named_task_offline_is_skipped_with_a_message_and_the_run_goes_on(
    tiny_dataset: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dense = f"dense:{tiny_model}"
    result = evaluate(tiny_dataset, [dense], ["heldout", "mteb:SciFact"], cache_dir=tmp_path / "cache")
    suite = result.suite("mteb:SciFact")
    assert result.suite("heldout:test").aggregates[dense]["ndcg@10"] > 0  # the run went on
    assert set(suite.details["skipped_tasks"]) == {"SciFact"}
    assert "load_data" in suite.details["skipped_tasks"]["SciFact"]
    assert suite.details["complete"] is False and suite.per_query == {} and suite.aggregates == {}
    assert suite.excluded == {"mteb_tasks_skipped": 1}
    lines = [line for line in capsys.readouterr().err.splitlines() if "SciFact" in line]
    assert len(lines) == 1 and "skipped" in lines[0] and "offline" in lines[0] and "HF_HUB_OFFLINE=0" in lines[0]


def test_general_runs_local_folders_offline_and_says_so_without_them(
    tiny_dataset: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    other = write_beir(tmp_path / "other")
    qrels = other / "qrels" / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td1\t1\n")
    dense = f"dense:{tiny_model}"

    monkeypatch.delenv(GENERAL_ENV, raising=False)
    alone = evaluate(tiny_dataset, [dense], ["mteb:general"], cache_dir=tmp_path / "cache").suite("mteb:general")
    assert alone.details["complete"] is False and GENERAL_ENV in alone.details["skipped_tasks"]["general"]
    assert GENERAL_ENV in capsys.readouterr().err

    monkeypatch.setenv(GENERAL_ENV, f"{tiny_dataset};{other}")
    suite = evaluate(tiny_dataset, [dense], ["mteb:general"], cache_dir=tmp_path / "cache").suite("mteb:general")
    assert suite.details["complete"] is True and len(suite.details["tasks"]) == 2
    assert all("/" in qid for qid in suite.query_ids) and len(suite.query_ids) == 5 + 2
    means = [info["scores"][dense]["ndcg_at_10"] for info in suite.details["tasks"].values()]
    assert suite.aggregates[dense]["ndcg@10"] == pytest.approx(sum(means) / 2, abs=1e-4)  # mean of task means

    explicit = evaluate(tiny_dataset, [dense], [f"mteb:local={other}"], cache_dir=tmp_path / "cache").suite(f"mteb:local={other}")
    assert only_task(explicit)["from_cache"][dense] is True  # the same folder, the same task: mteb's cache answers


@requires_minilm
def test_cli_side_by_side_with_real_minilm(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_QUIET": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "eval", "--data", str(tiny_dataset), "--retriever", "dense",
         "--retriever", f"dense:{tiny_model}", "--suite", "mteb:local", "--cache", str(tmp_path / "cache"), "--out", str(out)],
        capture_output=True, text=True, timeout=900, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    # both models are rows of one table (long folder paths fold inside the cell, so check the rows count)
    table = proc.stdout.split("mteb:local", 1)[1]
    assert "dense " in table and table.count("\u2502 dense") == 2
    data = json.loads((out / "result.json").read_text())
    (suite,) = [s for s in data["suites"] if s["kind"] == "mteb"]
    assert set(suite["aggregates"]) == {"dense", f"dense:{tiny_model}"}
    info = next(iter(suite["details"]["tasks"].values()))
    assert info["scores"]["dense"]["ndcg_at_10"] > info["scores"][f"dense:{tiny_model}"]["ndcg_at_10"]
    assert suite["per_query"]["dense"]["ndcg@10"].keys() == set(suite["query_ids"])


def test_unknown_local_folder_is_an_error(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="does not exist"):
        evaluate(tiny_dataset, [f"dense:{tiny_model}"], [f"mteb:local={tmp_path / 'nope'}"], cache_dir=tmp_path / "cache")
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
