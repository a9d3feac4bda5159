"""Compile ranx's numba kernels once (``python -m harness.warmup``), so the first real
evaluation does not pay ~50 s of JIT compilation; numba caches them on disk."""

from __future__ import annotations

import time


_thread = None


def sample() -> tuple[dict, dict]:
    """Qrels and a run of the size of a real evaluation (300 queries, 100 documents each):
    ranx runs other numba specialisations on many queries than on one, and each is
    compiled (then cached on disk) on first use."""
    import random

    rng = random.Random(0)
    qrels = {f"q{i}": {f"d{rng.randrange(5000)}": rng.randint(1, 2) for _ in range(2)} for i in range(300)}
    run = {f"q{i}": {f"d{rng.randrange(5000)}": rng.random() for _ in range(100)} for i in range(300)}
    return qrels, run


def in_background(metrics: list[str], qrels: dict[str, dict[str, int]] | None = None):
    """Import ranx and load its cached kernels for ``metrics`` in a daemon thread, so that a
    new process pays these seconds (about 9 on 2 cores) while the corpus encodes, not
    after. numba's compiler lock and Python's import locks make the main thread wait for
    whatever is still loading when it gets there first. With the evaluation's ``qrels``
    (scored against a run of their own documents) the kernels are the very ones the
    evaluation takes: a sample of another shape leaves some to compile. Returns the
    thread: join it before timing anything (``EvalContext`` does, before the first query)."""
    import threading
    import warnings

    warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")

    def load() -> None:
        from harness.metrics import per_query

        try:
            if qrels:
                per_query(qrels, {query: dict.fromkeys(docs, 0.5) for query, docs in qrels.items()}, metrics)
            else:
                per_query(*sample(), metrics)
        except Exception:  # noqa: BLE001 - the evaluation itself reports any real failure
            pass

    global _thread
    if _thread is None:  # one per process: the kernels stay loaded
        _thread = threading.Thread(target=load, name="ranx-warm-up", daemon=True)
        _thread.start()
    return _thread


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
    from harness.adapters.hybrid import fuse_hits
    from harness.metrics import DEFAULT_METRICS, per_query

    started = time.perf_counter()
    per_query({"q": {"a": 1, "b": 2}}, {"q": {"a": 0.5, "b": 0.9}}, list(DEFAULT_METRICS) + ["map", "ndcg@100"])
    qrels, run = sample()
    per_query(qrels, run, list(DEFAULT_METRICS) + ["map", "ndcg@100"])
    # fusion as the harness calls it (fixed-width ids), on one query and on many
    for runs in ([{"q": {"a": 1.0, "b": 0.5}}, {"q": {"a": 0.2, "c": 0.4}}], [run, run]):
        fuse_hits(runs, list(runs[0]), "rrf", params={"k": 60})
        for norm in ("min-max", "zmuv"):
            fuse_hits(runs, list(runs[0]), "wsum", norm=norm, params={"weights": [0.5, 0.5]})
    print(f"ranx kernels ready ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
