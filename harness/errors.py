"""One exception type for every user-facing error.

The CLI prints ``HarnessError`` as a single line and exits with code 3; anything that
names a file says which one, and which line where a line is known.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """An error caused by input the user can fix (a file, a spec, an option)."""


def located(path: str | Path, line: int | None, message: str) -> HarnessError:
    """Return an error whose text starts with ``path:line:`` like a compiler's."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return HarnessError(f"{where}: {message}")
