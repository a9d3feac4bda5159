"""The serving index follows the registry's champion.

``harness models promote --serving DB`` and ``harness models rollback --serving DB`` change
the champion and then point the serving alias at the champion's own index, so the
registry and the vector database never name different models: the seed articles' "keep
the old index available for rollback", with the registry deciding which one serves.

The index must already be built (``harness index build --model models:/NAME/N``), complete,
and encoded by the version's weights (the index's fingerprint equals the version's): that
is checked before the registry changes, so a missing index refuses the promotion instead
of leaving a champion whose vectors nothing serves. The swap itself is the store's atomic
alias change (``Store.swap``/``Store.rollback``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.serving.store import COMPLETE, PREVIOUS, IndexInfo, Store, now


@dataclass
class Swapped:
    alias: str
    collection: str  # what the alias serves now
    previous: str | None  # what it served before (None: it served this index already)

    def record(self, db: str | Path, event: str) -> dict[str, Any]:
        return {"db": str(db), "alias": self.alias, "collection": self.collection, "previous": self.previous,
                "event": event, "at": now()}


def index_of(store: Store, alias: str, fingerprint: str, version: int) -> IndexInfo:
    """The complete index built for ``alias`` from the weights ``fingerprint``; the one the
    alias already serves or keeps as its rollback target first, else the newest."""
    built = [i for i in store.indexes() if i.serves == alias and i.state == COMPLETE and i.fingerprint == fingerprint]
    if not built:
        raise HarnessError(
            f"--serving {store.db}: no complete index of v{version} (weights {fingerprint}) for {alias!r}: build it first "
            f"(harness index build --db {store.db} --model models:/NAME/{version} --alias {alias} --data DIR)")
    aliases = store.aliases()
    preferred = [i for i in built if i.collection in (aliases.get(alias), aliases.get(alias + PREVIOUS))]
    return (preferred or built)[-1]


def serve(store: Store, alias: str, index: IndexInfo) -> Swapped:
    """Point ``alias`` at ``index``: back to its rollback target when that is the index (so
    ``NAME@previous`` keeps what served before), else a swap; nothing when it serves it."""
    aliases = store.aliases()
    current = aliases.get(alias)
    if current == index.collection:
        return Swapped(alias, index.collection, None)
    if aliases.get(alias + PREVIOUS) == index.collection:
        before, _ = store.rollback(alias)
        return Swapped(alias, index.collection, before)
    return Swapped(alias, index.collection, store.swap(alias, index.collection))
