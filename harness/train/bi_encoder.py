"""Fine-tuning a bi-encoder: two passes by default (``harness finetune``).

Pass 1 trains on (query, positive) pairs with in-batch negatives; pass 2 mines hard
negatives with the pass-1 model (``harness.train.mining``) and trains on (query, positive,
negative...) from the pass-1 model. If pass 2 does not improve validation, the pass-1
model is kept, and the card says so. Each epoch is validated with the harness's metrics
on the validation queries (dev split or a seeded share of train; never test), training
stops early when validation stops improving, and the best epoch's checkpoint is the
pass's model. Everything is seeded and the seed recorded. The run happens in a partial
folder that can be resumed (``harness.train.checkpoints``); the output folder is a
sentence-transformers model with its card (``harness.train.cards``).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.data import Dataset
from harness.errors import HarnessError
from harness.train import trainer as setup
from harness.train.cards import FinetuneResult, write_card_and_log
from harness.train.checkpoints import (
    final_dir, keep_partial_on_interrupt, prepare_work_dir, publish, run_key, save_state, train_resumably,
)
from harness.train.losses import BI_ENCODER_LOSSES, NEEDS_NEGATIVES, bi_encoder_loss
from harness.train.pairs import Pair, TrainingData, known_positives, write_pairs

PASSES = ("two", "in-batch", "hard-negatives")
# The learning rate when none is given, scaled to a pass's length: the field's 2e-5 suits
# passes of many hundreds of steps; a small training set makes a few dozen, at which 2e-5
# barely moves the model (SciFact, 26 steps: validation 0.738 at 2e-5, 0.785 at 5e-5; the
# demo, 31 steps: pass-1 validation 0.591 at 2e-5, 0.736 at 1e-4). Below FULL_STEPS the rate
# grows as FULL_STEPS / steps (lr x steps kept), up to MAX_LEARNING_RATE.
# docs/finetuning.md ("Learning rate") has the measurements.
BASE_LEARNING_RATE = 2e-5
FULL_STEPS = 500
MAX_LEARNING_RATE = 1e-4


def default_learning_rate(steps: int) -> float:
    """The peak learning rate of a pass of ``steps`` optimiser steps."""
    return min(MAX_LEARNING_RATE, BASE_LEARNING_RATE * max(1.0, FULL_STEPS / max(1, steps)))


@dataclass
class FinetuneConfig:
    passes: str = "two"
    loss: str = "mnrl"
    matryoshka_dims: tuple[int, ...] | None = None
    epochs: int = 1
    pass2_epochs: int | None = None
    learning_rate: float | None = None  # None: default_learning_rate of each pass's steps
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
        if self.loss not in BI_ENCODER_LOSSES:
            raise HarnessError(f"unknown --loss {self.loss!r} (known: {', '.join(BI_ENCODER_LOSSES)})")
        if self.loss in NEEDS_NEGATIVES and self.passes == "in-batch":
            raise HarnessError("TripletLoss needs a negative per pair: use --passes two or hard-negatives with --loss triplet")
        if not 1 <= self.epochs <= 10:
            raise HarnessError(f"--epochs must be between 1 and 10, got {self.epochs}")
        if self.batch_size < 2:
            raise HarnessError("--batch-size must be at least 2 (in-batch negatives need company)")
        if not 0 <= self.warmup_ratio < 1:
            raise HarnessError(f"--warmup must be in [0, 1), got {self.warmup_ratio}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise HarnessError("--lr must be positive")
        if self.matryoshka_dims and any(d < 1 for d in self.matryoshka_dims):
            raise HarnessError("Matryoshka dimensions must be positive")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["matryoshka_dims"] = list(self.matryoshka_dims) if self.matryoshka_dims else None
        return data


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

    setup.seed_everything(config.seed)
    dataset = HFDataset.from_dict(rows)
    loss, label = bi_encoder_loss(model, config, with_negatives)
    steps = math.ceil(len(dataset) / config.batch_size) * epochs
    if config.learning_rate is None:
        learning_rate = default_learning_rate(steps)
        why = f"default for {steps} steps: {BASE_LEARNING_RATE:g} x max(1, {FULL_STEPS} / steps), at most {MAX_LEARNING_RATE:g}"
    else:
        learning_rate, why = config.learning_rate, "given (--lr)"
    args = setup.training_arguments(
        SentenceTransformerTrainingArguments, checkpoints, epochs=epochs, batch_size=config.batch_size,
        learning_rate=learning_rate, warmup_ratio=config.warmup_ratio, seed=config.seed,
        rows=len(dataset), batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    callbacks = setup.callbacks(epochs, config.early_stopping_patience, config.save_total_limit)
    trainer = setup.quiet(SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator, callbacks=callbacks
    ))
    history_before = len(getattr(evaluator, "history", []))
    started = time.perf_counter()
    output, checkpoint = train_resumably(trainer, checkpoints, resume)
    seconds = time.perf_counter() - started
    timer = callbacks[0]
    eval_seconds = sum(h.get("seconds", 0.0) for h in getattr(evaluator, "history", [])[history_before:])
    epochs_done = float(trainer.state.epoch or epochs)
    train_only = max(1e-9, timer.seconds or (output.metrics.get("train_runtime", seconds) - eval_seconds))
    return {
        "loss": label,
        "learning_rate": learning_rate,
        "learning_rate_why": why,
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
        "kept_checkpoints": setup.checkpoint_scores(checkpoints, trainer.state.log_history),
        "resumed_from": str(checkpoint) if checkpoint else None,
        "device": setup.trained_on(trainer),
        "log_history": setup.log_history(trainer),
        "training_seconds": round(train_only, 1),
    }


def pair_rows(pairs: list[Pair]) -> dict[str, list[str]]:
    return {"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs]}


def negative_rows(examples: list[Any], num_negatives: int, loss: str) -> dict[str, list[str]]:
    """Rows with hard negatives: one (anchor, positive, negative) a negative for a loss that
    takes one, else (anchor, positive, negative_1..N) for the pairs with N negatives."""
    if loss in NEEDS_NEGATIVES:
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


# ------------------------------------------------------------------ the two passes


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
    export: Any = None,
) -> FinetuneResult:
    """Fine-tune a sentence-transformers model; returns the output folder and its card.

    ``log`` (a callable taking one string) receives progress lines; ``export`` (an
    :class:`~harness.adapters.backends.EncodingBackend`) ends the run by exporting the model
    to it, validated (``harness.train.export``).
    """
    from harness import provenance
    from harness.adapters.models import display_name, load_trainable_sentence_transformer, resolve_model_name
    from harness.train.evaluators import make_retrieval_evaluator, validation_corpus

    say = log or (lambda message: None)
    config = config or FinetuneConfig()
    out = Path(out)
    cache, dataset, training = setup.start(config, data, cache_dir, pairs_file, llm)
    base_path = resolve_model_name(base)
    setup.seed_everything(config.seed)
    model = load_trainable_sentence_transformer(base, config.max_seq_length)  # a missing base fails before any folder is made
    work, state = prepare_work_dir(out, resume, run_key("bi-encoder", base_path, training.hash, config.as_dict()))
    started = time.perf_counter()
    with keep_partial_on_interrupt(work):
        write_pairs(work / "pairs.jsonl", training.pairs)
        corpus, corpus_note = validation_corpus(
            dataset, training.validation_queries, training.validation_qrels, config.validation_corpus_max, config.seed, cache
        )
        evaluator = make_retrieval_evaluator(training.validation_queries, training.validation_qrels, corpus, cache_dir=cache)
        stages = state["stages"]
        if "before" not in stages:
            say(f"validating the base model on {len(training.validation_qrels)} queries, {corpus_note}")
            stages["before"] = evaluator(model, epoch=0, steps=0)
            save_state(work, state)
        before = stages["before"]
        say(f"base model: val ndcg@10 {before['val_ndcg@10']:.4f}")
        passes: dict[str, Any] = stages.setdefault("passes", {})
        if config.passes in ("two", "in-batch"):
            model = _in_batch_pass(model, training, config, evaluator, work, state, resume, say)
        if config.passes in ("two", "hard-negatives"):
            model = _hard_negative_pass(model, dataset, training, config, evaluator, work, state, resume, cache, say)
        if not passes:
            raise HarnessError("no training pass ran")
        chosen = "pass2" if "pass2" in passes else "pass1"
        if chosen == "pass2" and "pass1" in passes:
            if passes["pass2"]["validation"]["val_ndcg@10"] < passes["pass1"]["validation"]["val_ndcg@10"]:
                chosen = "pass1"
                say("pass 2 did not improve validation: keeping the pass-1 model")
                model = load_trainable_sentence_transformer(str(work / "pass1" / "model"))
        final = final_dir(work)
        model.save(str(final), create_model_card=False)
        fingerprint = setup.model_fingerprint(model)
        card = {
            "kind": "bi-encoder",
            "base_model": display_name(base),
            "base_model_path": base_path,
            "output": str(out),
            "fingerprint": fingerprint,
            "dataset": {"name": dataset.name, "path": str(dataset.path), "hash": dataset.hash},
            "training_data": {**training.description, "file": "pairs.jsonl"},
            "parameters": config.as_dict(),
            "seed": config.seed,
            "passes": {name: {k: v for k, v in rec.items() if k != "log_history"} for name, rec in passes.items()},
            "chosen": chosen,
            "mining": stages.get("mining"),
            "validation": {"queries": len(training.validation_qrels), "corpus": corpus_note,
                           "before": before, "after": passes[chosen]["validation"], "history": evaluator.history},
            "seconds": round(time.perf_counter() - started, 1),
            "provenance": provenance.collect(seed=config.seed),
            "notes": [stages["pass2_skipped"]] if stages.get("pass2_skipped") else [],
        }
        if export is not None:
            from harness.train.export import export_trained

            say(f"exporting to {export.name}" + (f" {export.quantisation}" if export.quantisation else "")
                + " and validating the export")
            card["export"] = export_trained(
                final, model, fingerprint, export, dataset,
                make_retrieval_evaluator(training.validation_queries, training.validation_qrels, corpus),
                passes[chosen]["validation"], cache)
        if config.keep_pass1 and chosen == "pass2" and (work / "pass1" / "model").is_dir():
            shutil.move(str(work / "pass1" / "model"), str(final / "pass1_model"))
            card["notes"].append("the pass-1 model is kept in pass1_model/ (dense:OUT/pass1_model)")
        write_card_and_log(final, work, card, passes)
        publish(final, out, work)
        say(f"wrote {out}")
        return FinetuneResult(path=out, card=card)


def _in_batch_pass(model: Any, training: TrainingData, config: FinetuneConfig, evaluator: Any, work: Path,
                   state: dict[str, Any], resume: bool, say: Any) -> Any:
    """Pass 1: (query, positive) pairs, the other positives of the batch as negatives."""
    from harness.adapters.models import load_trainable_sentence_transformer

    if "pass1" in state["stages"]["passes"] and (work / "pass1" / "model").is_dir():
        say("pass 1 already done: loading its model")
        return load_trainable_sentence_transformer(str(work / "pass1" / "model"))
    say(f"pass 1: {len(training.pairs)} pairs, in-batch negatives, {config.epochs} epoch(s)")
    record = train_pass(model, pair_rows(training.pairs), config, evaluator, work / "pass1" / "checkpoints", config.epochs,
                        with_negatives=False, resume=resume)
    _keep_pass("pass1", record, model, evaluator, work, state, say)
    return model


def _hard_negative_pass(model: Any, dataset: Dataset, training: TrainingData, config: FinetuneConfig, evaluator: Any,
                        work: Path, state: dict[str, Any], resume: bool, cache: Path, say: Any) -> Any:
    """Pass 2: negatives mined by ``model`` (the pass-1 model, or the base for a single pass),
    or, for a ``harness ab pairs`` file, the file's own skip-above negatives (the documents the
    model in production ranked above the click), without mining."""
    from harness.adapters.models import load_trainable_sentence_transformer
    from harness.train.mining import MiningConfig, mine, read_mined, write_mined

    stages = state["stages"]
    if "pass2" in stages["passes"]:
        done = work / "pass2" / "model"
        return load_trainable_sentence_transformer(str(done)) if done.is_dir() else model
    mined_file = work / "pass2" / "mined.jsonl"
    if training.negatives is not None:
        examples = training.negatives
        found = training.description["negatives"]
        say(f"hard negatives from the pairs file: {found['rows_with_negatives']} of "
            f"{found['rows_with_negatives'] + found['rows_without_negatives']} rows have one (no mining)")
    elif stages.get("mining") is not None and mined_file.is_file():
        examples = read_mined(mined_file, dataset)
    else:
        miner = "pass-1 model" if config.passes == "two" else "base model"
        say(f"mining {config.num_negatives} hard negative(s) per pair with the {miner}")
        setup.forget_fingerprint(model)
        mining_config = MiningConfig(
            range_min=config.range_min, range_max=config.range_max, relative_margin=config.relative_margin,
            num_negatives=config.num_negatives, cross_encoder=config.mining_cross_encoder,
        )
        mined = mine(training.pairs, dataset, model, mining_config, cache_dir=cache, seed=config.seed,
                     extra_positives=known_positives(dataset, [config.train_split, config.validation_split]))
        mined.stats["mined_with"] = miner
        write_mined(mined_file, mined)
        examples = mined.examples
        stages["mining"] = mined.stats
        save_state(work, state)
        removed = mined.stats["removed_by_margin"]
        say(f"mined {mined.stats['negatives']} negatives in {mined.stats['seconds']:.0f} s; "
            f"the margin removed {removed['candidates']} candidates ({removed['share']:.1%})")
    rows = negative_rows(examples, config.num_negatives, config.loss)
    if not rows["anchor"]:
        if config.passes == "hard-negatives":
            if training.negatives is not None:
                raise HarnessError(f"no row of the pairs file has {config.num_negatives} hard negative(s): "
                                   "lower --num-negatives or use --passes in-batch")
            raise HarnessError("mining found no usable hard negatives; lower --relative-margin or raise --range-max")
        say("mining found no usable hard negatives: pass 2 skipped, the pass-1 model is kept")
        stages["pass2_skipped"] = "no usable hard negatives"
        return model
    epochs = config.pass2_epochs or config.epochs
    say(f"pass 2: {len(rows['anchor'])} rows with hard negatives, {epochs} epoch(s)")
    checkpoints = work / "pass2" / "checkpoints"
    record = train_pass(model, rows, config, evaluator, checkpoints, epochs, with_negatives=True,
                        resume=resume and checkpoints.is_dir())
    _keep_pass("pass2", record, model, evaluator, work, state, say)
    return model


def _keep_pass(name: str, record: dict[str, Any], model: Any, evaluator: Any, work: Path, state: dict[str, Any],
               say: Any) -> None:
    """Record a finished pass (validated at its best epoch) and save its model, so a resumed
    run starts after it."""
    record["validation"] = setup.best_validation(record, evaluator)
    model.save(str(work / name / "model"), create_model_card=False)
    state["stages"]["passes"][name] = record
    save_state(work, state)
    say(f"pass {name[-1]} done in {record['seconds']:.0f} s: val ndcg@10 {record['validation']['val_ndcg@10']:.4f}")
