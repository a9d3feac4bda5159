"""The offline evaluation engine: dataset + retriever specs + suites -> EvalResult."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

from harness.adapters import build_retriever
from harness import metrics as metric_lib
from harness import provenance
from harness.data import Dataset, load_dataset
from harness.errors import HarnessError
from harness.results import EvalResult, RetrieverResult, check_scores
from harness.suites import EvalContext, parse_suite


def seed_everything(seed: int) -> None:
    """Evaluation draws random numbers through ``random`` and numpy only (the latency
    sample, bootstrap intervals); model inference is deterministic, so torch is not
    seeded here: importing it would cost a BM25-only run about 2.5 s."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)


RUNS_FOLDER = "runs"


def run_file_name(spec: str, split: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[:60]
    return f"{slug}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}.{split}.trec"


def evaluate(
    data: str | Path | Dataset,
    retrievers: list[str],
    suites: list[str] | None = None,
    out: str | Path | None = None,
    metrics: list[str] | None = None,
    cache_dir: str | Path | None = None,
    split: str = "test",
    ignore_identical_ids: bool = False,
    unknown_docs: str = "error",
    seed: int = 0,
) -> EvalResult:
    if not retrievers:
        raise HarnessError("give at least one --retriever")
    if len(set(retrievers)) != len(retrievers):
        raise HarnessError("the same --retriever is given twice")
    metric_names = [metric_lib.validate_metric(m) for m in (metrics or metric_lib.DEFAULT_METRICS)]
    suite_objects = [parse_suite(name, default_split=split) for name in (suites or ["heldout"])]
    names = [s.name for s in suite_objects]
    if len(set(names)) != len(names):
        raise HarnessError(f"a suite is given twice: {', '.join(names)}")
    from harness.adapters import default_cache_dir

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    built = {}
    shared: dict = {}
    for spec in retrievers:
        retriever = build_retriever(spec, cache, shared)
        built[retriever.spec] = retriever
    dataset = data if isinstance(data, Dataset) else load_dataset(data, unknown_docs=unknown_docs)
    for suite in suite_objects:
        for needed in suite.splits():
            dataset.split(needed)  # fail on a missing or empty split before any model is loaded
        suite.check(dataset)
    from harness.adapters.filter import attach_metadata

    attach_metadata(built.values(), dataset.corpus, dataset.queries, str(dataset.path))  # filter arms: metadata checked here
    seed_everything(seed)
    from harness.warmup import in_background

    judged = next((dataset.split(name).qrels for suite in suite_objects for name in suite.splits()), None)
    context = EvalContext(
        background=in_background(metric_names, judged),
        dataset=dataset,
        retrievers=built,
        metrics=metric_names,
        cache_dir=cache,
        default_split=split,
        ignore_identical_ids=ignore_identical_ids,
    )
    suite_results = [suite.evaluate(context) for suite in suite_objects]

    runs = context.runs()
    run_files: dict[str, dict[str, str]] = {spec: {} for spec in built}
    if out is not None:
        for spec, run_split in runs:
            run_files[spec][run_split] = str(Path(RUNS_FOLDER) / run_file_name(spec, run_split))
    retriever_results = []
    for spec, retriever in built.items():
        split_runs = [run for (s, _), run in runs.items() if s == spec]
        latency = split_runs[0].latency_summary() if split_runs else {}
        retriever_results.append(
            RetrieverResult(
                spec=spec,
                description=retriever.describe(),
                build_seconds=retriever.build_seconds,
                latency=latency,
                run_files=run_files[spec],
            )
        )
    used_splits = sorted({s for suite in suite_objects for s in suite.splits()})
    evaluated = {qid for result in suite_results for qid in result.query_ids}
    result = EvalResult(
        provenance=provenance.collect(seed=seed),
        dataset=dataset.provenance(used_splits),
        options={"metrics": metric_names, "depth": context.depth, "split": split, "ignore_identical_ids": ignore_identical_ids,
                 "unknown_docs": dataset.unknown_docs},
        retrievers=retriever_results,
        suites=suite_results,
        queries={qid: dataset.queries[qid].text for qid in sorted(evaluated) if qid in dataset.queries},
    )
    check_scores(result.suites, f"evaluation of {dataset.path}")
    if out is not None:
        write_outputs(result, runs, Path(out))
    return result


def write_outputs(result: EvalResult, runs: dict, out: Path) -> None:
    """``OUT/result.json`` and the run files it names in ``OUT/runs/``, put in place together:
    an interrupt leaves the previous ones as they were, and no run file of an earlier
    evaluation stays beside a result that does not name it."""
    from harness.files import staged

    with staged(out / RUNS_FOLDER, out / "result.json") as (run_dir, result_file):
        run_dir.mkdir()
        for (spec, run_split), run in runs.items():
            (run_dir / run_file_name(spec, run_split)).write_text(run.to_trec(tag=spec.replace(" ", "_")), encoding="utf-8")
        result.write(result_file)
