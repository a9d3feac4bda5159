"""The slice suite: the held-out split restricted to a subdomain, a period, or to queries
whose relevant documents were never positives in training.

Spellings (several predicates join with ``&``, all must hold)::

    slice:subdomain=billing
    slice:date>=2025-01-01
    slice:subdomain!=billing&date<2024-01-01
    slice:doc-disjoint

A predicate reads the query's metadata; where the query lacks the key, it holds when any
relevant document's metadata satisfies it (a relevant document missing from the corpus,
kept by ``--unknown-docs keep``, has no metadata and satisfies none). Values compare as the type the field has in
the data (``harness.predicates``: numbers, ISO 8601 dates, booleans; text by equality
only), and a predicate the data cannot answer is an error before any model loads.
"""

from __future__ import annotations

from harness import predicates as predicate_lib
from harness.data import Dataset
from harness.errors import HarnessError
from harness.suites.base import EvalContext, QuerySelectionSuite

DOC_DISJOINT = "doc-disjoint"


class SliceSuite(QuerySelectionSuite):
    kind = "slice"

    def __init__(self, selector: str, split: str = "test", train_split: str = "train") -> None:
        self.selector = selector.strip()
        self.split = split
        self.train_split = train_split
        self.name = f"slice:{self.selector}" + (f"@{split}" if split != "test" else "")
        self.predicates = [] if self.selector == DOC_DISJOINT else predicate_lib.parse(self.selector, self.name)

    def splits(self) -> list[str]:
        return [self.split, self.train_split] if self.selector == DOC_DISJOINT else [self.split]

    def check(self, dataset: Dataset) -> None:
        self.choose(dataset)

    def select(self, context: EvalContext) -> tuple[list[str], dict[str, int]]:
        return self.choose(context.dataset)

    def choose(self, dataset: Dataset) -> tuple[list[str], dict[str, int]]:
        """(the slice's query ids, excluded counts), or an error naming what is wrong."""
        split = dataset.split(self.split)
        if self.selector == DOC_DISJOINT:
            if self.train_split not in dataset.available_splits():
                raise HarnessError(f"slice:doc-disjoint needs a {self.train_split!r} split in {dataset.path}/qrels")
            train_positives = {
                doc for rels in dataset.split(self.train_split).qrels.values() for doc, grade in rels.items() if grade > 0
            }
            chosen = [
                qid for qid, rels in split.qrels.items() if not any(grade > 0 and doc in train_positives for doc, grade in rels.items())
            ]
        else:
            records = [query.metadata for query in dataset.queries.values()] + [doc.metadata for doc in dataset.corpus.values()]
            typed = predicate_lib.bind(self.predicates, records, self.name, f"queries and documents of {dataset.path}")
            chosen = [qid for qid, rels in split.qrels.items() if self._matches(dataset, typed, qid, rels)]
        if not chosen:
            raise HarnessError(f"{self.name}: no judged query of split {self.split!r} is in this slice")
        return chosen, {"outside_slice": len(split.qrels) - len(chosen)}

    @staticmethod
    def _matches(dataset: Dataset, typed: list[predicate_lib.TypedPredicate], query_id: str, rels: dict[str, int]) -> bool:
        query_meta = dataset.queries[query_id].metadata
        for predicate in typed:
            verdict = predicate.holds(query_meta)
            if verdict is None:
                # a relevant document missing from the corpus (kept by --unknown-docs keep) has no metadata
                verdict = any(
                    predicate.holds(dataset.corpus[doc].metadata)
                    for doc, grade in rels.items()
                    if grade > 0 and doc in dataset.corpus
                )
            if not verdict:
                return False
        return True
