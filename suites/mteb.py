"""The MTEB suite: general-retrieval benchmarks run through ``mteb`` 2.x itself.

A model fine-tuned on one domain can forget general retrieval; this suite measures that on
the benchmark the field trusts, with mteb's own task loaders, search, scoring and result
cache. Spellings::

    mteb:SciFact,NFCorpus          named MTEB tasks (mteb.get_tasks + mteb.evaluate)
    mteb:local[@SPLIT]             the evaluation dataset itself as a local MTEB task
    mteb:local=PATH[;PATH...]      other BEIR folders as local MTEB tasks
    mteb:general                   offline: the BEIR folders in $HARNESS_MTEB_GENERAL
                                   (PATH;PATH...); online: the retrieval tasks of MTEB(eng, v2)
    mteb:general=PATH[;PATH...]    the given BEIR folders, online or not

Every dense retriever of the run is evaluated (its model, prompts, ``dim`` and ``max_len``
wrapped as an mteb encoder); other retrievers are listed as skipped in ``details``.

Results are cached in mteb's ``ResultCache`` under ``CACHE/mteb`` with mteb's predictions,
so a task already run for a model's fingerprint is never run again; document embeddings go
through the harness's embedding cache, shared with the ``dense`` retriever, so ``--suite
heldout --suite mteb:local`` encodes the corpus once (``harness.suites.mteb_run``: the
encoder, running one task, the cache). ``mteb:local`` and local folders are wrapped as mteb
tasks by ``harness.suites.mteb_local``.

Offline (``HF_HUB_OFFLINE=1``), a named task whose data is not in the local Hugging Face
cache is skipped with a one-line warning that says how to fetch it; the result records the
skip (``details.skipped_tasks``, ``excluded``) and ``details.complete`` is false.

Per-query scores are the harness's metrics (``harness.metrics.per_query``) on the run mteb
produced, with mteb's qrels (queries without a positive judgement dropped, as mteb does)
and, where the task says so, hits equal to the query id dropped. ``details`` holds mteb's
own scores per task and retriever, its main score and the change from the first (base)
dense retriever. With several tasks, query ids are prefixed ``TASK/`` and ``aggregates``
are the mean over tasks of each task's mean (MTEB's convention).
"""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import SuiteResult
from harness.suites.base import EvalContext, Suite
from harness.suites.mteb_local import local_task
from harness.suites.mteb_run import DataUnavailable, HarnessEncoder, offline, run_task

GENERAL_ENV = "HARNESS_MTEB_GENERAL"
GENERAL_BENCHMARK = "MTEB(eng, v2)"
# the retrieval tasks of MTEB(eng, v2) in mteb 2.26, used if the benchmark cannot be read
GENERAL_TASKS = (
    "ArguAna",
    "CQADupstackGamingRetrieval",
    "CQADupstackUnixRetrieval",
    "ClimateFEVERHardNegatives",
    "FEVERHardNegatives",
    "FiQA2018",
    "HotpotQAHardNegatives",
    "SCIDOCS",
    "TRECCOVID",
    "Touche2020Retrieval.v3",
)
USAGE = (
    "mteb needs tasks: mteb:SciFact,NFCorpus | mteb:local[@SPLIT] | mteb:local=PATH[;PATH...] "
    "| mteb:general | mteb:general=PATH[;PATH...]"
)


def warn(message: str) -> None:
    """One line on stderr (a skip must never be silent, nor take a screenful)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _split_paths(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


@dataclass(frozen=True)
class TaskRef:
    """One task of the suite: ``context`` (the run's dataset), ``local`` (a BEIR folder) or ``named``."""

    kind: str
    value: str = ""


class MTEBSuite(Suite):
    kind = "mteb"

    def __init__(self, argument: str, refs: list[TaskRef], general: bool = False, split: str | None = None) -> None:
        self.name = f"mteb:{argument}"
        self.refs = refs
        self.general = general
        self.split = split

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, argument: str) -> "MTEBSuite":
        text = argument.strip()
        if not text:
            raise HarnessError(USAGE)
        head, eq, rest = text.partition("=")
        head = head.strip()
        if head.split("@")[0] == "local":
            if eq:
                paths = _split_paths(rest)
                if not paths:
                    raise HarnessError(f"mteb:local= needs at least one BEIR folder ({USAGE})")
                return cls(text, [TaskRef("local", p) for p in paths])
            split = head.partition("@")[2] or None
            return cls(text, [TaskRef("context")], split=split)
        if head == "general":
            paths = _split_paths(rest) if eq else []
            if eq and not paths:
                raise HarnessError(f"mteb:general= needs at least one BEIR folder ({USAGE})")
            return cls(text, [TaskRef("local", p) for p in paths], general=True)
        if eq:
            raise HarnessError(f"unknown mteb option {head!r}: {USAGE}")
        names = [n.strip() for n in text.split(",") if n.strip()]
        if len(set(names)) != len(names):
            raise HarnessError(f"mteb: a task is named twice in {text!r}")
        _check_task_names(names)
        return cls(",".join(names), [TaskRef("named", n) for n in names])

    def splits(self) -> list[str]:
        return [self.split] if self.split else []

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, context: EvalContext) -> SuiteResult:
        import mteb

        from harness.adapters.dense import DenseRetriever

        details: dict[str, Any] = {
            "mteb_version": mteb.__version__,
            "offline": offline(),
            "cache": str(Path(context.cache_dir) / "mteb"),
            "tasks": {},
            "skipped_tasks": {},
            "skipped_retrievers": {},
            "per_query_source": "harness.metrics.per_query on mteb's retrieval predictions and qrels",
        }
        dense: dict[str, DenseRetriever] = {}
        for spec, retriever in context.retrievers.items():
            if isinstance(retriever, DenseRetriever):
                dense[spec] = retriever
            else:
                details["skipped_retrievers"][spec] = "not a dense retriever: mteb evaluates embedding models"
        if not dense:
            warn(f"{self.name}: no dense retriever in this run, nothing to evaluate with mteb")

        from harness.progress import enabled

        if not enabled():
            import datasets

            datasets.disable_progress_bars()
        refs = self._resolve_refs(details)
        root = Path(context.cache_dir) / "mteb"
        cache = mteb.ResultCache(cache_path=root)
        encoders = {spec: HarnessEncoder(retriever, Path(retriever.cache_dir or context.cache_dir)) for spec, retriever in dense.items()}

        outcomes: list[tuple[str, dict[str, dict[str, dict[str, float]]]]] = []  # (task name, per_query by spec)
        for ref in refs:
            task = self._make_task(ref, context)
            task_name = task.metadata.name
            if not encoders:
                details["skipped_tasks"][task_name] = "no dense retriever"
                continue
            try:
                per_spec, info = run_task(task, encoders, cache, root, context.metrics)
            except DataUnavailable as exc:
                message = (
                    f"mteb task {task_name} skipped: {exc.reason}; fetch it while online with "
                    f"`HF_HUB_OFFLINE=0 python -c \"import mteb; mteb.get_task('{task_name}').load_data()\"` "
                    "(or run this suite once online)"
                )
                warn(message)
                details["skipped_tasks"][task_name] = message
                continue
            info["source"] = ref.value if ref.kind != "context" else f"{context.dataset.path} (the evaluated dataset)"
            details["tasks"][task_name] = info
            outcomes.append((task_name, per_spec))

        if self.general and not outcomes and refs and all(r.kind == "named" for r in refs):
            local = _general_paths_from_env()
            if local:
                warn(f"{self.name}: no MTEB task could be fetched; running the local folders of ${GENERAL_ENV} instead")
                details["fallback"] = f"local folders from ${GENERAL_ENV}"
                for path in local:
                    task = self._make_task(TaskRef("local", path), context)
                    per_spec, info = run_task(task, encoders, cache, root, context.metrics)
                    info["source"] = path
                    details["tasks"][task.metadata.name] = info
                    outcomes.append((task.metadata.name, per_spec))

        prefix = len(outcomes) > 1
        per_query: dict[str, dict[str, dict[str, float]]] = {spec: {m: {} for m in context.metrics} for spec in encoders}
        query_ids: list[str] = []
        task_means: dict[str, dict[str, list[float]]] = {spec: {m: [] for m in context.metrics} for spec in encoders}
        for task_name, per_spec in outcomes:
            ids: list[str] = []
            for spec, metrics in per_spec.items():
                for metric, scores in metrics.items():
                    if not ids:
                        ids = list(scores)
                    per_query[spec][metric].update({(f"{task_name}/{q}" if prefix else q): s for q, s in scores.items()})
                    if scores:
                        task_means[spec][metric].append(statistics.fmean(scores.values()))
            query_ids.extend(f"{task_name}/{q}" if prefix else q for q in ids)
        aggregates = {
            spec: {metric: statistics.fmean(values) for metric, values in metrics.items() if values}
            for spec, metrics in task_means.items()
        }
        if outcomes:
            main = {spec: [details["tasks"][t]["main_score"][spec] for t, _ in outcomes] for spec in encoders}
            for spec in encoders:
                aggregates[spec]["mteb_main_score"] = statistics.fmean(main[spec])
        details["complete"] = bool(outcomes) and not details["skipped_tasks"] and bool(encoders)
        details["per_query_available"] = bool(outcomes) and bool(encoders)  # False: a gate can only use thresholds
        details["per_query_ids"] = "TASK/query-id (several tasks)" if prefix else "query-id"
        details["aggregation"] = "mean over tasks of each task's mean" if prefix else "mean over queries"
        excluded = {"mteb_tasks_skipped": len(details["skipped_tasks"])} if details["skipped_tasks"] else {}
        split = self.split or (context.default_split if any(r.kind == "context" for r in refs) else None)
        intervals = {}
        if len(outcomes) == 1:  # with several tasks the aggregate is a mean of means: no interval given
            from harness import metrics as metric_lib

            if hasattr(metric_lib, "mean_intervals"):
                intervals = {spec: metric_lib.mean_intervals(metrics) for spec, metrics in per_query.items()}
        return SuiteResult(
            name=self.name,
            kind=self.kind,
            split=split,
            query_ids=query_ids,
            excluded=excluded,
            per_query={spec: metrics for spec, metrics in per_query.items() if outcomes},
            aggregates=aggregates if outcomes else {},
            details=details,
            intervals=intervals,
        )

    def _resolve_refs(self, details: dict[str, Any]) -> list[TaskRef]:
        if not self.general or self.refs:
            return list(self.refs)
        if offline():
            paths = _general_paths_from_env()
            if not paths:
                message = (
                    f"{self.name} skipped: offline, and no local folders given; set {GENERAL_ENV}=PATH;PATH "
                    "(BEIR folders, e.g. ../shared/datasets/cranfield;../shared/datasets/med) or write "
                    "mteb:general=PATH;PATH, or run online for the MTEB English retrieval tasks"
                )
                warn(message)
                details["skipped_tasks"]["general"] = message
                return []
            details["general"] = f"offline: local folders from ${GENERAL_ENV}"
            return [TaskRef("local", p) for p in paths]
        details["general"] = f"online: the retrieval tasks of {GENERAL_BENCHMARK}"
        return [TaskRef("named", n) for n in general_task_names()]

    def _make_task(self, ref: TaskRef, context: EvalContext) -> Any:
        if ref.kind == "context":
            split = self.split or context.default_split
            context.warn_identical_ids(split)
            return local_task(context.dataset, split, ignore_identical_ids=context.ignore_identical_ids)
        if ref.kind == "local":
            from harness.data import load_dataset

            dataset = load_dataset(Path(ref.value).expanduser(), unknown_docs=context.dataset.unknown_docs)
            split = context.default_split if context.default_split in dataset.available_splits() else "test"
            return local_task(dataset, split, ignore_identical_ids=context.ignore_identical_ids)
        import mteb

        return mteb.get_tasks(tasks=[ref.value])[0]


# ---------------------------------------------------------------------- helpers


def _check_task_names(names: list[str]) -> None:
    import mteb

    unknown = []
    for name in names:
        try:
            tasks = mteb.get_tasks(tasks=[name])
        except KeyError:
            unknown.append(name)
            continue
        if not tasks:
            unknown.append(name)
            continue
        task = tasks[0]
        from mteb.abstasks.retrieval import AbsTaskRetrieval

        if not isinstance(task, AbsTaskRetrieval):
            raise HarnessError(f"mteb task {name!r} is a {task.metadata.type} task; this suite runs retrieval tasks")
    if unknown:
        raise HarnessError(f"unknown mteb task(s): {', '.join(unknown)} (names as in mteb.get_tasks, e.g. SciFact, NFCorpus, ArguAna, FiQA2018)")


def general_task_names() -> list[str]:
    try:
        import mteb

        benchmark = mteb.get_benchmark(GENERAL_BENCHMARK)
        names = [t.metadata.name for t in benchmark.tasks if t.metadata.type == "Retrieval"]
        return names or list(GENERAL_TASKS)
    except Exception:  # an mteb without this benchmark: the list it had in 2.26
        return list(GENERAL_TASKS)


def _general_paths_from_env() -> list[str]:
    return _split_paths(os.environ.get(GENERAL_ENV, ""))
