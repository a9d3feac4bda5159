"""Progress bars on stderr, quiet when stderr is not a terminal or HARNESS_QUIET is set."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("HARNESS_QUIET")


def track(items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
    if not enabled():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, total=total, description=description, transient=True)
