"""A metadata filter over any first stage: the arm that costs no training and no
re-embedding, against which fine-tuning has to earn its keep.

Spec: ``filter(first=SPEC[,field=KEY][,where=PREDICATES])``, at least one of

- ``field=KEY``: keep the documents whose metadata ``KEY`` equals the query's, e.g.
  ``filter(first=dense,field=subdomain)``. A query without the key is searched without
  this restriction, and counted (``queries_without_field`` in the description, and a
  warning);
- ``where=PREDICATES``: keep the documents that satisfy them, in the predicate language of
  slices (``harness.predicates``, typed by the field), e.g.
  ``filter(first=dense,where=date>=2025-01-01)``; a document without the key does not pass.

The filter restricts the candidate set before the cut to k, so a query gets k results
whenever k matching documents exist and the first stage can rank them. It cannot reach
inside every first stage's index (hybrids, rerankers), so it searches the first stage
deep enough instead: first the least ``k * 2^j`` at or above ``k * N / M`` documents (N in
the corpus, M that pass for the query), doubling until k of them pass the filter, the
first stage has nothing more to return, or the whole corpus was searched. For an exact
dense index that is the same top k as filtering inside the index. The depths it searched
are in the description; the order of the hits is the first stage's, by the harness's one
tie rule (``Run.ranking``).

The filter needs the queries' metadata, which the retriever interface does not carry:
:func:`attach_metadata` gives it (``harness.evaluate`` calls it when the data is loaded,
so a field no record carries is an error before any model loads).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from harness import predicates as predicate_lib
from harness.adapters.base import Retriever, Text
from harness.adapters.spec import Spec
from harness.errors import HarnessError

OPTIONS = {"first", "field", "where"}
EXAMPLE_IDS = 10  # query ids named in the description, of those searched without the filter


class WithMetadata(Protocol):
    metadata: Mapping[str, Any]


class FilterRetriever(Retriever):
    def __init__(self, first: Retriever, field: str | None = None, where: str | None = None, spec: str | None = None) -> None:
        super().__init__()
        parts = ([f"field={field}"] if field else []) + ([f"where={where}"] if where else [])
        self.spec = spec or f"filter(first={first.spec},{','.join(parts)})"
        if not parts:
            raise HarnessError(f"{self.spec}: give field=KEY (the query's value) or where=PREDICATES, or both")
        self.first = first
        self.field = field
        self.where = where
        self.predicates = predicate_lib.parse(where, self.spec) if where else []
        self.filter_seconds = 0.0
        self._bound_ids: frozenset[str] | None = None
        self._query_values: dict[str, Any] | None = None  # query id -> its field value, None without one
        self._by_value: dict[Any, frozenset[str]] = {}  # field value -> the documents with it that pass `where`
        self._passing: frozenset[str] = frozenset()  # the documents that pass `where` (all without it)
        self.documents_without_field = 0
        self._depth: dict[str, int] = {}  # what the searches did, by query id
        self._rounds: dict[str, int] = {}
        self._without_field: set[str] = set()
        self._short_of_k: set[str] = set()

    @classmethod
    def from_spec(cls, spec: Spec, cache_dir: Path, shared: dict | None = None) -> "FilterRetriever":
        from harness.adapters import build_retriever

        if spec.args or spec.value is not None:
            raise HarnessError(f"filter takes options only, e.g. filter(first=dense,field=subdomain): {spec}")
        spec.check_options(OPTIONS)
        first = spec.first_stage(example="dense")
        return cls(build_retriever(first, cache_dir, shared), field=spec.option("field"), where=spec.option("where"), spec=str(spec))

    def bind(self, documents: Mapping[str, WithMetadata], queries: Mapping[str, WithMetadata], where: str) -> None:
        """Read the documents' and queries' metadata (``where`` names the data in errors):
        type the predicates, find the documents each query may receive."""
        started = time.perf_counter()
        doc_meta = {doc_id: doc.metadata for doc_id, doc in documents.items()}
        typed = predicate_lib.bind(self.predicates, doc_meta.values(), self.spec, f"documents of {where}")
        passing = {doc_id for doc_id, meta in doc_meta.items() if all(p.holds(meta) for p in typed)}
        if not passing:
            raise HarnessError(f"{self.spec}: no document of {where} passes {self.where}")
        self._passing = frozenset(passing)
        query_values: dict[str, Any] = {query_id: None for query_id in queries}
        if self.field is not None:
            query_meta = [query.metadata for query in queries.values()]
            for records, which in ((doc_meta.values(), "documents"), (query_meta, "queries")):
                predicate_lib.field_type(self.field, records, self.spec, f"{which} of {where}")  # present on both sides
            field = predicate_lib.field_type(self.field, [*doc_meta.values(), *query_meta], self.spec, f"queries and documents of {where}")
            by_value: dict[Any, set[str]] = {}
            for doc_id in passing:
                raw = doc_meta[doc_id].get(self.field)
                if raw is not None:
                    by_value.setdefault(field.read(raw), set()).add(doc_id)
            self._by_value = {value: frozenset(ids) for value, ids in by_value.items()}
            self.documents_without_field = sum(1 for meta in doc_meta.values() if meta.get(self.field) is None)
            for query_id, query in queries.items():
                raw = query.metadata.get(self.field)
                query_values[query_id] = None if raw is None else field.read(raw)
        self._query_values = query_values
        self._bound_ids = frozenset(documents)
        self.filter_seconds = time.perf_counter() - started

    def _index(self, corpus: Mapping[str, Text]) -> None:
        if self._bound_ids is not None and frozenset(corpus) != self._bound_ids:
            raise HarnessError(f"{self.spec}: built on another corpus than the one whose metadata it was given")
        self.first.build(corpus)

    def build(self, corpus: Mapping[str, Text]) -> None:
        super().build(corpus)
        # the first stage may have been built before (it is shared with other arms): report its cost
        self.build_seconds = (self.first.build_seconds or 0.0) + self.filter_seconds

    def _allowed(self, query_id: str, query_values: dict[str, Any]) -> frozenset[str] | None:
        """The documents this query may receive; None when nothing restricts it."""
        if query_id not in query_values:
            raise HarnessError(f"{self.spec}: query {query_id!r} is not among the queries whose metadata it was given")
        if self.field is None:
            return self._passing
        value = query_values[query_id]
        if value is None:
            self._without_field.add(query_id)
            return self._passing if self.where else None
        return self._by_value.get(value, frozenset())

    def _search_one(self, query_id: str, text: str, k: int) -> dict[str, float]:
        return self._answer({query_id: text}, k)[0][query_id]

    def _answer(self, queries: Mapping[str, str], k: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """Search the first stage deeper for each query until k of its allowed documents
        survive, the first stage returns fewer than asked, or the whole corpus was searched.
        Queries that start at the same depth share one first-stage search (one latency
        sample, for dense first stages). A query's latency is every search it took plus the
        filtering, where the first stage timed all of them."""
        if self._query_values is None:
            raise HarnessError(
                f"{self.spec}: the filter needs the queries' metadata, which harness eval and harness gate give it "
                "(harness.adapters.filter.attach_metadata)"
            )
        corpus_size = len(self._indexed_ids or ())
        allowed = {query_id: self._allowed(query_id, self._query_values) for query_id in queries}
        unfiltered = sum(1 for query_id in queries if query_id in self._without_field)
        if unfiltered:
            warnings.warn(
                f"{self.spec}: {unfiltered} of {len(queries)} queries have no {self.field!r} metadata: "
                "searched without that filter (counted in the result as queries_without_field)",
                stacklevel=3,
            )
        pending: dict[int, list[str]] = {}
        for query_id in queries:
            pending.setdefault(_start_depth(allowed[query_id], k, corpus_size), []).append(query_id)
        scores: dict[str, dict[str, float]] = {}
        spent = dict.fromkeys(queries, 0.0)
        rounds = dict.fromkeys(queries, 0)
        while pending:
            depth = min(pending)
            query_ids = pending.pop(depth)
            run = self.first.search({query_id: queries[query_id] for query_id in query_ids}, depth)
            for query_id in query_ids:
                rounds[query_id] += 1
                started = time.perf_counter()
                ranked = run.ranking(query_id)
                passing = allowed[query_id]
                kept = ranked[:k] if passing is None else [doc_id for doc_id in ranked if doc_id in passing][:k]
                filter_ms = (time.perf_counter() - started) * 1000.0
                if query_id in spent and query_id in run.latency_ms:
                    spent[query_id] += run.latency_ms[query_id] + filter_ms
                else:
                    spent.pop(query_id, None)
                wanted = min(k, corpus_size if passing is None else len(passing))
                if len(kept) < wanted and len(ranked) >= depth and depth < corpus_size:
                    pending.setdefault(min(corpus_size, depth * 2), []).append(query_id)
                    continue
                scores[query_id] = {doc_id: run.scores[query_id][doc_id] for doc_id in kept}
                self._depth[query_id], self._rounds[query_id] = depth, rounds[query_id]
                if len(kept) < k:
                    self._short_of_k.add(query_id)
                else:
                    self._short_of_k.discard(query_id)
        return {query_id: scores[query_id] for query_id in queries}, spent

    def components(self) -> list[Retriever]:
        return [self.first]

    def describe(self) -> dict[str, Any]:
        depths = list(self._depth.values())
        return {
            "spec": self.spec,
            "kind": "filter",
            "field": self.field,
            "where": self.where,
            "method": "pre-filter: the first stage searched k*2^j >= k*N/M documents deep (M of N pass), doubling "
            "until k pass or none are left; its index and embeddings used as they are",
            "training": "none",
            "re_embedding": "none",
            "filter_seconds": round(self.filter_seconds, 3),
            "documents_passing_where": len(self._passing) if self.where else None,
            "documents_without_field": self.documents_without_field if self.field else None,
            "queries_searched": len(self._depth),
            "queries_without_field": len(self._without_field) if self.field else None,
            "queries_without_field_examples": sorted(self._without_field)[:EXAMPLE_IDS] if self.field else None,
            "queries_short_of_k": len(self._short_of_k),
            "searched_depth": {"min": min(depths), "median": statistics.median(depths), "max": max(depths)} if depths else None,
            "search_rounds_max": max(self._rounds.values()) if self._rounds else None,
            "first": self.first.describe(),
        }


def _start_depth(allowed: frozenset[str] | None, k: int, corpus_size: int) -> int:
    """How deep to search first: k where nothing restricts the query or nothing can pass
    (searched all the same, for its latency), else the least k * 2^j >= k * N / M, so
    queries of similar selectivity share a search and the next depth is the double."""
    depth = min(k, corpus_size)
    while allowed and depth < corpus_size and depth * len(allowed) < k * corpus_size:
        depth *= 2
    return min(depth, corpus_size)


def attach_metadata(retrievers: Iterable[Retriever], documents: Mapping[str, WithMetadata],
                    queries: Mapping[str, WithMetadata], where: str) -> None:
    """Give every filter among ``retrievers`` (and inside them: a hybrid of filters) the
    documents' and queries' metadata; ``where`` names the data in errors."""
    seen: set[int] = set()
    stack = list(retrievers)
    while stack:
        retriever = stack.pop()
        if id(retriever) in seen:
            continue
        seen.add(id(retriever))
        if isinstance(retriever, FilterRetriever):
            retriever.bind(documents, queries, where)
        stack.extend(retriever.components())
