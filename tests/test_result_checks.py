"""Reading a result checks every per-query score: a non-finite, non-numeric, out-of-range or
missing one is an error (exit 3) naming the file, line, suite, retriever, metric and query, so
``harness gate`` and ``harness compare`` never pass, fail or pair on it.

The files are built from a real evaluation (bm25 against a re-parameterised bm25 on the
tiny dataset), one score corrupted at a time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import write_beir
from harness.errors import HarnessError
from harness.evaluate import evaluate
from harness.results import EvalResult, SuiteResult, check_scores, read_eval_result
from test_gate import run_main

BASELINE, CANDIDATE = "bm25", "bm25(k1=0.9,b=0.4)"
SUITE, METRIC = "heldout:test", "ndcg@10"

POLICY = f"""\
baseline = "{BASELINE}"
candidate = "{CANDIDATE}"
results = ["result.json"]
n_resamples = 999

[[check]]
type = "superiority"
suite = "heldout"
metric = "{METRIC}"

[[check]]
type = "non-inferiority"
suite = "heldout"
metric = "recall@10"
margin = 0.5
"""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("evaluated")
    data = write_beir(root / "data")
    evaluate(data, [BASELINE, CANDIDATE], ["heldout"], out=root / "eval", metrics=[METRIC, "recall@10"], cache_dir=root / "cache")
    return json.loads((root / "eval" / "result.json").read_text())


def write(folder: Path, data: dict) -> Path:
    """The result as ``json.dump`` writes it: NaN and infinities become the literals
    ``NaN``, ``Infinity`` and ``-Infinity`` that Python's json reads back without a word."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    (folder / "gate.toml").write_text(POLICY, encoding="utf-8")
    return folder / "result.json"


def candidate_scores(data: dict) -> tuple[dict, str]:
    suite = next(s for s in data["suites"] if s["name"] == SUITE)
    return suite["per_query"][CANDIDATE][METRIC], suite["query_ids"][2]


CORRUPTIONS = {
    "NaN": (lambda scores, q: scores.update({q: float("nan")}), "NaN is not a finite number", "NaN"),
    "+Infinity": (lambda scores, q: scores.update({q: float("inf")}), "Infinity is not a finite number", "Infinity"),
    "-Infinity": (lambda scores, q: scores.update({q: float("-inf")}), "-Infinity is not a finite number", "-Infinity"),
    "null": (lambda scores, q: scores.update({q: None}), "null is not a number", "null"),
    "string": (lambda scores, q: scores.update({q: "0.5"}), '"0.5" is not a number', '"0.5"'),
    "boolean": (lambda scores, q: scores.update({q: True}), "true is not a number", "true"),
    "above range": (lambda scores, q: scores.update({q: 1.5}), "1.5 is outside the range of ndcg@10, [0, 1]", "1.5"),
    "below range": (lambda scores, q: scores.update({q: -0.25}), "-0.25 is outside the range of ndcg@10, [0, 1]", "-0.25"),
    "missing query": (lambda scores, q: scores.pop(q), "no score (1 of the suite's 5 queries have none)", f'"{METRIC}"'),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
@pytest.mark.parametrize("command", ["gate", "compare"])
def test_gate_and_compare_exit_3_naming_file_line_suite_retriever_metric_and_query(
    evaluated: dict, tmp_path: Path, kind: str, command: str
) -> None:
    data = json.loads(json.dumps(evaluated))
    scores, query = candidate_scores(data)
    corrupt, message, written = CORRUPTIONS[kind]
    corrupt(scores, query)
    result = write(tmp_path, data)
    out = tmp_path / "out"
    if command == "gate":
        code, output = run_main("gate", "--policy", str(tmp_path / "gate.toml"), "--out", str(out))
    else:
        code, output = run_main("compare", str(result), "--baseline", BASELINE, "--resamples", "999", "--out", str(out))
    assert code == 3, output
    where = f"suite {SUITE}, retriever {CANDIDATE}, {METRIC}, query {query}: {message}"
    match = re.search(rf"{re.escape(str(result))}:(\d+): {re.escape(where)}", output)
    assert match, output
    line = result.read_text().splitlines()[int(match.group(1)) - 1]
    assert written in line and (kind == "missing query" or f'"{query}"' in line), line
    assert "PASS" not in output and "FAIL" not in output
    if command == "gate":  # the error record CI reads, never a verdict
        assert json.loads((out / "gate.json").read_text())["status"] == "error"
    else:
        assert not (out / "compare.json").exists()


def test_the_intact_result_reads_and_gets_a_verdict(evaluated: dict, tmp_path: Path) -> None:
    result = write(tmp_path, evaluated)
    assert read_eval_result(result).suite(SUITE).per_query[CANDIDATE][METRIC] == candidate_scores(evaluated)[0]
    code, output = run_main("gate", "--policy", str(tmp_path / "gate.toml"))
    assert code in (0, 1, 2), output


def test_a_score_for_a_query_outside_the_suite_and_a_repeated_query_id_are_errors(evaluated: dict, tmp_path: Path) -> None:
    data = json.loads(json.dumps(evaluated))
    scores, _ = candidate_scores(data)
    scores["q-stray"] = 0.5
    with pytest.raises(HarnessError, match="query q-stray: a score for a query that is not among the suite's query_ids"):
        read_eval_result(write(tmp_path / "stray", data))
    data = json.loads(json.dumps(evaluated))
    suite = next(s for s in data["suites"] if s["name"] == SUITE)
    suite["query_ids"].append(suite["query_ids"][0])
    with pytest.raises(HarnessError, match=f"lists query '{suite['query_ids'][0]}' twice"):
        read_eval_result(write(tmp_path / "twice", data))


def test_unknown_metric_in_a_result_is_an_error(evaluated: dict, tmp_path: Path) -> None:
    data = json.loads(json.dumps(evaluated))
    suite = next(s for s in data["suites"] if s["name"] == SUITE)
    suite["per_query"][CANDIDATE]["ndgc@10"] = suite["per_query"][CANDIDATE].pop(METRIC)
    with pytest.raises(HarnessError, match="ndgc@10: unknown metric 'ndgc@10'"):
        read_eval_result(write(tmp_path, data))


def test_a_query_only_one_file_scores_is_an_error_not_a_smaller_n(evaluated: dict, tmp_path: Path) -> None:
    """Baseline and candidate in two files, each consistent on its own; the candidate's file
    lacks a query of the baseline's: compare must not pair on the four they share."""
    files = []
    for spec, drop in ((BASELINE, None), (CANDIDATE, candidate_scores(evaluated)[1])):
        data = json.loads(json.dumps(evaluated))
        data["retrievers"] = [r for r in data["retrievers"] if r["spec"] == spec]
        for suite in data["suites"]:
            suite["per_query"] = {spec: suite["per_query"][spec]}
            suite["aggregates"] = {spec: suite["aggregates"][spec]}
            if drop is not None:
                suite["query_ids"].remove(drop)
                for scores in suite["per_query"][spec].values():
                    scores.pop(drop)
        files.append(write(tmp_path / spec, data))
    code, output = run_main("compare", *map(str, files), "--baseline", BASELINE, "--resamples", "999")
    assert code == 3, output
    assert f"{SUITE}, {METRIC}: {CANDIDATE} has no score for query '{candidate_scores(evaluated)[1]}'" in output, output


def test_an_evaluation_checks_its_own_scores_before_writing(tmp_path: Path) -> None:
    suite = SuiteResult(SUITE, "heldout", "test", ["q1", "q2"], {}, {"bm25": {METRIC: {"q1": 0.5, "q2": float("nan")}}})
    with pytest.raises(HarnessError, match=f"evaluation: suite {SUITE}, retriever bm25, {METRIC}, query q2: NaN is not a finite number"):
        check_scores(EvalResult({}, {}, {}, [], [suite]).suites, "evaluation")
