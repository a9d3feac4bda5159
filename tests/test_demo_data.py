"""The embedded demo dataset generator: determinism, sizes, the held-out slice, loadability."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data import load_dataset
from harness.data.demo import HELD_OUT_SUBDOMAIN, SUBDOMAINS, write_demo_dataset

FILES = ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv", "qrels/test.tsv", "README.md"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "kb")


@pytest.fixture(scope="module")
def dataset(demo: Path):
    return load_dataset(demo)


def _read_qrels(path: Path) -> list[tuple[str, str, int]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    rows = []
    for line in lines[1:]:
        qid, did, score = line.split("\t")
        rows.append((qid, did, int(score)))
    return rows


def test_returns_the_output_path_and_writes_every_file(demo: Path) -> None:
    assert demo.is_dir()
    for name in FILES:
        assert (demo / name).is_file(), name
    readme = (demo / "README.md").read_text(encoding="utf-8")
    assert HELD_OUT_SUBDOMAIN in readme and "seed=13" in readme


def test_same_seed_is_byte_identical(demo: Path, tmp_path: Path) -> None:
    again = write_demo_dataset(tmp_path / "again", seed=13)
    for name in FILES:
        assert (demo / name).read_bytes() == (again / name).read_bytes(), name


def test_accepts_a_string_path(tmp_path: Path) -> None:
    out = write_demo_dataset(str(tmp_path / "as-string"), seed=13)
    assert isinstance(out, Path) and (out / "corpus.jsonl").is_file()


def test_different_seed_differs(demo: Path, tmp_path: Path) -> None:
    other = write_demo_dataset(tmp_path / "other", seed=14)
    for name in ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"]:
        assert (demo / name).read_bytes() != (other / name).read_bytes(), name


def test_counts_are_in_range(dataset) -> None:
    assert 1800 <= len(dataset.corpus) <= 2200
    assert len(set(d.metadata["subdomain"] for d in dataset.corpus.values())) >= 3
    assert len(dataset.split("train").qrels) == 1000
    assert len(dataset.split("dev").qrels) == 200
    assert len(dataset.split("test").qrels) == 300
    assert len(dataset.queries) == 1500
    held = [q for q in dataset.split("test").qrels if dataset.queries[q].metadata["subdomain"] == HELD_OUT_SUBDOMAIN]
    assert 60 <= len(held) <= 80


def test_every_query_is_in_exactly_one_split(dataset) -> None:
    seen: dict[str, str] = {}
    for split in ("train", "dev", "test"):
        for qid in dataset.split(split).qrels:
            assert qid not in seen, f"{qid} in {seen.get(qid)} and {split}"
            seen[qid] = split
    assert set(seen) == set(dataset.queries)


def test_held_out_subdomain_never_in_train_or_dev(dataset) -> None:
    assert HELD_OUT_SUBDOMAIN in SUBDOMAINS
    for split in ("train", "dev"):
        for qid, rels in dataset.split(split).qrels.items():
            assert dataset.queries[qid].metadata["subdomain"] != HELD_OUT_SUBDOMAIN
            for doc_id in rels:
                assert dataset.corpus[doc_id].metadata["subdomain"] != HELD_OUT_SUBDOMAIN
    # and every held-out query is judged against held-out documents only
    for qid, rels in dataset.split("test").qrels.items():
        subdomain = dataset.queries[qid].metadata["subdomain"]
        assert {dataset.corpus[d].metadata["subdomain"] for d in rels} == {subdomain}


def test_qrels_ids_exist_and_grades_are_graded(demo: Path, dataset) -> None:
    grades = set()
    for split in ("train", "dev", "test"):
        rows = _read_qrels(demo / "qrels" / f"{split}.tsv")
        assert rows
        for qid, did, score in rows:
            assert qid in dataset.queries
            assert did in dataset.corpus
            grades.add(score)
        assert len({(q, d) for q, d, _ in rows}) == len(rows)
    assert grades == {1, 2}
    for rels in dataset.split("test").qrels.values():
        assert sorted(rels.values())[-1] == 2  # each query has exactly one exact document
        assert list(rels.values()).count(2) == 1


def test_records_have_the_required_fields(demo: Path) -> None:
    styles = set()
    for line in (demo / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert set(record) == {"_id", "title", "text", "metadata"}
        assert record["metadata"]["subdomain"] in SUBDOMAINS
        assert "2022-01-01" <= record["metadata"]["date"] <= "2025-12-31"
        assert 30 <= len((record["title"] + " " + record["text"]).split()) <= 90
    queries = [json.loads(line) for line in (demo / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in queries:
        assert set(record) == {"_id", "text", "metadata"}
        assert record["metadata"]["subdomain"] in SUBDOMAINS
        assert len(record["metadata"]["date"]) == 10
        styles.add(record["metadata"]["style"])
    assert {"colloquial", "codename", "lookalike"} <= styles
    texts = [q["text"].lower() for q in queries]
    assert len(set(texts)) == len(texts)


def test_dates_span_the_years(dataset) -> None:
    years = {d.metadata["date"][:4] for d in dataset.corpus.values()}
    assert years == {"2022", "2023", "2024", "2025"}


def test_codename_mapping_is_shared_between_train_and_test(dataset) -> None:
    """Queries naming a service by its plain description appear in train and in test."""

    def described(split: str) -> set[str]:
        return {
            dataset.queries[q].metadata["service"]
            for q in dataset.split(split).qrels
            if dataset.queries[q].metadata.get("refers_by") == "description"
        }

    assert len(described("train") & described("test")) >= 10


def test_lookalike_siblings_differ_by_model(dataset) -> None:
    """Each lookalike query's exact document names the queried model, and a sibling exists."""
    checked = 0
    for qid, rels in dataset.split("test").qrels.items():
        query = dataset.queries[qid]
        if query.metadata["style"] != "lookalike":
            continue
        exact = next(dataset.corpus[d] for d, g in rels.items() if g == 2)
        assert exact.metadata["model"] == query.metadata["model"]
        siblings = [
            d for d in dataset.corpus.values()
            if d.metadata.get("family") == exact.metadata["family"]
            and d.metadata.get("aspect") == exact.metadata["aspect"]
            and d.id != exact.id
        ]
        assert siblings
        checked += 1
    assert checked >= 10
