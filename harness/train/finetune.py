"""Fine-tuning a bi-encoder (two passes by default) or a cross-encoder reranker.

``finetune(data, base, out, ...)`` and ``finetune_cross_encoder(data, out, ...)`` are the
Python entry points (the demo pipeline and ``harness finetune`` call them). Both:

- train in ``<out>/../.<out name>.partial`` and rename it to ``out`` only once the model,
  its card and its training log are written: a folder at ``out`` is always complete;
- keep every epoch's checkpoint there (the best 3; the best is loaded at the end), so a
  run stopped with Ctrl-C can go on with ``resume=True`` (``--resume``);
- validate each epoch with the harness's metrics on the validation queries (dev split or
  a seeded share of train; never test), stop early when validation stops improving, and
  record the metrics before and after;
- seed everything and record the seed.

Two passes (the default): pass 1 trains on (query, positive) pairs with in-batch
negatives; pass 2 mines hard negatives with the pass-1 model (``harness.train.mining``)
and trains on (query, positive, negative...) from the pass-1 model. If pass 2 does not
improve validation, the pass-1 model is kept, and the card says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.data import Dataset, load_dataset
from harness.errors import HarnessError
from harness.files import write_json
from harness.train.pairs import Pair, TrainingData, read_pairs, synthetic_pairs, training_data, write_pairs

LOSSES = ("mnrl", "cmnrl", "triplet")
PASSES = ("two", "in-batch", "hard-negatives")
CARD_JSON = "training_card.json"
LOG_JSON = "training_log.json"
STATE_JSON = "state.json"


@dataclass
class FinetuneConfig:
    passes: str = "two"
    loss: str = "mnrl"
    matryoshka_dims: tuple[int, ...] | None = None
    epochs: int = 1
    pass2_epochs: int | None = None
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    batch_size: int = 32
    mini_batch_size: int = 16
    max_seq_length: int | None = None
    seed: int = 42
    early_stopping_patience: int = 1
    save_total_limit: int = 3
    # data
    train_split: str = "train"
    validation_split: str = "dev"
    validation_share: float = 0.1
    validation_corpus_max: int = 1000
    min_grade: int = 1
    max_pairs: int | None = None
    synthetic: str | None = None
    # mining for pass 2
    num_negatives: int = 1
    range_min: int = 0
    range_max: int = 50
    relative_margin: float | None = 0.05
    mining_cross_encoder: str | None = None
    keep_pass1: bool = False

    def validate(self) -> None:
        if self.passes not in PASSES:
            raise HarnessError(f"unknown --passes {self.passes!r} (known: {', '.join(PASSES)})")
        if self.loss not in LOSSES:
            raise HarnessError(f"unknown --loss {self.loss!r} (known: {', '.join(LOSSES)})")
        if self.loss == "triplet" and self.passes == "in-batch":
            raise HarnessError("TripletLoss needs a negative per pair: use --passes two or hard-negatives with --loss triplet")
        if not 1 <= self.epochs <= 10:
            raise HarnessError(f"--epochs must be between 1 and 10, got {self.epochs}")
        if self.batch_size < 2:
            raise HarnessError("--batch-size must be at least 2 (in-batch negatives need company)")
        if not 0 <= self.warmup_ratio < 1:
            raise HarnessError(f"--warmup must be in [0, 1), got {self.warmup_ratio}")
        if self.learning_rate <= 0:
            raise HarnessError("--lr must be positive")
        if self.matryoshka_dims and any(d < 1 for d in self.matryoshka_dims):
            raise HarnessError("Matryoshka dimensions must be positive")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["matryoshka_dims"] = list(self.matryoshka_dims) if self.matryoshka_dims else None
        return data


@dataclass
class FinetuneResult:
    path: Path
    card: dict[str, Any]

    @property
    def validation(self) -> dict[str, Any]:
        return self.card["validation"]

    @property
    def metrics(self) -> dict[str, Any]:
        return {"before": self.card["validation"]["before"], "after": self.card["validation"]["after"]}


def demo_config(**overrides: Any) -> "FinetuneConfig":
    """Settings for the demo pipeline: short texts, exact-document pairs only (grade 2), a
    small validation corpus; two passes in about three minutes on two idle CPU cores."""
    values: dict[str, Any] = dict(min_grade=2, max_seq_length=128, validation_corpus_max=500)
    values.update(overrides)
    return FinetuneConfig(**values)


def demo_cross_encoder_config(**overrides: Any) -> "CrossEncoderConfig":
    values: dict[str, Any] = dict(min_grade=2, max_length=128, num_negatives=1, max_pairs=600, validation_queries=30,
                                  validation_candidates=10)
    values.update(overrides)
    return CrossEncoderConfig(**values)


# ------------------------------------------------------------------ helpers


def _seed(seed: int) -> None:
    import random

    import numpy as np
    import torch
    from transformers import set_seed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    set_seed(seed)


def _work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: unreadable ({exc.__class__.__name__}); remove {path.parent} and start again") from None


def _prepare_dirs(out: Path, resume: bool, run_key: str) -> tuple[Path, dict[str, Any]]:
    out = Path(out)
    work = _work_dir(out)
    if out.exists():
        raise HarnessError(f"{out}: already exists; choose another --out or remove it")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    if work.exists() and not resume:
        raise HarnessError(f"{work}: an unfinished run is there; add --resume to continue it, or remove the folder")
    if resume:
        if not work.exists():
            raise HarnessError(f"{work}: nothing to resume (no unfinished run for {out})")
        state = _read_json(work / STATE_JSON) if (work / STATE_JSON).exists() else None
        if not isinstance(state, dict) or "run_key" not in state:
            raise HarnessError(f"{work / STATE_JSON}: missing or corrupt; remove {work} and start again")
        if state["run_key"] != run_key:
            raise HarnessError(f"{work}: the unfinished run used other data or options; rerun with the same ones, or remove it")
        return work, state
    work.mkdir(parents=True)
    state = {"run_key": run_key, "stages": {}}
    write_json(work / STATE_JSON, state, default=str)
    return work, state


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder, checked; a corrupt one is a one-line error."""
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-"):
            try:
                found.append((int(child.name.split("-", 1)[1]), child))
            except ValueError:
                continue
    if not found:
        return None
    checkpoint = max(found)[1]
    check_checkpoint(checkpoint)
    return checkpoint


def check_checkpoint(checkpoint: Path) -> None:
    def corrupt(reason: str) -> HarnessError:
        return HarnessError(f"{checkpoint}: corrupt checkpoint ({reason}); remove it to resume from the one before, or start again")

    state_file = checkpoint / "trainer_state.json"
    if not state_file.is_file():
        raise corrupt("trainer_state.json is missing")
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        int(state["global_step"])
    except (ValueError, KeyError, TypeError):
        raise corrupt("trainer_state.json is not valid") from None
    weights = [p for p in checkpoint.rglob("*.safetensors")] + [p for p in checkpoint.rglob("pytorch_model.bin")]
    if not weights:
        raise corrupt("no model weights")
    from safetensors import safe_open

    for path in weights:
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="pt") as handle:
                    list(handle.keys())
            except Exception as exc:  # safetensors raises its own error types
                raise corrupt(f"{path.name} is unreadable: {str(exc).splitlines()[0][:80]}") from None
    if not (checkpoint / "optimizer.pt").is_file():
        raise corrupt("optimizer.pt is missing")


def _load_bi_encoder(name: str, max_seq_length: int | None) -> Any:
    """A fresh copy (never the memoised one adapters share: training changes it in place)."""
    from sentence_transformers import SentenceTransformer

    from harness.adapters.models import _load, resolve_model_name

    model = _load(SentenceTransformer, resolve_model_name(name), "sentence-transformers model")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def _forget_fingerprint(model: Any) -> None:
    if hasattr(model, "_harness_fingerprint"):
        del model._harness_fingerprint


def _model_fingerprint(model: Any) -> str:
    from harness.adapters.models import fingerprint

    _forget_fingerprint(model)
    return fingerprint(model)


def step_timer() -> Any:
    """A trainer callback summing the time inside epochs (batches, forward, backward,
    optimiser), without the evaluation and checkpointing that follow each epoch."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds = 0.0
            self._start = 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._start:
                self.seconds += time.perf_counter() - self._start
                self._start = 0.0

    return StepTimer()


def _callbacks(patience: int) -> list[Any]:
    from transformers import EarlyStoppingCallback

    callbacks: list[Any] = [step_timer()]
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return callbacks


def _training_arguments(cls: Any, checkpoints: Path, config: FinetuneConfig, epochs: int, steps_per_epoch: int, batch_sampler: Any) -> Any:
    from harness.progress import enabled

    kwargs: dict[str, Any] = dict(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="val_ndcg@10",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 10),
        logging_first_step=True,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not enabled(),
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        save_safetensors=True,
    )
    if batch_sampler is not None:
        kwargs["batch_sampler"] = batch_sampler
    import inspect

    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def _loss(model: Any, config: FinetuneConfig, with_negatives: bool) -> tuple[Any, str]:
    from sentence_transformers.sentence_transformer import losses

    name = config.loss
    if name == "triplet" and not with_negatives:
        name = "mnrl"  # pass 1 has no negatives: in-batch MNRL, recorded as such
    if name == "mnrl":
        loss, label = losses.MultipleNegativesRankingLoss(model), "MultipleNegativesRankingLoss"
    elif name == "cmnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
        label = f"CachedMultipleNegativesRankingLoss(mini_batch_size={config.mini_batch_size})"
    else:
        loss = losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=0.3)
        label = "TripletLoss(cosine, margin=0.3)"
    if config.matryoshka_dims:
        full = model.get_embedding_dimension()
        dims = sorted({d for d in config.matryoshka_dims}, reverse=True)
        if dims[0] > full:
            raise HarnessError(f"Matryoshka dimension {dims[0]} exceeds the model's {full}")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims)
        label = f"MatryoshkaLoss({label}, dims={dims})"
    return loss, label


def _quiet_trainer(trainer: Any) -> None:
    """No per-log print lines when progress bars are off; the log goes to training_log.json."""
    from transformers.trainer_callback import PrinterCallback

    from harness.progress import enabled

    if not enabled():
        trainer.remove_callback(PrinterCallback)


def _log_history(trainer: Any) -> list[dict[str, Any]]:
    return [dict(entry) for entry in trainer.state.log_history]


# ------------------------------------------------------------------ one pass


def train_pass(
    model: Any,
    rows: dict[str, list[str]],
    config: FinetuneConfig,
    evaluator: Any,
    checkpoints: Path,
    epochs: int,
    with_negatives: bool,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``model`` in place on ``rows`` (columns anchor, positive[, negative_1...]).

    Returns the pass record: loss name, log history (loss curve, learning rate,
    validation), timings, pairs per second, best checkpoint.
    """
    from datasets import Dataset as HFDataset
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    _seed(config.seed)
    dataset = HFDataset.from_dict(rows)
    loss, label = _loss(model, config, with_negatives)
    steps_per_epoch = max(1, -(-len(dataset) // config.batch_size))
    args = _training_arguments(
        SentenceTransformerTrainingArguments, checkpoints, config, epochs, steps_per_epoch, BatchSamplers.NO_DUPLICATES
    )
    callbacks = _callbacks(config.early_stopping_patience if epochs > 1 else 0)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator, callbacks=callbacks
    )
    _quiet_trainer(trainer)
    checkpoint = latest_checkpoint(checkpoints) if resume else None
    history_before = len(getattr(evaluator, "history", []))
    started = time.perf_counter()
    try:
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except HarnessError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if checkpoint is not None:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HarnessError(f"{checkpoint}: cannot resume from this checkpoint ({first[:120]}); remove it and try again") from None
        raise
    seconds = time.perf_counter() - started
    timer = callbacks[0]
    eval_seconds = sum(h.get("seconds", 0.0) for h in getattr(evaluator, "history", [])[history_before:])
    epochs_done = float(trainer.state.epoch or epochs)
    train_only = max(1e-9, timer.seconds or (output.metrics.get("train_runtime", seconds) - eval_seconds))
    return {
        "loss": label,
        "rows": len(dataset),
        "columns": list(rows),
        "epochs": epochs,
        "epochs_done": round(epochs_done, 3),
        "steps": trainer.state.global_step,
        "batch_size": config.batch_size,
        "batch_sampler": "NO_DUPLICATES",
        "seconds": round(seconds, 1),
        "evaluation_seconds": round(eval_seconds, 1),
        "pairs_per_second": round(len(dataset) * epochs_done / train_only, 3),
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_metric": trainer.state.best_metric,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "log_history": _log_history(trainer),
        "training_seconds": round(train_only, 1),
    }


def _best_validation(record: dict[str, Any], evaluator: Any) -> dict[str, float]:
    """The validation of the checkpoint the trainer loaded at the end (the best epoch)."""
    epochs = [e for e in record["log_history"] if "eval_val_ndcg@10" in e]
    if not epochs:
        return {k: v for k, v in evaluator.history[-1].items() if k.startswith("val_")}
    best = max(epochs, key=lambda e: e["eval_val_ndcg@10"])
    return {k[len("eval_"):]: float(v) for k, v in best.items() if k.startswith("eval_val_")}


def _pair_rows(pairs: list[Pair]) -> dict[str, list[str]]:
    return {"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs]}


def _negative_rows(examples: list[Any], num_negatives: int, loss: str) -> dict[str, list[str]]:
    if loss == "triplet":
        rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
        for e in examples:
            for negative in e.negatives:
                rows["anchor"].append(e.query)
                rows["positive"].append(e.positive)
                rows["negative"].append(negative)
        return rows
    full = [e for e in examples if len(e.negatives) >= num_negatives]
    rows = {"anchor": [e.query for e in full], "positive": [e.positive for e in full]}
    for i in range(num_negatives):
        rows[f"negative_{i + 1}"] = [e.negatives[i] for e in full]
    return rows


# ------------------------------------------------------------------ bi-encoder


def load_training_data(dataset: Dataset, config: FinetuneConfig, pairs_file: str | Path | None = None,
                       llm: dict[str, Any] | None = None) -> TrainingData:
    pairs = None
    if pairs_file is not None:
        pairs = read_pairs(pairs_file, dataset)
    elif config.synthetic:
        pairs = synthetic_pairs(dataset, config.synthetic, seed=config.seed, max_pairs=config.max_pairs, **(llm or {}))
    return training_data(
        dataset,
        train_split=config.train_split,
        validation_split=config.validation_split,
        validation_share=config.validation_share,
        seed=config.seed,
        min_grade=config.min_grade,
        pairs=pairs,
        max_pairs=config.max_pairs,
    )


def _run_key(kind: str, base: str, data: TrainingData, config: FinetuneConfig) -> str:
    blob = json.dumps([kind, base, data.hash, config.as_dict()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _known_positives(dataset: Dataset, splits: list[str]) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {}
    for name in splits:
        if name in dataset.available_splits() and name != "test":
            for qid, rels in dataset.split(name).qrels.items():
                known.setdefault(qid, set()).update(d for d, g in rels.items() if g > 0)
    return known


def finetune(
    data: str | Path | Dataset,
    base: str = "default",
    out: str | Path = "out/model",
    config: FinetuneConfig | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    pairs_file: str | Path | None = None,
    llm: dict[str, Any] | None = None,
    log: Any = None,
) -> FinetuneResult:
    """Fine-tune a sentence-transformers model; returns the output folder and its card.

    ``log`` (a callable taking one string) receives progress lines.
    """
    from harness.adapters import default_cache_dir
    from harness.adapters.models import display_name, resolve_model_name
    from harness.train.evaluators import make_retrieval_evaluator, validation_corpus
    from harness.train.mining import MiningConfig, mine, read_mined, write_mined

    say = log or (lambda message: None)
    config = config or FinetuneConfig()
    config.validate()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    training = load_training_data(dataset, config, pairs_file, llm)
    base_path = resolve_model_name(base)
    _seed(config.seed)
    model = _load_bi_encoder(base, config.max_seq_length)  # a missing base fails before any folder is made
    run_key = _run_key("bi-encoder", base_path, training, config)
    work, state = _prepare_dirs(out, resume, run_key)
    started = time.perf_counter()
    try:
        write_pairs(work / "pairs.jsonl", training.pairs)
        corpus, corpus_note = validation_corpus(
            dataset, training.validation_queries, training.validation_qrels, config.validation_corpus_max, config.seed, cache
        )
        evaluator = make_retrieval_evaluator(training.validation_queries, training.validation_qrels, corpus)
        stages = state["stages"]
        if "before" not in stages:
            say(f"validating the base model on {len(training.validation_qrels)} queries, {corpus_note}")
            stages["before"] = evaluator(model, epoch=0, steps=0)
            write_json(work / STATE_JSON, state, default=str)
        before = stages["before"]
        say(f"base model: val ndcg@10 {before['val_ndcg@10']:.4f}")
        passes: dict[str, Any] = stages.setdefault("passes", {})
        mining_stats: dict[str, Any] | None = stages.get("mining")
        # ---------------------------------------------------------------- pass 1
        if config.passes in ("two", "in-batch"):
            pass1_model = work / "pass1" / "model"
            if "pass1" in passes and pass1_model.is_dir():
                say("pass 1 already done: loading its model")
                model = _load_bi_encoder(str(pass1_model), None)
            else:
                say(f"pass 1: {len(training.pairs)} pairs, in-batch negatives, {config.epochs} epoch(s)")
                record = train_pass(model, _pair_rows(training.pairs), config, evaluator, work / "pass1" / "checkpoints",
                                    config.epochs, with_negatives=False, resume=resume)
                record["validation"] = _best_validation(record, evaluator)
                model.save(str(pass1_model), create_model_card=False)
                passes["pass1"] = record
                write_json(work / STATE_JSON, state, default=str)
                say(f"pass 1 done in {record['seconds']:.0f} s: val ndcg@10 {record['validation']['val_ndcg@10']:.4f}")
        # ---------------------------------------------------------------- pass 2
        if config.passes in ("two", "hard-negatives"):
            mined_file = work / "pass2" / "mined.jsonl"
            mining_config = MiningConfig(
                range_min=config.range_min, range_max=config.range_max, relative_margin=config.relative_margin,
                num_negatives=config.num_negatives, cross_encoder=config.mining_cross_encoder,
            )
            if mining_stats is not None and mined_file.is_file():
                examples = read_mined(mined_file, dataset)
            else:
                miner = "pass-1 model" if config.passes == "two" else "base model"
                say(f"mining {config.num_negatives} hard negative(s) per pair with the {miner}")
                _forget_fingerprint(model)
                mined = mine(training.pairs, dataset, model, mining_config, cache_dir=cache, seed=config.seed,
                             extra_positives=_known_positives(dataset, [config.train_split, config.validation_split]))
                mined.stats["mined_with"] = miner
                write_mined(mined_file, mined)
                examples = mined.examples
                mining_stats = stages["mining"] = mined.stats
                write_json(work / STATE_JSON, state, default=str)
                removed = mined.stats["removed_by_margin"]
                say(f"mined {mined.stats['negatives']} negatives in {mined.stats['seconds']:.0f} s; "
                    f"the margin removed {removed['candidates']} candidates ({removed['share']:.1%})")
            rows = {"anchor": []}
            if "pass2" not in passes:
                rows = _negative_rows(examples, config.num_negatives, config.loss)
                if not rows["anchor"] and config.passes == "hard-negatives":
                    raise HarnessError("mining found no usable hard negatives; lower --relative-margin or raise --range-max")
            if "pass2" not in passes and not rows["anchor"]:
                say("mining found no usable hard negatives: pass 2 skipped, the pass-1 model is kept")
                stages["pass2_skipped"] = "no usable hard negatives"
            elif "pass2" not in passes:
                pass2_epochs = config.pass2_epochs or config.epochs
                say(f"pass 2: {len(rows['anchor'])} rows with hard negatives, {pass2_epochs} epoch(s)")
                record = train_pass(model, rows, config, evaluator, work / "pass2" / "checkpoints", pass2_epochs,
                                    with_negatives=True, resume=resume and (work / "pass2" / "checkpoints").is_dir())
                record["validation"] = _best_validation(record, evaluator)
                model.save(str(work / "pass2" / "model"), create_model_card=False)
                passes["pass2"] = record
                write_json(work / STATE_JSON, state, default=str)
                say(f"pass 2 done in {record['seconds']:.0f} s: val ndcg@10 {record['validation']['val_ndcg@10']:.4f}")
            else:
                model = _load_bi_encoder(str(work / "pass2" / "model"), None) if (work / "pass2" / "model").is_dir() else model
        # ---------------------------------------------------------------- choose and write
        if not passes:
            raise HarnessError("no training pass ran")
        chosen = "pass2" if "pass2" in passes else "pass1"
        if chosen == "pass2" and "pass1" in passes:
            if passes["pass2"]["validation"]["val_ndcg@10"] < passes["pass1"]["validation"]["val_ndcg@10"]:
                chosen = "pass1"
                say("pass 2 did not improve validation: keeping the pass-1 model")
                model = _load_bi_encoder(str(work / "pass1" / "model"), None)
        after = passes[chosen]["validation"]
        final = work / "final"
        if final.exists():
            shutil.rmtree(final)
        model.save(str(final), create_model_card=False)
        card = {
            "kind": "bi-encoder",
            "base_model": display_name(base),
            "base_model_path": base_path,
            "output": str(out),
            "fingerprint": _model_fingerprint(model),
            "dataset": {"name": dataset.name, "path": str(dataset.path), "hash": dataset.hash},
            "training_data": {**training.description, "file": "pairs.jsonl"},
            "parameters": config.as_dict(),
            "seed": config.seed,
            "passes": {name: {k: v for k, v in rec.items() if k not in ("log_history",) and not k.startswith("_")}
                       for name, rec in passes.items()},
            "chosen": chosen,
            "mining": mining_stats,
            "validation": {"queries": len(training.validation_qrels), "corpus": corpus_note,
                           "before": before, "after": after, "history": evaluator.history},
            "seconds": round(time.perf_counter() - started, 1),
        }
        from harness import provenance

        card["provenance"] = provenance.collect(seed=config.seed)
        card["notes"] = [stages["pass2_skipped"]] if stages.get("pass2_skipped") else []
        if config.keep_pass1 and chosen == "pass2" and (work / "pass1" / "model").is_dir():
            shutil.move(str(work / "pass1" / "model"), str(final / "pass1_model"))
            card["notes"].append("the pass-1 model is kept in pass1_model/ (dense:OUT/pass1_model)")
        _write_outputs(final, work, card, passes)
        os.replace(final, out)
        shutil.rmtree(work, ignore_errors=True)
        say(f"wrote {out}")
        return FinetuneResult(path=out, card=card)
    except KeyboardInterrupt:
        raise HarnessError(f"interrupted: checkpoints kept in {work}; run the same command with --resume to continue") from None


def _write_outputs(final: Path, work: Path, card: dict[str, Any], passes: dict[str, Any]) -> None:
    log = {
        "schema_version": 1,
        "kind": "training-log",
        "passes": {
            name: {
                "loss": rec["loss"],
                "loss_curve": [
                    {"step": e["step"], "epoch": e.get("epoch"), "loss": e["loss"], "learning_rate": e.get("learning_rate")}
                    for e in rec["log_history"] if "loss" in e
                ],
                "validation": [
                    {k: v for k, v in e.items() if k.startswith("eval_") or k in ("step", "epoch")}
                    for e in rec["log_history"] if any(k.startswith("eval_val") for k in e)
                ],
                "summary": next((e for e in rec["log_history"] if "train_runtime" in e), {}),
            }
            for name, rec in passes.items()
        },
        "validation_history": card["validation"].get("history", []),
    }
    write_json(final / LOG_JSON, log, default=str)
    write_json(final / CARD_JSON, card, default=str)
    if (work / "pairs.jsonl").is_file():
        shutil.copy(work / "pairs.jsonl", final / "training_pairs.jsonl")
    (final / "README.md").write_text(render_card(card), encoding="utf-8")


def render_card(card: dict[str, Any]) -> str:
    """The model card as Markdown (the JSON twin is ``training_card.json``)."""
    validation = card["validation"]
    metrics = sorted(set(validation["before"]) | set(validation["after"]))
    lines = [
        f"# Fine-tuned {card['kind']}: {Path(card['output']).name}",
        "",
        f"- base model: `{card['base_model']}` ({card['base_model_path']})",
    ]
    if card.get("base_note"):
        lines.append(f"- **{card['base_note']}**")
    data = card["training_data"]
    lines += [
        f"- dataset: `{card['dataset']['name']}` (hash `{card['dataset']['hash'][:16]}`), training data: {data.get('source')}, "
        f"{data.get('pairs')} pairs from {data.get('queries')} queries, pairs hash `{data.get('pairs_hash', '')[:16]}`",
        f"- validation: {data.get('validation')}, {validation['queries']} queries over {validation['corpus']}; the test split was never read",
        f"- seed: {card['seed']}; chosen model: {card.get('chosen', 'final')}; fingerprint `{card['fingerprint']}`",
        f"- total time: {card['seconds']} s",
        "",
        "## Validation (harness metrics)",
        "",
        "| metric | before | after |",
        "|---|---|---|",
    ]
    for metric in metrics:
        b, a = validation["before"].get(metric), validation["after"].get(metric)
        lines.append(f"| {metric} | {b:.4f} | {a:.4f} |" if b is not None and a is not None else f"| {metric} | {b} | {a} |")
    lines += ["", "## Passes", ""]
    for name, rec in card.get("passes", {}).items():
        lines.append(
            f"- {name}: {rec['loss']}, {rec['rows']} rows, {rec['epochs_done']} of {rec['epochs']} epoch(s), {rec['steps']} steps, "
            f"{rec['seconds']} s ({rec['pairs_per_second']} pairs/s), best checkpoint {rec.get('best_checkpoint')}"
        )
    mining = card.get("mining")
    if mining:
        removed = mining["removed_by_margin"]
        lines += [
            "",
            "## Hard-negative mining",
            "",
            f"- mined with: {mining.get('mined_with', '?')}; parameters: {mining['config']}",
            f"- {mining['negatives']} negatives for {mining['pairs_with_negatives']} of {mining['pairs']} pairs; "
            f"the relative margin removed {removed['candidates']} candidates ({removed['share']:.2%}); "
            f"known positives dropped after mining: {mining['dropped_known_positives_after_mining']}",
        ]
        for kind, dist in mining["scores"].items():
            if dist.get("count"):
                lines.append(f"- {kind} scores: mean {dist['mean']}, median {dist['median']}, p25 {dist['p25']}, p75 {dist['p75']}")
    lines += ["", "## Parameters", "", "```json", json.dumps(card["parameters"], indent=1), "```", ""]
    lines += ["Training log with loss curves: `training_log.json`; pairs: `training_pairs.jsonl`.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ cross-encoder


@dataclass
class CrossEncoderConfig:
    epochs: int = 1
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    batch_size: int = 32
    num_negatives: int = 3
    max_length: int = 256
    seed: int = 42
    range_min: int = 0
    range_max: int = 50
    relative_margin: float | None = 0.05
    validation_queries: int = 50
    validation_candidates: int = 20
    early_stopping_patience: int = 1
    save_total_limit: int = 3
    train_split: str = "train"
    validation_split: str = "dev"
    validation_share: float = 0.1
    min_grade: int = 1
    max_pairs: int | None = None
    synthetic: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_cross_encoder_folder(path: str) -> bool | None:
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except ValueError:
        return None
    return any("SequenceClassification" in a for a in architectures)


def finetune_cross_encoder(
    data: str | Path | Dataset,
    out: str | Path,
    base: str | None = None,
    negatives_model: str = "default",
    config: CrossEncoderConfig | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    pairs_file: str | Path | None = None,
    log: Any = None,
) -> FinetuneResult:
    """Train a reranker with CrossEncoderTrainer and BCE on pairs plus mined negatives.

    ``base`` is any cross-encoder folder or hub name; without one, the reranker starts from
    the MiniLM bi-encoder folder with a new, untrained one-logit head (no pretrained
    cross-encoder is available offline), and the card says which.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from harness.adapters import default_cache_dir
    from harness.adapters.models import _load, display_name, resolve_model_name
    from harness.train.evaluators import bm25_neighbours, make_rerank_evaluator
    from harness.train.mining import MiningConfig, mine

    say = log or (lambda message: None)
    config = config or CrossEncoderConfig()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    ft_config = FinetuneConfig(
        train_split=config.train_split, validation_split=config.validation_split, validation_share=config.validation_share,
        seed=config.seed, min_grade=config.min_grade, max_pairs=config.max_pairs, synthetic=config.synthetic,
    )
    training = load_training_data(dataset, ft_config, pairs_file)
    start_from = resolve_model_name(base) if base else resolve_model_name("default")
    kind = _is_cross_encoder_folder(start_from)
    if base and kind is not False:
        base_note = f"started from the cross-encoder {display_name(base)}"
    else:
        base_note = (
            f"started from the bi-encoder {display_name(base or 'default')} with a new, untrained one-logit head: "
            "no pretrained cross-encoder was available"
        )
    _seed(config.seed)
    model = _load(CrossEncoder, start_from, "cross-encoder", num_labels=1, max_length=config.max_length)
    run_key = _run_key("cross-encoder", start_from, training, FinetuneConfig(**{"seed": config.seed})) + hashlib.sha256(
        json.dumps(config.as_dict(), sort_keys=True).encode()).hexdigest()[:8]
    work, state = _prepare_dirs(out, resume, run_key)
    started = time.perf_counter()
    try:
        write_pairs(work / "pairs.jsonl", training.pairs)
        stages = state["stages"]
        if "mining" not in stages:
            say(f"mining {config.num_negatives} negatives per pair with {display_name(negatives_model)}")
            miner = _load_bi_encoder(negatives_model, None)
            mined = mine(training.pairs, dataset, miner, MiningConfig(range_min=config.range_min, range_max=config.range_max,
                         relative_margin=config.relative_margin, num_negatives=config.num_negatives), cache_dir=cache,
                         seed=config.seed, extra_positives=_known_positives(dataset, [config.train_split, config.validation_split]))
            mined.stats["mined_with"] = display_name(negatives_model)
            stages["mining"] = mined.stats
            stages["examples"] = [[e.query, e.positive, e.negatives] for e in mined.examples]
            write_json(work / STATE_JSON, state, default=str)
            del miner
        mining_stats = stages["mining"]
        anchors, docs, labels = [], [], []
        for query, positive, negatives in stages["examples"]:
            anchors.append(query), docs.append(positive), labels.append(1.0)
            for negative in negatives:
                anchors.append(query), docs.append(negative), labels.append(0.0)
        from datasets import Dataset as HFDataset

        train_dataset = HFDataset.from_dict({"query": anchors, "document": docs, "label": labels})
        # validation: rerank BM25's top candidates of (at most) N validation queries
        val_ids = sorted(training.validation_qrels)[: config.validation_queries]
        val_queries = {q: training.validation_queries[q] for q in val_ids}
        candidates = bm25_neighbours(dataset, val_queries, config.validation_candidates, cache)
        candidates = {q: c for q, c in candidates.items() if c}
        if not candidates:
            raise HarnessError("no validation query has a first-stage candidate to rerank")
        texts = {d: dataset.corpus[d].content for c in candidates.values() for d in c}
        evaluator = make_rerank_evaluator(val_queries, training.validation_qrels, candidates, texts)
        if "before" not in stages:
            stages["before"] = evaluator(model, epoch=0, steps=0)
            write_json(work / STATE_JSON, state, default=str)
        before = stages["before"]
        say(f"reranker before training: val ndcg@10 {before['val_ndcg@10']:.4f} over BM25 top {config.validation_candidates}")
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(config.num_negatives)))
        steps_per_epoch = max(1, -(-len(train_dataset) // config.batch_size))
        args = _training_arguments(CrossEncoderTrainingArguments, work / "checkpoints",
                                   FinetuneConfig(epochs=config.epochs, learning_rate=config.learning_rate,
                                                  warmup_ratio=config.warmup_ratio, batch_size=config.batch_size,
                                                  seed=config.seed, save_total_limit=config.save_total_limit),
                                   config.epochs, steps_per_epoch, None)
        callbacks = _callbacks(config.early_stopping_patience if config.epochs > 1 else 0)
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
                                      callbacks=callbacks)
        _quiet_trainer(trainer)
        checkpoint = latest_checkpoint(work / "checkpoints") if resume else None
        say(f"training the reranker on {len(train_dataset)} labelled pairs")
        t0 = time.perf_counter()
        try:
            output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except (HarnessError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if checkpoint is not None:
                raise HarnessError(f"{checkpoint}: cannot resume from this checkpoint ({str(exc).splitlines()[0][:120]})") from None
            raise
        seconds = time.perf_counter() - t0
        after = evaluator(model, epoch=-1, steps=-1)
        record = {
            "loss": f"BinaryCrossEntropyLoss(pos_weight={config.num_negatives})",
            "rows": len(train_dataset), "epochs": config.epochs, "epochs_done": float(trainer.state.epoch or config.epochs),
            "steps": trainer.state.global_step, "seconds": round(seconds, 1),
            "pairs_per_second": round(len(train_dataset) * float(trainer.state.epoch or 1) / max(1e-9, output.metrics.get("train_runtime", seconds)), 3),
            "best_checkpoint": trainer.state.best_model_checkpoint, "log_history": _log_history(trainer),
        }
        final = work / "final"
        if final.exists():
            shutil.rmtree(final)
        model.save(str(final))
        card = {
            "kind": "cross-encoder",
            "base_model": display_name(base or "default"),
            "base_model_path": start_from,
            "base_note": base_note,
            "negatives_model": display_name(negatives_model),
            "output": str(out),
            "fingerprint": _model_fingerprint(model),
            "dataset": {"name": dataset.name, "path": str(dataset.path), "hash": dataset.hash},
            "training_data": {**training.description, "file": "pairs.jsonl"},
            "parameters": config.as_dict(),
            "seed": config.seed,
            "passes": {"reranker": {k: v for k, v in record.items() if k != "log_history"}},
            "chosen": "reranker",
            "mining": mining_stats,
            "validation": {"queries": len(candidates), "corpus": f"BM25 top {config.validation_candidates} per query",
                           "before": before, "after": after, "history": evaluator.history},
            "seconds": round(time.perf_counter() - started, 1),
        }
        from harness import provenance

        card["provenance"] = provenance.collect(seed=config.seed)
        _write_outputs(final, work, card, {"reranker": record})
        os.replace(final, out)
        shutil.rmtree(work, ignore_errors=True)
        say(f"wrote {out}")
        return FinetuneResult(path=out, card=card)
    except KeyboardInterrupt:
        raise HarnessError(f"interrupted: checkpoints kept in {work}; run the same command with --resume to continue") from None
