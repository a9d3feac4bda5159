"""Fine-tuning a cross-encoder reranker (``harness finetune --cross-encoder``).

Negatives are mined for each training pair by a bi-encoder (``harness.train.mining``);
the reranker trains with sentence-transformers' CrossEncoderTrainer on labelled (query,
document) pairs, validated each epoch by reranking BM25's top candidates of the validation
queries. The same partial folder, resume and card as the bi-encoder
(``harness.train.checkpoints``, ``harness.train.cards``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.data import Dataset, load_dataset
from harness.errors import HarnessError
from harness.train import trainer as setup
from harness.train.cards import FinetuneResult, write_card_and_log
from harness.train.checkpoints import (
    final_dir, keep_partial_on_interrupt, prepare_work_dir, publish, run_key, save_state, train_resumably,
)
from harness.train.losses import binary_cross_entropy
from harness.train.pairs import known_positives, load_training_data, write_pairs


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
    """Train a reranker with CrossEncoderTrainer and BCE on pairs plus mined negatives.

    ``base`` is any cross-encoder folder or hub name; without one, the reranker starts from
    the MiniLM bi-encoder folder with a new, untrained one-logit head (no pretrained
    cross-encoder is available offline), and the card says which.
    """
    from harness import provenance
    from harness.adapters import default_cache_dir
    from harness.adapters.models import display_name, load_trainable_cross_encoder, resolve_model_name

    say = log or (lambda message: None)
    config = config or CrossEncoderConfig()
    setup.check_device()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    training = load_training_data(dataset, config, pairs_file, llm)
    start_from = resolve_model_name(base) if base else resolve_model_name("default")
    if base and is_cross_encoder_folder(start_from) is not False:
        base_note = f"started from the cross-encoder {display_name(base)}"
    else:
        base_note = (
            f"started from the bi-encoder {display_name(base or 'default')} with a new, untrained one-logit head: "
            "no pretrained cross-encoder was available"
        )
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
        train_dataset = _hf_dataset(labelled_rows(stages["examples"]))
        evaluator, validated = _rerank_evaluator(dataset, training, config, cache)
        if "before" not in stages:
            stages["before"] = evaluator(model, epoch=0, steps=0)
            save_state(work, state)
        before = stages["before"]
        say(f"reranker before training: val ndcg@10 {before['val_ndcg@10']:.4f} over BM25 top {config.validation_candidates}")
        record = _train(model, train_dataset, config, evaluator, work / "checkpoints", resume, say)
        after = evaluator(model, epoch=-1, steps=-1)
        final = final_dir(work)
        model.save(str(final))
        card = {
            "kind": "cross-encoder",
            "base_model": display_name(base or "default"),
            "base_model_path": start_from,
            "base_note": base_note,
            "negatives_model": display_name(negatives_model),
            "output": str(out),
            "fingerprint": setup.model_fingerprint(model),
            "dataset": {"name": dataset.name, "path": str(dataset.path), "hash": dataset.hash},
            "training_data": {**training.description, "file": "pairs.jsonl"},
            "parameters": config.as_dict(),
            "seed": config.seed,
            "passes": {"reranker": {k: v for k, v in record.items() if k != "log_history"}},
            "chosen": "reranker",
            "mining": stages["mining"],
            "validation": {"queries": validated, "corpus": f"BM25 top {config.validation_candidates} per query",
                           "before": before, "after": after, "history": evaluator.history},
            "seconds": round(time.perf_counter() - started, 1),
            "provenance": provenance.collect(seed=config.seed),
        }
        write_card_and_log(final, work, card, {"reranker": record})
        publish(final, out, work)
        say(f"wrote {out}")
        return FinetuneResult(path=out, card=card)


def _mine_negatives(dataset: Dataset, training: Any, config: CrossEncoderConfig, negatives_model: str, cache: Path,
                    stages: dict[str, Any], say: Any) -> None:
    """Mine ``num_negatives`` a pair with ``negatives_model``; the statistics and the
    (query, positive, negatives) examples go into the run's stages."""
    from harness.adapters.models import display_name, load_trainable_sentence_transformer
    from harness.train.mining import MiningConfig, mine

    say(f"mining {config.num_negatives} negatives per pair with {display_name(negatives_model)}")
    miner = load_trainable_sentence_transformer(negatives_model)
    mined = mine(training.pairs, dataset, miner, MiningConfig(range_min=config.range_min, range_max=config.range_max,
                 relative_margin=config.relative_margin, num_negatives=config.num_negatives), cache_dir=cache,
                 seed=config.seed, extra_positives=known_positives(dataset, [config.train_split, config.validation_split]))
    mined.stats["mined_with"] = display_name(negatives_model)
    stages["mining"] = mined.stats
    stages["examples"] = [[e.query, e.positive, e.negatives] for e in mined.examples]


def _hf_dataset(rows: dict[str, list[Any]]) -> Any:
    from datasets import Dataset as HFDataset

    return HFDataset.from_dict(rows)


def _rerank_evaluator(dataset: Dataset, training: Any, config: CrossEncoderConfig, cache: Path) -> tuple[Any, int]:
    """Validation: rerank BM25's top candidates of (at most) ``validation_queries`` validation
    queries; returns the evaluator and how many queries it reranks."""
    from harness.train.evaluators import bm25_neighbours, make_rerank_evaluator

    val_ids = sorted(training.validation_qrels)[: config.validation_queries]
    val_queries = {q: training.validation_queries[q] for q in val_ids}
    candidates = bm25_neighbours(dataset, val_queries, config.validation_candidates, cache)
    candidates = {q: c for q, c in candidates.items() if c}
    if not candidates:
        raise HarnessError("no validation query has a first-stage candidate to rerank")
    texts = {d: dataset.corpus[d].content for c in candidates.values() for d in c}
    return make_rerank_evaluator(val_queries, training.validation_qrels, candidates, texts), len(candidates)


def _train(model: Any, train_dataset: Any, config: CrossEncoderConfig, evaluator: Any, checkpoints: Path, resume: bool,
           say: Any) -> dict[str, Any]:
    """Train the reranker in place; returns its pass record (loss, steps, time, log history)."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    loss, label = binary_cross_entropy(model, config)
    args = setup.training_arguments(
        CrossEncoderTrainingArguments, checkpoints, epochs=config.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, warmup_ratio=config.warmup_ratio, seed=config.seed,
        save_total_limit=config.save_total_limit, rows=len(train_dataset),
    )
    trainer = setup.quiet(CrossEncoderTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
        callbacks=setup.callbacks(config.epochs, config.early_stopping_patience),
    ))
    say(f"training the reranker on {len(train_dataset)} labelled pairs")
    started = time.perf_counter()
    output, _ = train_resumably(trainer, checkpoints, resume)
    seconds = time.perf_counter() - started
    epochs_done = float(trainer.state.epoch or config.epochs)
    return {
        "loss": label,
        "rows": len(train_dataset), "epochs": config.epochs, "epochs_done": epochs_done,
        "steps": trainer.state.global_step, "seconds": round(seconds, 1),
        "pairs_per_second": round(len(train_dataset) * float(trainer.state.epoch or 1)
                                  / max(1e-9, output.metrics.get("train_runtime", seconds)), 3),
        "best_checkpoint": trainer.state.best_model_checkpoint, "device": setup.trained_on(trainer),
        "log_history": setup.log_history(trainer),
    }
