"""Running one MTEB task for every dense retriever, with mteb's result cache.

Results go to mteb's ``ResultCache`` under ``CACHE/mteb``, keyed by a model name, the model
*fingerprint* as mteb's revision and, where prompts or ``dim`` are set, an experiment name;
a task already there is never run again for the same fingerprint. mteb's retrieval
predictions are kept next to it (``CACHE/mteb/predictions``) with the task's qrels
(``CACHE/mteb/qrels``), so per-query scores come back without encoding anything. Document
embeddings go through the harness's embedding cache (``HarnessEncoder``), shared with the
``dense`` retriever.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.suites.mteb_local import slug

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


def offline() -> bool:
    """Whether Hugging Face downloads are switched off (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``)."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    return False



class DataUnavailable(Exception):
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
                name=f"harness/{slug(display_name(retriever.model_name))}",
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


def run_task(task: Any, encoders: dict[str, HarnessEncoder], cache: Any, root: Path, metrics: list[str]) -> tuple[dict, dict]:
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
                        raise DataUnavailable(where) from exc
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
