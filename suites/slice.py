"""The slice suite: the held-out split restricted to a subdomain, a period, or to queries
whose relevant documents were never positives in training.

Spellings (several predicates join with ``&``, all must hold)::

    slice:subdomain=billing
    slice:date>=2025-01-01
    slice:subdomain!=billing&date<2024-01-01
    slice:doc-disjoint

A predicate reads the query's metadata; where the query lacks the key, it holds when any
relevant document's metadata satisfies it. Values compare as numbers when both sides are
numbers, otherwise as strings (ISO dates order correctly as strings).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.suites.base import EvalContext, QuerySelectionSuite

_OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_PREDICATE = re.compile(r"^\s*(?P<key>[A-Za-z_][\w.\-]*)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>.+?)\s*$")
DOC_DISJOINT = "doc-disjoint"


@dataclass(frozen=True)
class Predicate:
    key: str
    op: str
    value: str

    def holds(self, metadata: dict[str, Any]) -> bool | None:
        """True or False, or None when the metadata lacks the key."""
        if self.key not in metadata:
            return None
        left: Any = metadata[self.key]
        right: Any = self.value
        try:
            left, right = float(left), float(right)
        except (TypeError, ValueError):
            left = str(left)
        return _OPERATORS[self.op](left, right)


def parse_predicates(text: str) -> list[Predicate]:
    predicates = []
    for part in text.split("&"):
        match = _PREDICATE.match(part)
        if not match:
            raise HarnessError(
                f"bad slice predicate {part!r} in {text!r}: expected KEY OP VALUE with OP one of = != >= <= > <"
            )
        predicates.append(Predicate(match["key"], match["op"], match["value"]))
    return predicates


class SliceSuite(QuerySelectionSuite):
    kind = "slice"

    def __init__(self, selector: str, split: str = "test", train_split: str = "train") -> None:
        self.selector = selector.strip()
        self.split = split
        self.train_split = train_split
        self.predicates = [] if self.selector == DOC_DISJOINT else parse_predicates(self.selector)
        self.name = f"slice:{self.selector}" + (f"@{split}" if split != "test" else "")

    def splits(self) -> list[str]:
        return [self.split, self.train_split] if self.selector == DOC_DISJOINT else [self.split]

    def select(self, context: EvalContext) -> tuple[list[str], dict[str, int]]:
        split = context.dataset.split(self.split)
        if self.selector == DOC_DISJOINT:
            if self.train_split not in context.dataset.available_splits():
                raise HarnessError(f"slice:doc-disjoint needs a {self.train_split!r} split in {context.dataset.path}/qrels")
            train_positives = {
                doc for rels in context.dataset.split(self.train_split).qrels.values() for doc, grade in rels.items() if grade > 0
            }
            chosen = [
                qid for qid, rels in split.qrels.items() if not any(grade > 0 and doc in train_positives for doc, grade in rels.items())
            ]
        else:
            chosen = [qid for qid in split.qrels if self._matches(context, qid, split.qrels[qid])]
        if not chosen:
            raise HarnessError(f"{self.name}: no judged query of split {self.split!r} is in this slice")
        return chosen, {"outside_slice": len(split.qrels) - len(chosen)}

    def _matches(self, context: EvalContext, query_id: str, rels: dict[str, int]) -> bool:
        query_meta = context.dataset.queries[query_id].metadata
        for predicate in self.predicates:
            verdict = predicate.holds(query_meta)
            if verdict is None:
                verdict = any(
                    predicate.holds(context.dataset.corpus[doc].metadata) for doc, grade in rels.items() if grade > 0
                )
            if not verdict:
                return False
        return True
