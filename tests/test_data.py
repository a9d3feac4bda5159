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


def test_invalid_utf8_is_reported_with_its_line(tiny_dataset: Path) -> None:
    with open(tiny_dataset / "corpus.jsonl", "ab") as handle:
        handle.write(b'{"_id": "x", "text": "\xff\xfe"}\n')
    with pytest.raises(HarnessError, match=r"corpus\.jsonl:10: not valid UTF-8 at byte 23 of the line"):
        load_dataset(tiny_dataset)
    with open(tiny_dataset / "corpus.jsonl", "rb") as plain, gzip.open(tiny_dataset / "corpus.jsonl.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    (tiny_dataset / "corpus.jsonl").unlink()
    with pytest.raises(HarnessError, match=r"corpus\.jsonl\.gz:10: not valid UTF-8"):
        load_dataset(tiny_dataset)


def test_negative_grade_and_empty_query_text_are_errors_with_their_line(tiny_dataset: Path) -> None:
    _replace_line(tiny_dataset / "qrels" / "test.tsv", 2, "q3\td2\t-1")
    with pytest.raises(HarnessError, match=r"test\.tsv:2: score -1 is negative"):
        load_dataset(tiny_dataset).split("test")
    _replace_line(tiny_dataset / "queries.jsonl", 4, '{"_id": "q4", "text": "  "}')
    with pytest.raises(HarnessError, match=r"queries\.jsonl:4: query 'q4' has an empty text"):
        load_dataset(tiny_dataset)


def _judge_missing_documents(root: Path) -> None:
    with open(root / "qrels" / "test.tsv", "a") as handle:
        handle.write("q3\tgone-1\t1\nq4\tgone-2\t2\n")


def test_judgements_for_missing_documents_are_an_error_naming_the_option(tiny_dataset: Path) -> None:
    _judge_missing_documents(tiny_dataset)
    with pytest.raises(HarnessError, match=r"test\.tsv:7: unknown document id 'gone-1' .*pass --unknown-docs keep"):
        load_dataset(tiny_dataset).split("test")
    with pytest.raises(HarnessError, match="unknown_docs must be one of error, keep"):
        load_dataset(tiny_dataset, unknown_docs="drop")


def test_kept_judgements_for_missing_documents_stay_in_the_qrels_and_are_counted(tiny_dataset: Path) -> None:
    _judge_missing_documents(tiny_dataset)
    dataset = load_dataset(tiny_dataset, unknown_docs="keep")
    test = dataset.split("test")
    assert test.qrels["q3"] == {"d2": 1, "gone-1": 1} and test.qrels["q4"] == {"d4": 1, "gone-2": 2}
    assert test.unretrievable_judgements == 2 and dataset.split("train").unretrievable_judgements == 0
    provenance = dataset.provenance(["test", "train"])
    assert provenance["unretrievable_judgements"] == {"test": 2, "train": 0}
    assert provenance["splits"]["test"]["judgements"] == 7
    assert "unretrievable_judgements" not in load_dataset(tiny_dataset, unknown_docs="keep").provenance(["train"])


def test_repeated_and_empty_document_texts_are_kept_and_counted(tiny_dataset: Path) -> None:
    corpus = tiny_dataset / "corpus.jsonl"
    clean = load_dataset(tiny_dataset).provenance(["test"])
    assert "duplicate_texts" not in clean and "empty_documents" not in clean
    with open(corpus, "a") as handle:
        handle.write('{"_id": "copy-1", "title": "Password reset", "text": "Reset a forgotten password from the identity portal."}\n')
        handle.write('{"_id": "copy-2", "title": "Password reset", "text": "Reset a forgotten password from the identity portal."}\n')
        handle.write('{"_id": "blank-1", "text": ""}\n{"_id": "blank-2", "title": "", "text": " "}\n')
    dataset = load_dataset(tiny_dataset)
    assert len(dataset.corpus) == 13  # nothing dropped
    provenance = dataset.provenance(["test"])
    # the two copies repeat d6; the second blank repeats the first only after stripping, so it is not a repeat
    assert provenance["duplicate_texts"] == 2 and provenance["empty_documents"] == 2
