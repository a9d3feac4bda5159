"""Typed slice predicates (``harness.predicates`` through ``slice:``): dates as ISO 8601
dates, numbers as numbers, booleans, text by equality only, and every predicate the data
cannot answer an error before any model loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.evaluate import evaluate
from harness.suites import parse_suite

# (query id, query metadata, relevant document's metadata); one document per query
ROWS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("q1", {"date": "2024-11-30", "n": 9, "urgent": True}, {"kind": "billing", "date": "2024-11-01"}),
    ("q2", {"date": "2025-03-01", "n": 10, "urgent": False}, {"kind": "billing", "date": "2025-02-01"}),
    ("q3", {"date": "2025-01-01T09:30", "n": 11, "urgent": False}, {"kind": "network", "date": "2024-12-01"}),
    ("q4", {}, {"kind": "network", "date": "2025-06-01"}),  # no query metadata: its document's decides
]


def write_data(root: Path, rows: list[tuple[str, dict[str, Any], dict[str, Any]]] = ROWS) -> Path:
    (root / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"d{qid}", "title": "", "text": f"document for {qid} words", "metadata": meta} for qid, _, meta in rows]
    queries = [{"_id": qid, "text": f"words {qid}", "metadata": meta} for qid, meta, _ in rows]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    qrels = ["query-id\tcorpus-id\tscore", *(f"{qid}\td{qid}\t1" for qid, _, _ in rows)]
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    return root


def chosen(data: Path, selector: str, cache: Path) -> list[str]:
    result = evaluate(data, ["bm25"], [f"slice:{selector}"], cache_dir=cache)
    return sorted(result.suite(f"slice:{selector}").query_ids)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        # as dates: q3's date-time is after New Year's midnight; q4 falls back to its document
        ("date>=2025-01-01", ["q2", "q3", "q4"]),
        ("date<2025-01-01", ["q1"]),
        # ISO 8601's basic form: as text '2025-03-01' < '20250101', as dates it is later
        ("date>=20250101", ["q2", "q3", "q4"]),
        ("date>2025-01-01 09:30", ["q2", "q4"]),
        # as numbers: as text '10' < '9'
        ("n>=9&n<11", ["q1", "q2"]),
        ("urgent=true", ["q1"]),
        ("urgent!=TRUE", ["q2", "q3"]),
        ("kind=network", ["q3", "q4"]),
        ("kind!=network&date>=2025-01-01", ["q2"]),
    ],
)
def test_values_compare_as_the_type_of_their_field(tmp_path: Path, selector: str, expected: list[str]) -> None:
    assert chosen(write_data(tmp_path / "data"), selector, tmp_path / "cache") == expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("date<=notadate", r"'notadate' is not an ISO 8601 date \('date' holds dates in the data\): write YYYY-MM-DD"),
        ("date>=2025-1-1", r"'2025-1-1' is not an ISO 8601 date"),
        ("n>=nine", r"'nine' is not a number \('n' holds numbers in the data\)"),
        ("kind<m", r"'<' needs numbers or ISO 8601 dates, but 'kind' holds text in the data \(e.g. 'billing'\); use = or !="),
        ("urgent>=true", r"'>=' needs numbers or ISO 8601 dates, but 'urgent' holds boolean"),
        ("urgent=yes", r"'yes' is not true or false"),
        ("colour=red", r"none of the queries and documents of .* has metadata 'colour' \(keys present: date, kind, n, urgent\)"),
    ],
)
def test_a_predicate_the_data_cannot_answer_is_an_error(tmp_path: Path, selector: str, message: str) -> None:
    with pytest.raises(HarnessError, match=rf"^slice:{selector}: {message}"):
        chosen(write_data(tmp_path / "data"), selector, tmp_path / "cache")


def test_mixed_types_and_time_zones_are_errors(tmp_path: Path) -> None:
    rows = [("q1", {"n": 3}, {}), ("q2", {"n": "three"}, {}), ("q3", {"at": "2025-01-01T00:00+01:00"}, {"at": "2025-01-01"})]
    data = write_data(tmp_path / "data", rows)
    with pytest.raises(HarnessError, match=r"metadata 'n' mixes types among the queries and documents of .*: number \(3\), text \('three'\)"):
        chosen(data, "n=3", tmp_path / "cache")
    with pytest.raises(HarnessError, match="mixes dates with and without a time zone"):
        chosen(data, "at>=2024-01-01", tmp_path / "cache")


def test_text_that_is_partly_dates_is_text(tmp_path: Path) -> None:
    rows = [("q1", {"when": "2025-01-01"}, {}), ("q2", {"when": "unknown"}, {})]
    data = write_data(tmp_path / "data", rows)
    assert chosen(data, "when=unknown", tmp_path / "cache") == ["q2"]
    with pytest.raises(HarnessError, match=r"'when' holds text in the data \(e.g. 'unknown'\)"):
        chosen(data, "when>=2024-01-01", tmp_path / "cache")


def test_bad_syntax_fails_when_the_suite_is_named() -> None:
    with pytest.raises(HarnessError, match=r"slice:date: bad predicate 'date': expected KEY OP VALUE"):
        parse_suite("slice:date")


def test_the_error_comes_before_any_model_loads_and_the_cli_exits_3(tmp_path: Path, tiny_model: Path) -> None:
    data = write_data(tmp_path / "data")
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "eval", "--data", str(data), "--retriever", f"dense:{tiny_model}",
         "--suite", "heldout", "--suite", "slice:date<=notadate", "--out", str(tmp_path / "out"), "--cache", str(cache)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "error: slice:date<=notadate: 'notadate' is not an ISO 8601 date ('date' holds dates in the data): "
        "write YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
    ]
    # nothing was encoded (no embeddings) and the model was never loaded (no identity memo)
    assert not (cache / "embeddings").exists() and not (cache / "models").exists()
    assert not (tmp_path / "out" / "result.json").exists()


def test_an_empty_slice_is_an_error_before_any_model_loads(tmp_path: Path, tiny_model: Path) -> None:
    data = write_data(tmp_path / "data")
    with pytest.raises(HarnessError, match="no judged query of split 'test' is in this slice"):
        evaluate(data, [f"dense:{tiny_model}"], ["heldout", "slice:kind=storage"], cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "embeddings").exists()


def test_a_relevant_document_missing_from_the_corpus_has_no_metadata(tmp_path: Path) -> None:
    """With --unknown-docs keep, a judgement for a document not in the corpus stays (relevant,
    never retrievable): the slice reads no metadata for it, and never fails on it."""
    data = write_data(tmp_path / "data", [*ROWS, ("q5", {}, {"kind": "network"})])
    (data / "corpus.jsonl").write_text(
        "".join(line + "\n" for line in (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if '"dq5"' not in line),
        encoding="utf-8",
    )
    with open(data / "qrels" / "test.tsv", "a", encoding="utf-8") as qrels:
        qrels.write("q4\tdq5\t1\n")  # q4: one relevant document present, one missing
    result = evaluate(data, ["bm25"], ["slice:kind=network"], cache_dir=tmp_path / "cache", unknown_docs="keep")
    suite = result.suite("slice:kind=network")
    # q4 by its present document; q5 (no query metadata, its only relevant document missing) is outside
    assert sorted(suite.query_ids) == ["q3", "q4"]
    assert suite.excluded["outside_slice"] == 3
