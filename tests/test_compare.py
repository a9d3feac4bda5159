"""``harness compare``: result files in, paired statistics and the decision table out."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import requires_minilm
from harness.cli import cli
from harness.results import EvalResult, read_eval_result
from test_gate import write_result


def compare(*args: str):
    return CliRunner().invoke(cli, ["compare", *args], catch_exceptions=False)


def test_compare_result_file(tmp_path: Path) -> None:
    source = write_result(tmp_path / "result.json")
    out = tmp_path / "out"
    result = compare(str(source), "--baseline", "bm25", "--metric", "ndcg@10", "--resamples", "999", "--margin", "0.001", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "cannot detect" in result.output and "decision table" in result.output
    document = json.loads((out / "compare.json").read_text())
    assert document["schema_version"] == 1 and document["kind"] == "compare" and document["provenance"]["libraries"]
    assert document["baseline"] == "bm25" and len(document["candidates"]) == 3
    assert document["options"]["correction"] == "holm"
    # 3 candidates x 2 suites x 1 metric, Holm across all six
    assert len(document["comparisons"]) == 6
    first = document["comparisons"][0]
    for key in ("difference", "ci_low", "ci_high", "p_value", "p_adjusted", "effect_size", "mde", "wins", "ties", "losses", "moved"):
        assert key in first
    hybrid = next(c for c in document["comparisons"] if c["candidate"] == "hybrid(bm25,dense)" and c["suite"] == "heldout:test")
    assert hybrid["significant"] and hybrid["ci_low"] > 0 and hybrid["n"] == 200
    assert hybrid["moved"]["gains"][0]["text"].startswith("query text")
    table = document["decision_table"][0]
    assert table["suite"] == "heldout:test" and [r["arm"] for r in table["rows"]][0] == "bm25"
    pareto = {r["arm"] for r in table["rows"] if r["pareto"]}
    assert "bm25" in pareto and "dense(dim=16)" not in pareto
    assert "Decision table" in (out / "compare.md").read_text()


def test_compare_merges_files_and_uses_bh(tmp_path: Path) -> None:
    source = write_result(tmp_path / "result.json")
    full = read_eval_result(source).to_dict()
    # split into a baseline file and a candidate file of the same dataset
    for name, keep in (("a.json", {"bm25"}), ("b.json", {"hybrid(bm25,dense)"})):
        data = json.loads(json.dumps(full))
        data["retrievers"] = [r for r in data["retrievers"] if r["spec"] in keep]
        for suite in data["suites"]:
            suite["per_query"] = {k: v for k, v in suite["per_query"].items() if k in keep}
            suite["aggregates"] = {k: v for k, v in suite["aggregates"].items() if k in keep}
        EvalResult.from_dict(data).write(tmp_path / name)
    out = tmp_path / "out"
    result = compare(str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--baseline", "bm25", "--correction", "bh",
                     "--suite", "heldout", "--resamples", "999", "--max-queries", "50", "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads((out / "compare.json").read_text())
    assert [c["candidate"] for c in document["comparisons"]] == ["hybrid(bm25,dense)"]
    assert document["comparisons"][0]["n"] == 50 and len(document["sampled_query_ids"]["heldout:test"]) == 50
    assert document["options"]["correction"] == "bh"


def test_compare_errors_exit_3(tmp_path: Path) -> None:
    from test_gate import run_main

    source = write_result(tmp_path / "result.json")
    code, output = run_main("compare", str(source), "--baseline", "dense:other")
    assert code == 3 and "not in the results" in output
    code, output = run_main("compare", str(source), "--baseline", "bm25", "--metric", "ndgc@10")
    assert code == 3 and "unknown metric" in output
    code, output = run_main("compare", "--baseline", "bm25")
    assert code == 3 and "RESULT.json" in output


@requires_minilm
def test_compare_evaluates_minilm_end_to_end(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["compare", "--data", str(tiny_dataset), "--baseline", "bm25", "--retriever", "dense", "--retriever",
         "hybrid(bm25,dense)", "--suite", "heldout", "--suite", "slice:subdomain=identity", "--resamples", "999",
         "--cache", str(tmp_path / "cache"), "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "compare.json").read_text())
    assert (out / "eval" / "result.json").is_file()
    assert {c["candidate"] for c in document["comparisons"]} == {"dense", "hybrid(bm25,dense)"}
    assert {t["suite"] for t in document["decision_table"]} == {"heldout:test", "slice:subdomain=identity"}
    dense_row = next(r for r in document["decision_table"][0]["rows"] if r["arm"] == "dense")
    assert dense_row["dimension"] == 384 and dense_row["p95_ms"] > 0
    assert any(r["pareto"] for r in document["decision_table"][0]["rows"])
