"""The serving vector database: indexes (Qdrant collections), what each one records, and the
alias that serves one of them.

``--db`` is a folder (qdrant-client's embedded local mode: pure Python, exact search, one
process at a time) or a URL (``http://host:6333``, a team's Qdrant server); the same calls
reach both.

What an index records lives in its collection's own metadata (Qdrant's collection
``metadata``, kept in ``meta.json`` locally and by the server remotely), not in a marker
point or a sidecar file: it travels with the collection, a server keeps it too, and no
search can ever return it as a hit. A build creates the collection ``incomplete`` and sets
``complete`` only once its last point is written and counted, so a build killed mid-way
leaves a collection that says so, which no swap and no search accepts.

Serving is two aliases per name: ``NAME`` (what answers) and ``NAME@previous`` (what
answered before, the rollback target). A swap or a rollback changes both in one
``update_collection_aliases`` call: Qdrant applies a call's alias operations together (the
server as one request; local mode writes ``meta.json`` aside and renames it into place), so
an interrupted swap leaves ``NAME`` on one whole index, the old or the new.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

BACKEND = "qdrant"
PREVIOUS = "@previous"  # suffix of the alias that keeps the rollback target
COMPLETE, INCOMPLETE = "complete", "incomplete"
# fault injection for the fault tests (tests/test_index.py), never set in normal use:
# "build-pause-after:N" stops a build after N batches (the test kills it there),
# "swap-kill-at-commit" kills a swap just before the database commits its alias change
FAULT_VARIABLE = "HARNESS_INDEX_FAULT"


@dataclass
class IndexInfo:
    """What an index records about itself (its collection's metadata)."""

    collection: str
    state: str
    serves: str  # the serving name (alias) it was built for
    model: str  # the dense spec that encoded its documents
    fingerprint: str
    max_seq_length: int
    doc_prompt: str
    dimension: int
    corpus_hash: str
    documents: int
    backend: str = BACKEND
    registry: dict[str, Any] | None = None  # name, version and uri when the model came from the registry
    built_at: str = ""
    completed_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, collection: str, metadata: dict[str, Any] | None) -> "IndexInfo":
        record = dict((metadata or {}).get("harness_index") or {})
        if not record:
            raise HarnessError(f"collection {collection!r} is not an index written by harness index build (no harness_index metadata)")
        known = {name for name in cls.__dataclass_fields__ if name not in ("collection", "extra")}
        return cls(collection=collection, extra={k: v for k, v in record.items() if k not in known},
                   **{k: v for k, v in record.items() if k in known})

    def metadata(self) -> dict[str, Any]:
        record = asdict(self)
        del record["collection"], record["extra"]
        return {"harness_index": record}

    @property
    def vector_bytes(self) -> int:
        return self.documents * self.dimension * 4


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_url(db: str | Path) -> bool:
    return "://" in str(db)


class Store:
    """One vector database (a folder or a server), opened for one command."""

    def __init__(self, db: str | Path) -> None:
        from qdrant_client import QdrantClient

        self.db = str(db)
        if is_url(db):
            self.client = QdrantClient(url=self.db)
            self.location = self.db
        else:
            path = Path(db).expanduser()
            if path.exists() and not path.is_dir():
                raise HarnessError(f"--db {db}: is a file, not a vector database folder")
            try:
                self.client = QdrantClient(path=str(path))
            except RuntimeError as exc:  # the folder's lock: another process has it open
                raise HarnessError(f"--db {db}: {exc}") from None
            self.location = str(path.resolve())

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------------- reading

    def aliases(self) -> dict[str, str]:
        """alias -> collection, for every alias of the database."""
        return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def indexes(self) -> list[IndexInfo]:
        found = []
        for collection in self.client.get_collections().collections:
            metadata = self.client.get_collection(collection.name).config.metadata
            if metadata and "harness_index" in metadata:
                found.append(IndexInfo.from_metadata(collection.name, metadata))
        return sorted(found, key=lambda info: (info.built_at, info.collection))

    def index(self, collection: str) -> IndexInfo | None:
        if not self.client.collection_exists(collection):
            return None
        return IndexInfo.from_metadata(collection, self.client.get_collection(collection).config.metadata)

    def resolve(self, name: str) -> IndexInfo:
        """The index an alias points to, or the collection of that name."""
        target = self.aliases().get(name, name)
        info = self.index(target)
        if info is None:
            raise HarnessError(f"--db {self.db}: no alias or index named {name!r} (aliases: {self._known()})")
        return info

    def _known(self) -> str:
        return ", ".join(f"{alias} -> {target}" for alias, target in sorted(self.aliases().items())) or "none"

    def count(self, collection: str) -> int:
        return self.client.count(collection, exact=True).count

    def nearest(self, collection: str, vector: Sequence[float], limit: int) -> list[tuple[str, float]]:
        """(doc id, inner product) of the ``limit`` nearest points, by exact search."""
        from qdrant_client import models

        # a server searches its HNSW graph unless told otherwise; local mode is always exact
        exact = models.SearchParams(exact=True) if is_url(self.db) else None
        answer = self.client.query_points(collection, query=list(map(float, vector)), limit=limit, with_payload=["doc_id"],
                                          search_params=exact)
        return [(point.payload["doc_id"], float(point.score)) for point in answer.points]

    # ------------------------------------------------------------------------- writing

    def create(self, info: IndexInfo) -> None:
        from qdrant_client import models

        # dot product of the normalised vectors is the cosine the dense arm computes; Qdrant's
        # COSINE distance would normalise them again on upsert and move their last bits
        self.client.create_collection(info.collection, vectors_config=models.VectorParams(size=info.dimension, distance=models.Distance.DOT),
                                      metadata=info.metadata())

    def write(self, collection: str, first_id: int, doc_ids: Sequence[str], vectors: Any) -> None:
        from qdrant_client import models

        self.client.upsert(collection, wait=True, points=models.Batch(
            ids=list(range(first_id, first_id + len(doc_ids))), vectors=vectors.tolist(),
            payloads=[{"doc_id": doc_id} for doc_id in doc_ids]))

    def mark_complete(self, info: IndexInfo) -> None:
        info.state, info.completed_at = COMPLETE, now()
        self.client.update_collection(info.collection, metadata=info.metadata())

    def delete(self, collection: str) -> None:
        self.client.delete_collection(collection)

    def swap(self, alias: str, collection: str) -> str | None:
        """Point ``alias`` at ``collection`` and ``alias@previous`` at what it served; returns that."""
        info = self.index(collection)
        if info is None:
            raise HarnessError(f"--db {self.db}: no index named {collection!r} (indexes: {', '.join(i.collection for i in self.indexes()) or 'none'})")
        if info.state != COMPLETE:
            raise HarnessError(f"--db {self.db}: index {collection!r} is {info.state} (its build did not finish): it cannot serve")
        aliases = self.aliases()
        current = aliases.get(alias)
        if current == collection:
            raise HarnessError(f"--db {self.db}: {alias!r} already serves {collection!r}")
        self._point({alias: collection, alias + PREVIOUS: current}, aliases)
        return current

    def rollback(self, alias: str) -> tuple[str, str]:
        """Point ``alias`` back at ``alias@previous`` (and that alias at what it served); returns (from, to)."""
        aliases = self.aliases()
        current, previous = aliases.get(alias), aliases.get(alias + PREVIOUS)
        if current is None or previous is None:
            raise HarnessError(f"--db {self.db}: nothing to roll back to for {alias!r} (aliases: {self._known()})")
        self._point({alias: previous, alias + PREVIOUS: current}, aliases)
        return current, previous

    def _point(self, targets: dict[str, str | None], aliases: dict[str, str]) -> None:
        """Every alias in ``targets`` to its collection (None: removed), in one call."""
        from qdrant_client import models

        operations: list[Any] = []
        for alias, collection in targets.items():
            if alias in aliases:
                operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
            if collection is not None:
                operations.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)))
        with _fault_at_commit():
            self.client.update_collection_aliases(change_aliases_operations=operations)

    def prune(self, keep_previous: bool) -> list[IndexInfo]:
        """Delete every index no alias serves (and the rollback targets unless ``keep_previous``)."""
        aliases = self.aliases()
        kept = {target for alias, target in aliases.items() if keep_previous or not alias.endswith(PREVIOUS)}
        pruned = [info for info in self.indexes() if info.collection not in kept]
        dropped = [alias for alias, target in aliases.items() if target not in kept]
        if dropped:
            self._point(dict.fromkeys(dropped), aliases)
        for info in pruned:
            self.delete(info.collection)
        return pruned


@contextmanager
def open_store(db: str | Path) -> Iterator[Store]:
    store = Store(db)
    try:
        yield store
    finally:
        store.close()


def fault(name: str) -> str | None:
    """The argument of the injected fault ``name`` (``HARNESS_INDEX_FAULT=name[:arg]``), or None."""
    value = os.environ.get(FAULT_VARIABLE, "")
    kind, _, argument = value.partition(":")
    return argument if kind == name else None


@contextmanager
def _fault_at_commit() -> Iterator[None]:
    """With ``swap-kill-at-commit``, the process is killed (SIGKILL: no clean-up runs) as the
    database renames its new alias table into place, the last step of the change."""
    if fault("swap-kill-at-commit") is not None:
        def kill_at_rename(event: str, args: tuple[Any, ...]) -> None:
            if event == "os.rename" and str(args[0]).endswith("meta.json.tmp"):
                os.kill(os.getpid(), signal.SIGKILL)

        sys.addaudithook(kill_at_rename)
    yield
