"""What every result file records about how it was made."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import sys
from typing import Any

import harness

LIBRARIES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "mteb",
    "ranx",
    "bm25s",
    "faiss-cpu",
    "duckdb",
    "ibis-framework",
    "tea-tasting",
    "scipy",
    "statsmodels",
    "numpy",
)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(seed: int | None = None, command: list[str] | None = None) -> dict[str, Any]:
    """Versions, machine, time, seed and command line: enough to reproduce a result."""
    return {
        "harness_version": harness.__version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "command": command if command is not None else sys.argv,
        "python": sys.version.split()[0],
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": _cpu_count(),
        },
        "libraries": library_versions(),
    }


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
