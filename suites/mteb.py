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

Caching: results go to mteb's ``ResultCache`` under ``CACHE/mteb``, keyed by a model name,
the model *fingerprint* as mteb's revision and, where prompts or ``dim`` are set, an
experiment name; a task already there is never run again for the same fingerprint. mteb's
retrieval predictions are kept next to it (``CACHE/mteb/predictions``) with the task's
qrels (``CACHE/mteb/qrels``), so per-query scores come back without encoding anything.
Document embeddings go through the harness's embedding cache, shared with the ``dense``
retriever, so ``--suite heldout --suite mteb:local`` encodes the corpus once.

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

import hashlib
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import SuiteResult
from harness.suites.base import EvalContext, Suite

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
# local tasks stop at the harness's usual depth; mteb's own tasks keep their k values
LOCAL_K_VALUES = (1, 3, 5, 10, 20, 100)
# mteb scores copied into details (all of them are in mteb's result cache file)
MTEB_SCORES = (
    "ndcg_at_10",
    "ndcg_at_100",
    "recall_at_10",
    "recall_at_100",
    "map_at_10",
    "map_at_100",
    "mrr_at_10",
    "precision_at_10",
    "hit_rate_at_10",
)
USAGE = (
    "mteb needs tasks: mteb:SciFact,NFCorpus | mteb:local[@SPLIT] | mteb:local=PATH[;PATH...] "
    "| mteb:general | mteb:general=PATH[;PATH...]"
)


def offline() -> bool:
    """Whether Hugging Face downloads are switched off (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``)."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    return False


def warn(message: str) -> None:
    """One line on stderr (a skip must never be silent, nor take a screenful)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _slug(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")
    return slug[-limit:] or "model"


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
                per_spec, info = _run_task(task, encoders, cache, root, context.metrics)
            except _DataUnavailable as exc:
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
                    per_spec, info = _run_task(task, encoders, cache, root, context.metrics)
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


class _DataUnavailable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_fetch_error(exc: BaseException) -> bool:
    """A failure to reach or find the task's data on the Hub (as opposed to a bug)."""
    names = {type(e).__name__ for e in _chain(exc)}
    fetch = {
        "ConnectionError",
        "OfflineModeIsEnabled",
        "DatasetNotFoundError",
        "LocalEntryNotFoundError",
        "HfHubHTTPError",
        "ConnectTimeout",
        "ReadTimeout",
        "ConnectError",
        "MaxRetryError",
        "NewConnectionError",
        "EmptyDatasetError",
    }
    return bool(names & fetch) or isinstance(exc, ConnectionError)


def _chain(exc: BaseException) -> list[BaseException]:
    seen = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# ---------------------------------------------------------------------- the local task


def local_task(dataset: Any, split: str, ignore_identical_ids: bool = False, k_values: tuple[int, ...] = LOCAL_K_VALUES) -> Any:
    """A harness ``Dataset`` split as an mteb retrieval task that loads from memory (no Hub).

    Its name carries a hash of the dataset, the split's qrels and the options, so mteb's
    result cache never mixes two versions of a folder.
    """
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    split_data = dataset.split(split)
    key = hashlib.sha256(
        f"{dataset.hash}\0{split}\0{split_data.hash}\0{int(ignore_identical_ids)}\0{k_values}".encode()
    ).hexdigest()[:12]
    name = f"HarnessLocal-{_slug(dataset.name, 40)}-{_slug(split, 16)}-{key}"
    metadata = TaskMetadata(
        name=name,
        dataset={"path": str(Path(dataset.path).resolve()), "revision": key},
        description=f"Local BEIR folder {dataset.path}, split {split}, wrapped by the embedding harness.",
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        license="not specified",
        bibtex_citation="",
    )

    class LocalBEIRTask(AbsTaskRetrieval):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:  # noqa: ARG002
            if self.data_loaded:
                return
            from datasets import Dataset as HFDataset

            qrels = dataset.split(split).qrels
            corpus = HFDataset.from_dict(
                {
                    "id": list(dataset.corpus),
                    "title": [doc.title for doc in dataset.corpus.values()],
                    "text": [doc.text for doc in dataset.corpus.values()],
                }
            )
            queries = HFDataset.from_dict(
                {"id": list(qrels), "text": [dataset.queries[qid].text for qid in qrels]}
            )
            self.dataset = {
                "default": {
                    split: {
                        "corpus": corpus,
                        "queries": queries,
                        "relevant_docs": {qid: dict(rels) for qid, rels in qrels.items()},
                        "top_ranked": None,
                    }
                }
            }
            self.data_loaded = True

    LocalBEIRTask.__name__ = LocalBEIRTask.__qualname__ = "HarnessLocalTask"
    LocalBEIRTask.metadata = metadata
    LocalBEIRTask.ignore_identical_ids = ignore_identical_ids
    LocalBEIRTask.k_values = tuple(k_values)
    return LocalBEIRTask()


# ---------------------------------------------------------------------- the encoder


class HarnessEncoder:
    """A ``DenseRetriever`` as an mteb encoder: the same model, prompts, ``dim`` and
    normalisation as the harness's own dense search, documents through its embedding cache."""

    def __init__(self, retriever: Any, cache_root: Path) -> None:
        from mteb.models.abs_encoder import AbsEncoder  # noqa: F401  (mteb must be importable)
        from mteb.models.model_meta import ModelMeta

        from harness.adapters.models import display_name, fingerprint

        self.retriever = retriever
        self.model = retriever.model
        self.cache_root = cache_root
        self.fingerprint = fingerprint(self.model)
        self.encoded_documents = 0
        experiment: dict[str, Any] = {}
        if retriever.dim is not None:
            experiment["dim"] = retriever.dim
        if retriever.query_prompt or retriever.doc_prompt:
            prompts = f"{retriever.query_prompt}\0{retriever.doc_prompt}".encode()
            experiment["prompts"] = hashlib.sha256(prompts).hexdigest()[:10]
        self.mteb_model_meta = ModelMeta.create_empty(
            overwrites=dict(
                name=f"harness/{_slug(display_name(retriever.model_name))}",
                revision=self.fingerprint,
                max_tokens=self.model.max_seq_length,
                embed_dim=retriever.dim or self.model.get_embedding_dimension(),
                framework=["Sentence Transformers", "PyTorch"],
                experiment_kwargs=experiment or None,
            )
        )

    def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str, prompt_type: Any = None, **kwargs: Any) -> Any:
        from mteb.types import PromptType

        from harness.adapters.cache import EmbeddingCache
        from harness.progress import enabled

        texts = [text for batch in inputs for text in batch["text"]]
        retriever = self.retriever
        show = bool(kwargs.get("show_progress_bar", False)) and enabled()
        if prompt_type == PromptType.document:
            cache = EmbeddingCache(self.cache_root, self.fingerprint, retriever.doc_prompt, self.model.max_seq_length)
            vectors, encoded = cache.embed(texts, lambda batch: retriever._encode(batch, retriever.doc_prompt, show_progress=show))
            self.encoded_documents += encoded
        else:
            vectors = retriever._encode(texts, retriever.query_prompt, show_progress=show)
        return retriever._shape(vectors)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        import torch

        left = torch.as_tensor(embeddings1, dtype=torch.float32)
        right = torch.as_tensor(embeddings2, dtype=torch.float32)
        if left.ndim == 1:
            left = left.unsqueeze(0)
        if right.ndim == 1:
            right = right.unsqueeze(0)
        return left @ right.T  # vectors are normalised: inner product = cosine, as the harness's flat index

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        import torch

        left = torch.as_tensor(embeddings1, dtype=torch.float32)
        right = torch.as_tensor(embeddings2, dtype=torch.float32)
        return (left * right).sum(dim=-1)


# ---------------------------------------------------------------------- running one task


def _paths(root: Path, meta: Any, task: Any) -> tuple[Path, Path]:
    experiment = meta.experiment_name or "default"
    predictions = root / "predictions" / meta.model_name_as_path() / meta.revision / experiment
    revision = str(task.metadata.dataset.get("revision", ""))[:12]
    qrels = root / "qrels" / f"{task.metadata.name}-{revision}.json"
    return predictions, qrels


def _cached(cache: Any, task: Any, meta: Any) -> Any:
    existing = cache.load_task_result(task.metadata.name, meta)
    if existing is None or existing.get_missing_evaluations(task):
        return None
    return existing


def _run_task(task: Any, encoders: dict[str, HarnessEncoder], cache: Any, root: Path, metrics: list[str]) -> tuple[dict, dict]:
    """Run (or read back from mteb's cache) one task for every encoder; per-query scores and details."""
    import mteb

    from harness import metrics as metric_lib

    task_name = task.metadata.name
    info: dict[str, Any] = {
        "main_score_name": task.metadata.main_score,
        "splits": list(task.eval_splits),
        "ignore_identical_ids": bool(getattr(task, "ignore_identical_ids", False)),
        "main_score": {},
        "scores": {},
        "from_cache": {},
        "seconds": {},
        "mteb_evaluation_time": {},
        "encoded_documents": {},
    }
    per_spec: dict[str, dict[str, dict[str, float]]] = {}
    loaded_here = False
    _, qrels_path = _paths(root, next(iter(encoders.values())).mteb_model_meta, task)
    try:
        for spec, encoder in encoders.items():
            meta = encoder.mteb_model_meta
            predictions_dir, _ = _paths(root, meta, task)
            predictions_file = predictions_dir / f"{task_name}_predictions.json"
            started = time.perf_counter()
            hit = _cached(cache, task, meta) is not None and predictions_file.is_file() and qrels_path.is_file()
            if not hit and not task.data_loaded:
                try:
                    task.load_data()
                except Exception as exc:
                    if _is_fetch_error(exc):
                        where = "offline and its data is not in the local Hugging Face cache" if offline() else f"its data could not be fetched ({type(exc).__name__})"
                        raise _DataUnavailable(where) from exc
                    raise HarnessError(f"mteb task {task_name}: cannot load its data: {exc}") from exc
                loaded_here = True
            encoder.encoded_documents = 0
            result = mteb.evaluate(
                encoder,
                task,
                cache=cache,
                overwrite_strategy="only-missing" if hit else "always",
                prediction_folder=None if hit else predictions_dir,
                encode_kwargs={"batch_size": encoder.retriever.batch_size, "show_progress_bar": False},
                show_progress_bar=False,
                co2_tracker=False,
                raise_error=True,
            )
            if result.exceptions:
                raise HarnessError(f"mteb task {task_name} failed for {spec}: {result.exceptions[0].exception}")
            task_result = result.task_results[0]
            if not hit:
                _write_qrels(task, qrels_path)
            info["from_cache"][spec] = hit
            info["encoded_documents"][spec] = encoder.encoded_documents
            info["mteb_evaluation_time"][spec] = task_result.evaluation_time
            info["main_score"][spec] = float(task_result.get_score())
            first = _first_scores(task_result)
            info["scores"][spec] = {k: first[k] for k in MTEB_SCORES if k in first}
            per_spec[spec] = _per_query(predictions_file, qrels_path, info["ignore_identical_ids"], metrics, metric_lib)
            info["seconds"][spec] = round(time.perf_counter() - started, 3)
    finally:
        if loaded_here and hasattr(task, "unload_data"):
            task.unload_data()
    base = next(iter(encoders))
    info["delta_vs_base"] = {
        "base": base,
        "main_score": {spec: info["main_score"][spec] - info["main_score"][base] for spec in encoders if spec != base},
    }
    info["fingerprints"] = {spec: enc.fingerprint for spec, enc in encoders.items()}
    return per_spec, info


def _first_scores(task_result: Any) -> dict[str, Any]:
    for split_scores in task_result.scores.values():
        for entry in split_scores:
            return dict(entry)
    return {}


def _write_qrels(task: Any, path: Path) -> None:
    """The qrels mteb scored with (after its own filtering), per split and subset."""
    if not task.data_loaded:
        return
    data: dict[str, dict[str, Any]] = {}
    for subset, splits in task.dataset.items():
        for split, split_data in splits.items():
            if split not in task.eval_splits:
                continue
            rels = split_data["relevant_docs"]
            data.setdefault(split, {})[subset] = {
                qid: {doc: int(grade) for doc, grade in docs.items()} for qid, docs in rels.items() if docs
            }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def _per_query(
    predictions_file: Path, qrels_path: Path, ignore_identical_ids: bool, metrics: list[str], metric_lib: Any
) -> dict[str, dict[str, float]]:
    predictions = json.loads(predictions_file.read_text(encoding="utf-8"))
    qrels_by_split = json.loads(qrels_path.read_text(encoding="utf-8"))
    pairs = [(split, subset) for split, subsets in qrels_by_split.items() for subset in subsets]
    several = len(pairs) > 1
    combined: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for split, subset in pairs:
        qrels = qrels_by_split[split][subset]
        if not qrels:
            continue
        run = predictions.get(subset, {}).get(split, {})
        if ignore_identical_ids:
            run = {qid: {d: s for d, s in hits.items() if d != qid} for qid, hits in run.items()}
        scores = metric_lib.per_query(qrels, run, metrics)  # in trec_eval's order, as mteb's pytrec_eval
        for metric, values in scores.items():
            combined[metric].update({(f"{split}/{subset}/{q}" if several else q): v for q, v in values.items()})
    return combined
