"""BEIR loading and validation: every error names the file and the line."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from harness.data import load_dataset
from harness.errors import HarnessError


def test_loads_corpus_queries_and_graded_qrels(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    assert len(dataset.corpus) == 9 and len(dataset.queries) == 10
    test = dataset.split("test")
    assert test.qrels["q4"] == {"d4": 1}
    assert "q10" in test.unjudged_query_ids
    assert dataset.corpus["d0"].metadata["subdomain"] == "billing"
    assert dataset.corpus["d0"].content.startswith("Refund of duplicate charges ")


def test_hashes_are_stable_and_change_with_content(tiny_dataset: Path) -> None:
    first = load_dataset(tiny_dataset)
    again = load_dataset(tiny_dataset)
    assert first.hash == again.hash and first.split("test").hash == again.split("test").hash
    with open(tiny_dataset / "qrels" / "test.tsv", "a") as handle:
        handle.write("q3\td1\t1\n")
    assert load_dataset(tiny_dataset).split("test").hash != first.split("test").hash


def test_reads_gzipped_files(tiny_dataset: Path) -> None:
    for name in ("corpus.jsonl", "queries.jsonl"):
        source = tiny_dataset / name
        with open(source, "rb") as plain, gzip.open(tiny_dataset / f"{name}.gz", "wb") as packed:
            shutil.copyfileobj(plain, packed)
        source.unlink()
    assert len(load_dataset(tiny_dataset).corpus) == 9


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("file", "lineno", "text", "message"),
    [
        ("corpus.jsonl", 3, '{"_id": "d2", "text": "unterminated', "corpus.jsonl:3: bad JSON"),
        ("corpus.jsonl", 2, '{"_id": "d1", "title": "no text"}', "corpus.jsonl:2: missing field 'text'"),
        ("corpus.jsonl", 4, '{"_id": "d0", "text": "again"}', "corpus.jsonl:4: duplicate document id 'd0'"),
        ("corpus.jsonl", 1, '["not", "an", "object"]', "corpus.jsonl:1: expected a JSON object"),
        ("corpus.jsonl", 1, '{"_id": "d0", "text": 7}', "corpus.jsonl:1: field 'text' must be a string"),
        ("queries.jsonl", 2, '{"text": "no id"}', "queries.jsonl:2: missing field '_id'"),
        ("queries.jsonl", 3, '{"_id": "q1", "text": "dup"}', "queries.jsonl:3: duplicate query id 'q1'"),
    ],
)
def test_jsonl_errors_name_file_and_line(tiny_dataset: Path, file: str, lineno: int, text: str, message: str) -> None:
    _replace_line(tiny_dataset / file, lineno, text)
    with pytest.raises(HarnessError, match=message.replace(".", r"\.").replace("[", r"\[")):
        load_dataset(tiny_dataset)


@pytest.mark.parametrize(
    ("lineno", "text", "message"),
    [
        (2, "q99\td3\t1", "test.tsv:2: unknown query id 'q99'"),
        (2, "q3\td99\t1", "test.tsv:2: unknown document id 'd99'"),
        (2, "q3\td2\thigh", "test.tsv:2: score 'high' is not an integer"),
        (2, "q3\td2\t1.5", "test.tsv:2: score '1.5' is not an integer"),
        (2, "q3 d2 1", "test.tsv:2: expected 3 tab-separated fields"),
        (1, "qid\tdocid\trel", "test.tsv:1: expected the header"),
        (3, "q3\td2\t1", "test.tsv:3: duplicate judgement for query 'q3'"),
    ],
)
def test_qrels_errors_name_file_and_line(tiny_dataset: Path, lineno: int, text: str, message: str) -> None:
    _replace_line(tiny_dataset / "qrels" / "test.tsv", lineno, text)
    dataset = load_dataset(tiny_dataset)
    with pytest.raises(HarnessError, match=message):
        dataset.split("test")


def test_empty_split_is_an_error(tiny_dataset: Path) -> None:
    (tiny_dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(HarnessError, match=r"test\.tsv: split 'test' is empty"):
        load_dataset(tiny_dataset).split("test")


def test_missing_split_lists_available_ones(tiny_dataset: Path) -> None:
    with pytest.raises(HarnessError, match=r"split 'validation' does not exist \(available: dev, test, train\)"):
        load_dataset(tiny_dataset).split("validation")


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="dataset folder does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"corpus\.jsonl: file is missing"):
        load_dataset(tmp_path / "empty")


def test_invalid_utf8_is_reported(tiny_dataset: Path) -> None:
    with open(tiny_dataset / "corpus.jsonl", "ab") as handle:
        handle.write(b'{"_id": "x", "text": "\xff\xfe"}\n')
    with pytest.raises(HarnessError, match=r"corpus\.jsonl: not valid UTF-8"):
        load_dataset(tiny_dataset)
