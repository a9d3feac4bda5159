"""Compile ranx's numba kernels once (``python -m harness.warmup``), so the first real
evaluation does not pay ~50 s of JIT compilation; numba caches them on disk."""

from __future__ import annotations

import time


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
    from ranx import Run, fuse

    from harness.metrics import DEFAULT_METRICS, per_query

    started = time.perf_counter()
    per_query({"q": {"a": 1, "b": 2}}, {"q": {"a": 0.5, "b": 0.9}}, list(DEFAULT_METRICS) + ["map", "ndcg@100"])
    runs = [Run({"q": {"a": 1.0, "b": 0.5}}), Run({"q": {"a": 0.2, "c": 0.4}})]
    fuse(runs, method="rrf", norm=None)
    for norm in ("min-max", "zmuv"):
        fuse(runs, method="wsum", norm=norm, params={"weights": [0.5, 0.5]})
    print(f"ranx kernels ready ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
