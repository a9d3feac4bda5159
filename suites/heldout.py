"""The held-out suite: every judged query of one split (``test`` by default)."""

from __future__ import annotations

from harness.suites.base import EvalContext, QuerySelectionSuite


class HeldOutSuite(QuerySelectionSuite):
    kind = "heldout"

    def __init__(self, split: str = "test") -> None:
        self.split = split
        self.name = f"heldout:{split}"

    def select(self, context: EvalContext) -> tuple[list[str], dict[str, int]]:
        return context.dataset.split(self.split).query_ids, {}
