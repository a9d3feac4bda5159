"""Load and validate a dataset in BEIR format.

A BEIR folder holds ``corpus.jsonl``, ``queries.jsonl`` (either may be gzipped) and
``qrels/<split>.tsv`` with the header ``query-id corpus-id score``. Every problem is
reported as one line naming the file and line; nothing is dropped silently.

Judgements for documents missing from the corpus are an error unless the dataset is
loaded with ``unknown_docs="keep"``: then, as in trec_eval, BEIR and MTEB, they stay in
the qrels (relevant, counted in recall and in nDCG's ideal ranking) and can never be
retrieved; each split counts them. Documents whose text repeats another's, and documents
with no text at all, are kept and counted too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, located

QRELS_HEADER = ("query-id", "corpus-id", "score")
UNKNOWN_DOCS = ("error", "keep")


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> str:
        """The text that retrievers index: title and body, as BEIR and MTEB join them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    """The judged queries of one qrels split.

    ``qrels`` maps query id to doc id to graded relevance. ``unjudged_query_ids`` are
    queries of the dataset without a judgement in this split: they are excluded from
    evaluation and reported, never silently lost. ``unretrievable_judgements`` counts the
    judgements kept for documents missing from the corpus (``unknown_docs="keep"``).
    """

    name: str
    qrels: dict[str, dict[str, int]]
    hash: str
    unjudged_query_ids: tuple[str, ...]
    unretrievable_judgements: int = 0

    @property
    def query_ids(self) -> list[str]:
        return list(self.qrels)

    def restricted_to(self, query_ids: list[str] | set[str]) -> dict[str, dict[str, int]]:
        keep = set(query_ids)
        return {qid: rels for qid, rels in self.qrels.items() if qid in keep}


@dataclass
class Dataset:
    name: str
    path: Path
    corpus: dict[str, Document]
    queries: dict[str, Query]
    hash: str
    unknown_docs: str = "error"  # judgements for documents missing from the corpus: "error" or "keep"
    _splits: dict[str, Split] = field(default_factory=dict, repr=False)

    @cached_property
    def duplicate_texts(self) -> int:
        """Documents whose indexed text (title and body) repeats an earlier document's."""
        return len(self.corpus) - len({doc.content for doc in self.corpus.values()})

    @cached_property
    def empty_documents(self) -> int:
        """Documents with neither title nor text: indexed, never retrievable by their words."""
        return sum(not doc.content.strip() for doc in self.corpus.values())

    def available_splits(self) -> list[str]:
        qrels_dir = self.path / "qrels"
        if not qrels_dir.is_dir():
            return []
        return sorted(p.name.removesuffix(".tsv") for p in qrels_dir.glob("*.tsv"))

    def split(self, name: str) -> Split:
        if name not in self._splits:
            self._splits[name] = self._load_split(name)
        return self._splits[name]

    def _load_split(self, name: str) -> Split:
        path = self.path / "qrels" / f"{name}.tsv"
        if not path.is_file():
            available = ", ".join(self.available_splits()) or "none"
            raise HarnessError(f"{path}: split {name!r} does not exist (available: {available})")
        qrels, digest, unretrievable = _read_qrels(path, self.queries, self.corpus, keep_unknown_docs=self.unknown_docs == "keep")
        if not qrels:
            raise located(path, None, f"split {name!r} is empty: it has no judgements")
        unjudged = tuple(qid for qid in self.queries if qid not in qrels)
        return Split(name=name, qrels=qrels, hash=digest, unjudged_query_ids=unjudged, unretrievable_judgements=unretrievable)

    def provenance(self, split_names: list[str]) -> dict[str, Any]:
        """Counts and hashes; ``unretrievable_judgements`` ({split: count}), ``duplicate_texts``
        and ``empty_documents`` appear where there are any."""
        info: dict[str, Any] = {
            "name": self.name,
            "path": str(self.path),
            "hash": self.hash,
            "documents": len(self.corpus),
            "queries": len(self.queries),
            "splits": {
                name: {
                    "hash": self.split(name).hash,
                    "judged_queries": len(self.split(name).qrels),
                    "judgements": sum(len(r) for r in self.split(name).qrels.values()),
                    "unjudged_queries": len(self.split(name).unjudged_query_ids),
                }
                for name in split_names
            },
        }
        unretrievable = {name: self.split(name).unretrievable_judgements for name in split_names}
        if any(unretrievable.values()):
            info["unretrievable_judgements"] = unretrievable
        for key in ("duplicate_texts", "empty_documents"):
            if getattr(self, key):
                info[key] = getattr(self, key)
        return info


def load_dataset(path: str | Path, unknown_docs: str = "error") -> Dataset:
    """Read and check a BEIR folder (qrels splits are read when first asked for).

    ``unknown_docs``: what a judgement for a document missing from the corpus is, ``error``
    (the default: for one's own data it is a mistake) or ``keep`` (BEIR/MTEB semantics).
    """
    if unknown_docs not in UNKNOWN_DOCS:
        raise HarnessError(f"unknown_docs must be one of {', '.join(UNKNOWN_DOCS)}, got {unknown_docs!r}")
    root = Path(path)
    if not root.is_dir():
        raise HarnessError(f"{root}: dataset folder does not exist")
    corpus_path = _find(root, "corpus")
    queries_path = _find(root, "queries")
    digest = hashlib.sha256()
    corpus: dict[str, Document] = {}
    for lineno, record in _read_jsonl(corpus_path, digest, required=("_id", "text")):
        doc_id = _identifier(record, corpus_path, lineno)
        if doc_id in corpus:
            raise located(corpus_path, lineno, f"duplicate document id {doc_id!r}")
        corpus[doc_id] = Document(
            id=doc_id,
            title=_string(record, "title", corpus_path, lineno, default=""),
            text=_string(record, "text", corpus_path, lineno),
            metadata=_metadata(record, corpus_path, lineno),
        )
    if not corpus:
        raise located(corpus_path, None, "corpus is empty")
    queries: dict[str, Query] = {}
    for lineno, record in _read_jsonl(queries_path, digest, required=("_id", "text")):
        query_id = _identifier(record, queries_path, lineno)
        if query_id in queries:
            raise located(queries_path, lineno, f"duplicate query id {query_id!r}")
        text = _string(record, "text", queries_path, lineno)
        if not text.strip():
            raise located(queries_path, lineno, f"query {query_id!r} has an empty text")
        queries[query_id] = Query(id=query_id, text=text, metadata=_metadata(record, queries_path, lineno))
    if not queries:
        raise located(queries_path, None, "no queries")
    return Dataset(
        name=root.resolve().name, path=root, corpus=corpus, queries=queries, hash=digest.hexdigest(), unknown_docs=unknown_docs
    )


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.jsonl", root / f"{stem}.jsonl.gz"):
        if candidate.is_file():
            return candidate
    raise HarnessError(f"{root / (stem + '.jsonl')}: file is missing (also looked for .jsonl.gz)")


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_lines(path: Path, digest: "hashlib._Hash") -> Iterator[tuple[int, str]]:
    try:
        with _open_text(path) as handle:
            for lineno, line in enumerate(handle, start=1):
                digest.update(line.encode("utf-8"))
                yield lineno, line
    except UnicodeDecodeError as exc:
        lineno, column = _first_undecodable(path)
        raise located(path, lineno, f"not valid UTF-8 at byte {column} of the line ({exc.reason})") from exc
    except (OSError, EOFError) as exc:
        raise located(path, None, f"cannot read: {exc}") from exc


def _first_undecodable(path: Path) -> tuple[int | None, int | None]:
    """Line and 1-based byte column of the first bytes that are not UTF-8 (the text
    reader decodes in blocks, so its error knows no line)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return lineno, exc.start + 1
    return None, None


def _read_jsonl(
    path: Path, digest: "hashlib._Hash", required: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _read_lines(path, digest):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise located(path, lineno, f"bad JSON: {exc.msg} at column {exc.colno}") from exc
        if not isinstance(record, dict):
            raise located(path, lineno, "expected a JSON object")
        for key in required:
            if key not in record:
                raise located(path, lineno, f"missing field {key!r}")
        yield lineno, record


def _identifier(record: dict[str, Any], path: Path, lineno: int) -> str:
    value = record["_id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise located(path, lineno, f"field '_id' must be a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise located(path, lineno, "field '_id' is empty")
    return text


def _string(record: dict[str, Any], key: str, path: Path, lineno: int, default: str | None = None) -> str:
    value = record.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise located(path, lineno, f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _metadata(record: dict[str, Any], path: Path, lineno: int) -> dict[str, Any]:
    value = record.get("metadata") or {}
    if not isinstance(value, dict):
        raise located(path, lineno, "field 'metadata' must be an object")
    return value


def _read_qrels(
    path: Path, queries: dict[str, Query], corpus: dict[str, Document], keep_unknown_docs: bool
) -> tuple[dict[str, dict[str, int]], str, int]:
    """(qid -> doc id -> grade, content hash, judgements kept for documents not in the corpus)."""
    digest = hashlib.sha256()
    qrels: dict[str, dict[str, int]] = {}
    unretrievable = 0
    for lineno, line in _read_lines(path, digest):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if lineno == 1:
            if tuple(f.strip() for f in fields) != QRELS_HEADER:
                raise located(path, 1, f"expected the header {' '.join(QRELS_HEADER)!r} (tab-separated)")
            continue
        if len(fields) != 3:
            raise located(path, lineno, f"expected 3 tab-separated fields, got {len(fields)}")
        query_id, doc_id, raw_score = (f.strip() for f in fields)
        try:
            score = int(raw_score)
        except ValueError:
            raise located(path, lineno, f"score {raw_score!r} is not an integer") from None
        if score < 0:
            raise located(path, lineno, f"score {score} is negative (relevance grades are 0 for not relevant, 1 or more for relevant)")
        if query_id not in queries:
            raise located(path, lineno, f"unknown query id {query_id!r}")
        if doc_id not in corpus:
            if not keep_unknown_docs:
                raise located(
                    path, lineno,
                    f"unknown document id {doc_id!r} (to keep judgements for documents missing from the corpus, "
                    "relevant and never retrievable as in BEIR and MTEB, pass --unknown-docs keep)",
                )
            unretrievable += 1
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            raise located(path, lineno, f"duplicate judgement for query {query_id!r} and document {doc_id!r}")
        judged[doc_id] = score
    return qrels, digest.hexdigest(), unretrievable
