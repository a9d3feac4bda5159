"""Fine-tuning a cross-encoder reranker (``harness finetune --cross-encoder``).

The reranker learns to reorder one first stage: dense retrieval with ``negatives_model``
(MiniLM by default, the demo's ``dense``). Its negatives are mined from that first stage's
top ``first_stage_top`` (``harness.train.mining``), so it trains on the confusions it will
have to fix; it trains with sentence-transformers' CrossEncoderTrainer, LambdaLoss on
each query's list (its positive and its negatives) or BinaryCrossEntropyLoss on labelled
(query, document) pairs, and is validated several times an epoch by reranking that same
top N of the validation queries, in the order the arm will serve (the reranker's alone, or
fused with the first stage's), beside the first stage's own figure on them. The same partial folder, resume and card as the bi-encoder
(``harness.train.checkpoints``, ``harness.train.cards``).
"""

from __future__ import annotations

import json
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
from harness.train.losses import CROSS_ENCODER_LOSSES
from harness.train.pairs import known_positives, write_pairs


# The learning rate when none is given: a new one-logit head on a bi-encoder's weights needs
# far larger steps than a pretrained reranker being adapted (docs/finetuning.md, "Reranker
# recipe", has the validation figures that chose them).
NEW_HEAD_LEARNING_RATE = 1e-4
PRETRAINED_LEARNING_RATE = 2e-5
# A batch when none is given: LambdaLoss's rows are lists (a query, its positive and its
# negatives: 5 pairs), BCE's single labelled pairs; both near 40 pairs a step
BATCH_SIZES = {"lambda": 8, "bce": 32}


@dataclass
class CrossEncoderConfig:
    loss: str = "lambda"  # CROSS_ENCODER_LOSSES
    fuse: str = "auto"  # the served order: "rrf" with the first stage, "none", or "auto" (rrf for a new head)
    epochs: int = 1
    learning_rate: float | None = None  # None: NEW_HEAD_LEARNING_RATE or PRETRAINED_LEARNING_RATE
    warmup_ratio: float = 0.1
    batch_size: int | None = None  # None: the loss's (BATCH_SIZES)
    num_negatives: int = 4
    max_length: int = 256
    seed: int = 42
    first_stage_top: int = 20  # the N of rerank(OUT,top=N,first=...): mined from, validated on
    range_min: int = 0
    range_max: int | None = None  # mine up to this first-stage rank; None: first_stage_top
    relative_margin: float | None = None
    validation_queries: int = 100
    evaluations_per_epoch: int = 4
    # a validation scores validation_queries x N pairs: on the demo (100 x 10) 13 s, the cost of
    # 6 training steps of 8 lists, so validations closer than this spend more on choosing a
    # checkpoint than on training one (the demo's 48-step epoch is validated at 24 and 48)
    min_steps_between_validations: int = 20
    early_stopping_patience: int = 2  # validations without a gain
    save_total_limit: int = 3
    train_split: str = "train"
    validation_split: str = "dev"
    validation_share: float = 0.1
    min_grade: int = 1
    max_pairs: int | None = None
    synthetic: str | None = None

    def validate(self) -> None:
        if self.loss not in CROSS_ENCODER_LOSSES:
            raise HarnessError(f"--loss {self.loss!r} is not a reranker loss (known: {', '.join(CROSS_ENCODER_LOSSES)})")
        from harness.adapters.rerank import FUSIONS

        if self.fuse not in ("auto", *FUSIONS):
            raise HarnessError(f"--fuse must be one of auto, {', '.join(FUSIONS)}, got {self.fuse!r}")
        if not 1 <= self.epochs <= 10:
            raise HarnessError(f"--epochs must be between 1 and 10, got {self.epochs}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise HarnessError("--lr must be positive")
        if self.num_negatives < 1:
            raise HarnessError(f"--num-negatives must be at least 1, got {self.num_negatives}")
        if self.first_stage_top < 2:
            raise HarnessError(f"--rerank-top must be at least 2 (a reranker orders candidates), got {self.first_stage_top}")
        if self.mining_depth <= self.range_min + self.num_negatives:
            raise HarnessError(f"mining depth {self.mining_depth} leaves no room for {self.num_negatives} negatives "
                               f"after rank {self.range_min}: raise --rerank-top or --range-max")

    @property
    def mining_depth(self) -> int:
        return self.range_max or self.first_stage_top

    def learning_rate_for(self, new_head: bool) -> tuple[float, str]:
        """The learning rate to train with, and why."""
        if self.learning_rate is not None:
            return self.learning_rate, "given (--lr)"
        if new_head:
            return NEW_HEAD_LEARNING_RATE, "default for a new, untrained head"
        return PRETRAINED_LEARNING_RATE, "default for adapting a pretrained cross-encoder"

    @property
    def batch(self) -> int:
        return self.batch_size or BATCH_SIZES[self.loss]

    def fusion_for(self, new_head: bool) -> tuple[str, str]:
        """The order the reranker arm serves (and validation scores), and why."""
        if self.fuse != "auto":
            return self.fuse, "given (--fuse)"
        if new_head:
            return "rrf", ("default for a new head trained on one domain's pairs: fused with the first stage's order "
                           "(RRF), its evidence adds to the first stage's instead of replacing it")
        return "none", "default for a pretrained cross-encoder: its own order"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_cross_encoder_folder(path: str) -> bool | None:
    """Whether a model folder holds a sequence classifier; None when it cannot tell (a hub name)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except ValueError:
        return None
    return any("SequenceClassification" in a for a in architectures)


def labelled_rows(examples: list[list[Any]]) -> dict[str, list[Any]]:
    """(query, document, label) rows: each positive labelled 1, each of its negatives 0."""
    rows: dict[str, list[Any]] = {"query": [], "document": [], "label": []}
    for query, positive, negatives in examples:
        for document, label in [(positive, 1.0), *((negative, 0.0) for negative in negatives)]:
            rows["query"].append(query)
            rows["document"].append(document)
            rows["label"].append(label)
    return rows


def listwise_rows(examples: list[list[Any]]) -> dict[str, list[Any]]:
    """(query, documents, labels) rows: a query's positive (label 1) then its negatives (0)."""
    rows: dict[str, list[Any]] = {"query": [], "docs": [], "labels": []}
    for query, positive, negatives in examples:
        rows["query"].append(query)
        rows["docs"].append([positive, *negatives])
        rows["labels"].append([1.0] + [0.0] * len(negatives))
    return rows


TRAINING_ROWS = {"lambda": listwise_rows, "bce": labelled_rows}


def rerank_spec(out: Path, top: int, first_stage: str, fuse: str) -> str:
    """The arm that serves this reranker as it was validated."""
    return f"rerank({out},top={top},first={first_stage}" + ("" if fuse == "none" else f",fuse={fuse}") + ")"


def first_stage_spec(negatives_model: str) -> str:
    """The retriever spec of the first stage the reranker learns to reorder."""
    return "dense" if negatives_model == "default" else f"dense:{negatives_model}"


def finetune_cross_encoder(
    data: str | Path | Dataset,
    out: str | Path,
    base: str | None = None,
    negatives_model: str = "default",
    config: CrossEncoderConfig | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    pairs_file: str | Path | None = None,
    llm: dict[str, Any] | None = None,
    log: Any = None,
) -> FinetuneResult:
    """Train a reranker of ``negatives_model``'s dense top ``first_stage_top`` with
    CrossEncoderTrainer and ``config.loss`` on pairs plus negatives mined from that top N.

    ``base`` is any cross-encoder folder or hub name; without one, the reranker starts from
    the MiniLM bi-encoder folder with a new, untrained one-logit head (no pretrained
    cross-encoder is available offline), and the card says which.
    """
    from harness import provenance
    from harness.adapters.models import display_name, load_trainable_cross_encoder, resolve_model_name

    say = log or (lambda message: None)
    config = config or CrossEncoderConfig()
    out = Path(out)
    cache, dataset, training = setup.start(config, data, cache_dir, pairs_file, llm)
    start_from = resolve_model_name(base) if base else resolve_model_name("default")
    new_head = not (base and is_cross_encoder_folder(start_from) is not False)
    if new_head:
        base_note = (
            f"started from the bi-encoder {display_name(base or 'default')} with a new, untrained one-logit head: "
            "no pretrained cross-encoder was available"
        )
    else:
        base_note = f"started from the cross-encoder {display_name(base)}"
    learning_rate, learning_rate_reason = config.learning_rate_for(new_head)
    fuse, fuse_reason = config.fusion_for(new_head)
    first_stage = first_stage_spec(negatives_model)
    setup.seed_everything(config.seed)
    model = load_trainable_cross_encoder(start_from, num_labels=1, max_length=config.max_length)
    work, state = prepare_work_dir(out, resume, run_key("cross-encoder", start_from, training.hash, config.as_dict()))
    started = time.perf_counter()
    with keep_partial_on_interrupt(work):
        write_pairs(work / "pairs.jsonl", training.pairs)
        stages = state["stages"]
        if "mining" not in stages:
            _mine_negatives(dataset, training, config, negatives_model, cache, stages, say)
            save_state(work, state)
        train_dataset = _hf_dataset(TRAINING_ROWS[config.loss](stages["examples"]))
        evaluator, validation = _rerank_evaluator(dataset, training, config, first_stage, fuse, cache)
        if "before" not in stages:
            # a new head scores at random before training: validating it would cost a validation's
            # time (on the demo 17 s) to measure nothing; the first stage's own order is the baseline
            stages["before"] = {} if new_head else evaluator(model, epoch=0, steps=0)
            save_state(work, state)
        before = stages["before"]
        served = "reranked" if fuse == "none" else "reranked and fused with it (RRF)"
        said_before = (f", {before['val_ndcg@10']:.4f} {served} before training" if before
                       else " (a new head: not validated before training)")
        say(f"validation: {first_stage} top {config.first_stage_top} of {validation['queries']} queries, val ndcg@10 "
            f"{validation['first_stage']['val_ndcg@10']:.4f} as ranked{said_before}")
        record = _train(model, train_dataset, config, learning_rate, evaluator, work / "checkpoints", resume, say)
        after = setup.best_validation(record, evaluator)
        final = final_dir(work)
        model.save(str(final))
        card = {
            "kind": "cross-encoder",
            "base_model": display_name(base or "default"),
            "base_model_path": start_from,
            "base_note": base_note,
            "negatives_model": display_name(negatives_model),
            "first_stage": {"spec": first_stage, "top": config.first_stage_top, "fuse": fuse,
                            "rerank_spec": rerank_spec(out, config.first_stage_top, first_stage, fuse)},
            "output": str(out),
            "fingerprint": setup.model_fingerprint(model),
            "dataset": {"name": dataset.name, "path": str(dataset.path), "hash": dataset.hash},
            "training_data": {**training.description, "file": "pairs.jsonl"},
            "parameters": config.as_dict(),
            "choices": {"learning_rate": {"value": learning_rate, "why": learning_rate_reason},
                        "fuse": {"value": fuse, "why": fuse_reason}},
            "seed": config.seed,
            "passes": {"reranker": {k: v for k, v in record.items() if k != "log_history"}},
            "chosen": "reranker",
            "mining": stages["mining"],
            "validation": {**validation, "before": before, "after": after, "history": evaluator.history},
            "seconds": round(time.perf_counter() - started, 1),
            "provenance": provenance.collect(seed=config.seed),
        }
        write_card_and_log(final, work, card, {"reranker": record})
        publish(final, out, work)
        say(f"wrote {out}")
        return FinetuneResult(path=out, card=card)


def _mine_negatives(dataset: Dataset, training: Any, config: CrossEncoderConfig, negatives_model: str, cache: Path,
                    stages: dict[str, Any], say: Any) -> None:
    """Mine ``num_negatives`` a pair from ``negatives_model``'s top ``mining_depth``; the
    statistics and the (query, positive, negatives) examples go into the run's stages."""
    from harness.adapters.models import display_name, load_trainable_sentence_transformer
    from harness.train.mining import MiningConfig, mine

    say(f"mining {config.num_negatives} negatives per pair from the top {config.mining_depth} of {display_name(negatives_model)}")
    miner = load_trainable_sentence_transformer(negatives_model)
    mined = mine(training.pairs, dataset, miner, MiningConfig(range_min=config.range_min, range_max=config.mining_depth,
                 relative_margin=config.relative_margin, num_negatives=config.num_negatives), cache_dir=cache,
                 seed=config.seed, extra_positives=known_positives(dataset, [config.train_split, config.validation_split]))
    mined.stats["mined_with"] = display_name(negatives_model)
    stages["mining"] = mined.stats
    stages["examples"] = [[e.query, e.positive, e.negatives] for e in mined.examples]


def _hf_dataset(rows: dict[str, list[Any]]) -> Any:
    from datasets import Dataset as HFDataset

    return HFDataset.from_dict(rows)


def _rerank_evaluator(dataset: Dataset, training: Any, config: CrossEncoderConfig, first_stage: str, fuse: str,
                      cache: Path) -> tuple[Any, dict[str, Any]]:
    """Validation: rerank the first stage's top ``first_stage_top`` of (at most)
    ``validation_queries`` validation queries, as ``rerank(OUT,top=N,first=...,fuse=...)`` will;
    returns the evaluator and what it validates on, with the first stage's own figures."""
    from harness.train.evaluators import first_stage_top, make_rerank_evaluator, ranking_figures

    val_ids = sorted(training.validation_qrels)[: config.validation_queries]
    val_queries = {q: training.validation_queries[q] for q in val_ids}
    candidates = first_stage_top(dataset, val_queries, first_stage, config.first_stage_top, cache)
    candidates = {q: c for q, c in candidates.items() if c}
    if not candidates:
        raise HarnessError("no validation query has a first-stage candidate to rerank")
    texts = {d: dataset.corpus[d].content for c in candidates.values() for d in c}
    evaluator = make_rerank_evaluator(val_queries, training.validation_qrels, candidates, texts, fuse=fuse)
    validation = {
        "queries": len(candidates),
        "corpus": f"{first_stage} top {config.first_stage_top} per query",
        "order": "the reranker's" if fuse == "none" else "RRF of the first stage's and the reranker's",
        "first_stage": ranking_figures(training.validation_qrels, candidates),
    }
    return evaluator, validation


def _train(model: Any, train_dataset: Any, config: CrossEncoderConfig, learning_rate: float, evaluator: Any,
           checkpoints: Path, resume: bool, say: Any) -> dict[str, Any]:
    """Train the reranker in place; returns its pass record (loss, steps, time, log history)."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    loss, label = CROSS_ENCODER_LOSSES[config.loss](model, config)
    args = setup.training_arguments(
        CrossEncoderTrainingArguments, checkpoints, epochs=config.epochs, batch_size=config.batch,
        learning_rate=learning_rate, warmup_ratio=config.warmup_ratio, seed=config.seed,
        rows=len(train_dataset), evaluations_per_epoch=config.evaluations_per_epoch,
        min_steps_between_validations=config.min_steps_between_validations,
    )
    trainer = setup.quiet(CrossEncoderTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
        callbacks=setup.callbacks(config.epochs * setup.validations_per_epoch(
            len(train_dataset), config.batch, config.evaluations_per_epoch, config.min_steps_between_validations),
            config.early_stopping_patience, config.save_total_limit),
    ))
    if "docs" in train_dataset.column_names:
        rows = f"{len(train_dataset)} lists ({sum(map(len, train_dataset['docs']))} query-document pairs)"
    else:
        rows = f"{len(train_dataset)} labelled pairs"
    say(f"training the reranker on {rows}, {label}, lr {learning_rate:g}")
    started = time.perf_counter()
    output, _ = train_resumably(trainer, checkpoints, resume)
    seconds = time.perf_counter() - started
    epochs_done = float(trainer.state.epoch or config.epochs)
    return {
        "loss": label, "learning_rate": learning_rate,
        "rows": len(train_dataset), "epochs": config.epochs, "epochs_done": round(epochs_done, 3),
        "steps": trainer.state.global_step, "seconds": round(seconds, 1),
        "pairs_per_second": round(len(train_dataset) * epochs_done / max(1e-9, output.metrics.get("train_runtime", seconds)), 3),
        "best_checkpoint": trainer.state.best_model_checkpoint, "best_metric": trainer.state.best_metric,
        "kept_checkpoints": setup.checkpoint_scores(checkpoints, trainer.state.log_history),
        "device": setup.trained_on(trainer), "log_history": setup.log_history(trainer),
    }
