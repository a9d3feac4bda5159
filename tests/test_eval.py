"""``harness eval`` end to end, on the tiny dataset with tiny models and with the real MiniLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import requires_minilm
from harness.cli import cli
from harness.evaluate import evaluate
from harness.errors import HarnessError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600)


def test_result_holds_per_query_scores_slices_and_provenance(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dense = f"dense:{tiny_model}"
    result = evaluate(
        tiny_dataset,
        ["bm25", dense, f"hybrid(bm25,{dense})"],
        ["heldout", "slice:subdomain=identity", "slice:doc-disjoint"],
        out=out,
        cache_dir=tmp_path / "cache",
        seed=7,
    )
    heldout = result.suite("heldout:test")
    assert sorted(heldout.query_ids) == ["q3", "q4", "q6", "q7", "q9"]
    assert heldout.excluded == {"unjudged": 5}  # q1 q2 q5 q8 (other splits) and q10
    identity = result.suite("slice:subdomain=identity")
    assert sorted(identity.query_ids) == ["q7", "q9"] and identity.excluded["outside_slice"] == 3
    assert set(heldout.per_query["bm25"]["ndcg@10"]) == set(heldout.query_ids)
    assert heldout.aggregates["bm25"]["ndcg@10"] == pytest.approx(
        sum(heldout.per_query["bm25"]["ndcg@10"].values()) / 5
    )
    low, high = heldout.intervals["bm25"]["ndcg@10"]
    assert low <= heldout.aggregates["bm25"]["ndcg@10"] <= high
    curve = heldout.recall_curve["bm25"]
    assert list(curve) == ["1", "3", "5", "10", "20", "50", "100"] and curve["1"] <= curve["10"] <= curve["100"]
    data = json.loads((out / "result.json").read_text())
    assert data["schema_version"] == 1 and data["kind"] == "eval"
    assert data["provenance"]["seed"] == 7 and "ranx" in data["provenance"]["libraries"]
    assert data["dataset"]["splits"]["test"]["hash"] and data["dataset"]["hash"]
    dense_info = next(r for r in data["retrievers"] if r["spec"] == dense)
    assert len(dense_info["description"]["fingerprint"]) == 16
    assert dense_info["latency"]["p95_ms"] >= dense_info["latency"]["p50_ms"] > 0
    assert data["queries"]["q7"] == "forgot my password"


def test_trec_run_files_read_back_with_ranx(tiny_dataset: Path, tmp_path: Path) -> None:
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    result = evaluate(tiny_dataset, ["bm25"], out=tmp_path / "out", cache_dir=tmp_path / "cache")
    run_file = tmp_path / "out" / result.retriever("bm25").run_files["test"]
    run = Run.from_file(str(run_file), kind="trec")
    qrels = Qrels({"q3": {"d2": 1}, "q4": {"d4": 1}, "q6": {"d5": 1}, "q7": {"d6": 1}, "q9": {"d8": 1}})
    assert ranx_evaluate(qrels, run, "ndcg@10", make_comparable=True) == pytest.approx(
        result.suite("heldout:test").aggregates["bm25"]["ndcg@10"]
    )


def test_doc_disjoint_excludes_queries_with_train_positives(tiny_dataset: Path, tmp_path: Path) -> None:
    with open(tiny_dataset / "qrels" / "test.tsv", "a") as handle:
        handle.write("q4\td3\t1\n")  # d3 is the positive of train query q5
    result = evaluate(tiny_dataset, ["bm25"], ["slice:doc-disjoint"], cache_dir=tmp_path / "cache")
    assert "q4" not in result.suite("slice:doc-disjoint").query_ids
    assert result.suite("slice:doc-disjoint").excluded["outside_slice"] == 1


def test_identical_ids_are_dropped_when_asked(tiny_dataset: Path, tmp_path: Path) -> None:
    corpus = tiny_dataset / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + json.dumps({"_id": "q7", "text": "forgot my password"}) + "\n")
    with pytest.warns(UserWarning, match="also document ids"):
        kept = evaluate(tiny_dataset, ["bm25"], cache_dir=tmp_path / "c1")
    dropped = evaluate(tiny_dataset, ["bm25"], cache_dir=tmp_path / "c2", ignore_identical_ids=True)
    assert dropped.options["ignore_identical_ids"] is True
    assert kept.suite("heldout:test").per_query["bm25"]["mrr@10"]["q7"] == 0.5  # the query found itself first
    assert dropped.suite("heldout:test").per_query["bm25"]["mrr@10"]["q7"] == 1.0


def test_unknown_metric_and_bad_slice_are_errors(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="unknown metric 'ndgc@10'"):
        evaluate(tiny_dataset, ["bm25"], metrics=["ndgc@10"], cache_dir=tmp_path)
    with pytest.raises(HarnessError, match="no judged query"):
        evaluate(tiny_dataset, ["bm25"], ["slice:subdomain=nowhere"], cache_dir=tmp_path)
    with pytest.raises(HarnessError, match="unknown suite"):
        evaluate(tiny_dataset, ["bm25"], ["everything"], cache_dir=tmp_path)


@pytest.mark.parametrize("metric", ["ndcg@0", "recall@0", "mrr@0", "precision@0", "map@0", "hit@0", "judged@0"])
def test_a_cut_off_below_1_is_an_error(metric: str, tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=f"metric '{metric}': the cut-off k of @k must be at least 1"):
        evaluate(tiny_dataset, ["bm25"], metrics=[metric], cache_dir=tmp_path)


def test_judgements_for_missing_documents_error_naming_the_option_or_are_kept_and_counted(tiny_dataset: Path, tmp_path: Path) -> None:
    with open(tiny_dataset / "qrels" / "test.tsv", "a") as handle:
        handle.write("q3\tgone-1\t1\n")
    done = run_cli("eval", "--data", str(tiny_dataset), "--retriever", "bm25", "--out", str(tmp_path / "o"))
    assert done.returncode == 3 and not (tmp_path / "o").exists()
    assert done.stderr.strip().splitlines() == [
        f"error: {tiny_dataset / 'qrels' / 'test.tsv'}:7: unknown document id 'gone-1' (to keep judgements for documents "
        "missing from the corpus, relevant and never retrievable as in BEIR and MTEB, pass --unknown-docs keep)"
    ]
    validated = run_cli("datasets", "validate", "--data", str(tiny_dataset), "--unknown-docs", "keep")
    assert validated.returncode == 0 and json.loads(validated.stdout)["unretrievable_judgements"] == {"dev": 0, "test": 1, "train": 0}
    kept = evaluate(tiny_dataset, ["bm25"], cache_dir=tmp_path / "cache", unknown_docs="keep")
    assert kept.dataset["unretrievable_judgements"] == {"test": 1}
    assert kept.suite("heldout:test").per_query["bm25"]["recall@100"]["q3"] == 0.5  # relevant, never retrievable


def test_cli_errors_exit_3_with_one_line_naming_file_and_line(tiny_dataset: Path, tmp_path: Path) -> None:
    lines = (tiny_dataset / "queries.jsonl").read_text().splitlines()
    lines[4] = "{broken"
    (tiny_dataset / "queries.jsonl").write_text("\n".join(lines) + "\n")
    done = run_cli("eval", "--data", str(tiny_dataset), "--retriever", "bm25", "--out", str(tmp_path / "o"))
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [f"error: {tiny_dataset / 'queries.jsonl'}:5: bad JSON: Expecting property name enclosed in double quotes at column 2"]
    assert not (tmp_path / "o" / "result.json").exists()


def test_cli_bad_spec_shows_where_it_broke(tiny_dataset: Path, tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["eval", "--data", str(tiny_dataset), "--retriever", "hybrid(bm25", "--out", str(tmp_path)])
    assert isinstance(done.exception, HarnessError) and "column 12" in str(done.exception)


def test_help_is_fast_and_carries_examples() -> None:
    import time

    started = time.perf_counter()
    done = run_cli("--help")
    assert done.returncode == 0 and "eval" in done.stdout
    assert time.perf_counter() - started < 5  # generous for a loaded CI machine; bench/ has the real figure
    for command in ("eval", "datasets"):
        assert "Example" in run_cli(command, "--help").stdout


@requires_minilm
@pytest.mark.minilm
def test_real_minilm_end_to_end_through_the_cli(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(
        "eval", "--data", str(tiny_dataset), "--retriever", "bm25", "--retriever", "dense",
        "--retriever", "hybrid(bm25,dense)", "--suite", "heldout", "--suite", "slice:subdomain=identity",
        "--out", str(out), "--cache", str(tmp_path / "cache"),
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "result.json").read_text())
    heldout = next(s for s in data["suites"] if s["name"] == "heldout:test")
    # the colloquial "forgot my password" must find the password-reset page with MiniLM
    assert heldout["per_query"]["dense"]["mrr@10"]["q7"] == 1.0
    assert heldout["aggregates"]["dense"]["ndcg@10"] > 0.6
    dense = next(r for r in data["retrievers"] if r["spec"] == "dense")
    assert dense["description"]["model"] == "all-MiniLM-L6-v2" and dense["description"]["dimension"] == 384
