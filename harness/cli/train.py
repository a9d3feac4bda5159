"""``harness mine`` and ``harness finetune``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.options import cache_option, data_option, device_option, out_option
from harness.errors import HarnessError
from harness.train.losses import BI_ENCODER_LOSSES, CROSS_ENCODER_LOSSES

_synthetic_option = click.option(
    "--synthetic",
    type=click.Choice(["title-body", "inverse-cloze", "llm"]),
    help="Make pairs from the corpus instead of the train split: title->body, inverse cloze, or an LLM endpoint.",
)
_llm_options = [
    click.option("--llm-url", help="OpenAI-compatible endpoint for --synthetic llm, e.g. http://localhost:8000/v1."),
    click.option("--llm-model", help="Model name at the endpoint, for --synthetic llm."),
    click.option("--llm-key-env", default="OPENAI_API_KEY", show_default=True,
                 help="Environment variable holding the endpoint's key (never logged or written)."),
]


def _apply(options):
    def decorator(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorator


def _echo(message: str) -> None:
    click.echo(message, err=True)


def _dims(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 384,256,128,64, got {text!r}") from None


@click.command("mine")
@data_option
@out_option
@click.option("--model", "model_name", default="default", show_default=True,
              help="Bi-encoder that mines: the base model or a first-pass model folder.")
@click.option("--pairs", "pairs_file", type=click.Path(path_type=Path), help="A pairs JSONL file instead of the train split.")
@_synthetic_option
@_apply(_llm_options)
@click.option("--split", "train_split", default="train", show_default=True, help="Split whose judgements are the pairs.")
@click.option("--range-min", type=int, default=0, show_default=True, help="Skip the first N candidates.")
@click.option("--range-max", type=int, default=50, show_default=True, help="Consider candidates up to this rank.")
@click.option("--relative-margin", type=float, default=0.05, show_default=True,
              help="Drop candidates scoring within this share of the positive's score (TopK-PercPos95 is 0.05); negative to disable.")
@click.option("--num-negatives", type=int, default=3, show_default=True)
@click.option("--sampling", type=click.Choice(["top", "random"]), default="top", show_default=True)
@click.option("--cross-encoder", "cross_encoder", help="Rescore candidates with this cross-encoder before the margin.")
@click.option("--audit", type=int, default=0, help="Write N mined negatives and N margin-removed candidates to OUT/audit.md.")
@click.option("--max-pairs", type=int, help="Mine for at most N pairs (seeded sample).")
@click.option("--seed", type=int, default=42, show_default=True)
@cache_option
@device_option
def mine(data, out, model_name, pairs_file, synthetic, llm_url, llm_model, llm_key_env, train_split, range_min, range_max,
         relative_margin, num_negatives, sampling, cross_encoder, audit, max_pairs, seed, cache_dir):
    """Mine hard negatives for training pairs (sentence-transformers' mine_hard_negatives).

    Writes OUT/pairs.jsonl (the input pairs), OUT/negatives.jsonl (each pair with its
    negatives and scores), OUT/mining.json (statistics) and, with --audit N, OUT/audit.md.
    Document embeddings go through the harness cache.

    \b
    Example:
      harness mine --data data/demo --out out/mined --audit 20
      harness mine --data data/kb --synthetic inverse-cloze --out out/mined --model out/model
    """
    from harness.adapters import default_cache_dir
    from harness.adapters.models import display_name
    from harness.data import load_dataset
    import random

    from harness.adapters.models import load_trainable_sentence_transformer
    from harness.train.mining import MiningConfig, mine as mine_negatives, write_audit, write_mined
    from harness.train.pairs import known_positives, pairs_from_qrels, read_pairs, synthetic_pairs, write_pairs

    if audit < 0:
        raise HarnessError("--audit must be zero or positive")
    dataset = load_dataset(data)
    llm = {"url": llm_url, "model": llm_model, "key_env": llm_key_env} if synthetic == "llm" else None
    if pairs_file:
        pairs = read_pairs(pairs_file, dataset)
    elif synthetic:
        pairs = synthetic_pairs(dataset, synthetic, seed=seed, max_pairs=max_pairs, **(llm or {}))
    else:
        pairs = pairs_from_qrels(dataset, train_split)
    if max_pairs and len(pairs) > max_pairs:
        pairs = random.Random(seed).sample(pairs, max_pairs)
    model = load_trainable_sentence_transformer(model_name)
    mining_config = MiningConfig(
        range_min=range_min, range_max=range_max, relative_margin=relative_margin if relative_margin >= 0 else None,
        num_negatives=num_negatives, sampling_strategy=sampling, cross_encoder=cross_encoder,
    )
    result = mine_negatives(pairs, dataset, model, mining_config, cache_dir=cache_dir or default_cache_dir(), audit=audit,
                            seed=seed, extra_positives=known_positives(dataset, dataset.available_splits()))
    out.mkdir(parents=True, exist_ok=True)
    write_pairs(out / "pairs.jsonl", pairs)
    write_mined(out / "negatives.jsonl", result)
    stats = {"model": display_name(model_name), "dataset": dataset.name, "dataset_hash": dataset.hash, **result.stats}
    (out / "mining.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    removed = result.stats["removed_by_margin"]
    scores = result.stats["scores"]
    click.echo(
        f"{result.stats['negatives']} negatives for {result.stats['pairs_with_negatives']} of {result.stats['pairs']} pairs "
        f"in {result.stats['seconds']:.1f} s ({result.stats['documents_from_cache']} document vectors from the cache)"
    )
    click.echo(f"the relative margin removed {removed['candidates']} candidates ({removed['share']:.2%})")
    for name in ("positive", "negative", "difference"):
        dist = scores[name]
        if dist.get("count"):
            click.echo(f"  {name:<10} mean {dist['mean']:.4f}  p25 {dist['p25']:.4f}  median {dist['median']:.4f}  p75 {dist['p75']:.4f}")
    if audit:
        path = write_audit(out / "audit.md", result, audit, seed=seed)
        click.echo(f"wrote {path}")
    click.echo(f"wrote {out / 'negatives.jsonl'}")


@click.command("finetune")
@data_option
@out_option
@click.option("--base", default="default", show_default=True, help="Base model: a folder or hub name (default: all-MiniLM-L6-v2).")
@click.option("--cross-encoder", "cross_encoder", is_flag=True, help="Train a cross-encoder reranker instead of a bi-encoder.")
@click.option("--passes", type=click.Choice(["two", "in-batch", "hard-negatives"]), default="two", show_default=True,
              help="two: in-batch pass then a pass with hard negatives mined by the pass-1 model.")
@click.option("--loss", type=click.Choice([*BI_ENCODER_LOSSES, *CROSS_ENCODER_LOSSES]),
              help="Bi-encoder: mnrl (default, MultipleNegativesRanking), cmnrl (its cached variant: large batches in "
                   "little memory) or triplet. Reranker: lambda (default, LambdaLoss over each query's list) or bce "
                   "(BinaryCrossEntropy on labelled pairs).")
@click.option("--fuse", type=click.Choice(["auto", "none", "rrf"]), default="auto", show_default=True,
              help="Reranker: the order it serves and is validated in, its own or fused with the first stage's (rrf); "
                   "auto: rrf for a new head, none for a pretrained cross-encoder.")
@click.option("--matryoshka", help="Wrap the loss in MatryoshkaLoss with these dimensions, e.g. 384,256,128,64.")
@click.option("--epochs", type=int, default=1, show_default=True, help="Epochs per pass (1 to 3 is the usual range).")
@click.option("--pass2-epochs", type=int, help="Epochs of pass 2 (default: --epochs).")
@click.option("--lr", type=float, help="Peak learning rate (default: bi-encoder 2e-5 x max(1, 500 / the pass's steps), at most "
              "1e-4; reranker 1e-4 for a new head, 2e-5 from a pretrained cross-encoder).")
@click.option("--warmup", type=float, default=0.1, show_default=True, help="Warm-up share of the steps.")
@click.option("--batch-size", type=int, help="Training batch (default 32). Bi-encoder: pairs; reranker: lists (query, positive "
              "and negatives; default 8) with --loss lambda, labelled (query, document) pairs with --loss bce (default 32).")
@click.option("--mini-batch-size", type=int, default=16, show_default=True, help="Mini-batch of --loss cmnrl (16 keeps batch 256 of 256-token texts under 3 GB).")
@click.option("--max-seq-length", type=int, help="Truncate texts to N tokens while training.")
@click.option("--patience", type=int, help="Early stopping: validations without a gain (default: bi-encoder 1, validating "
              "each epoch; reranker 2, validating 4 times an epoch).")
@click.option("--pairs", "pairs_file", type=click.Path(path_type=Path), help="A pairs JSONL file instead of the train split.")
@_synthetic_option
@_apply(_llm_options)
@click.option("--split", "train_split", default="train", show_default=True)
@click.option("--validation-split", default="dev", show_default=True, help="Used when present; else a seeded share of train.")
@click.option("--validation-share", type=float, default=0.1, show_default=True)
@click.option("--max-pairs", type=int, help="Train on at most N pairs (seeded sample).")
@click.option("--min-grade", type=int, default=1, show_default=True, help="Lowest grade that makes a judgement a positive.")
@click.option("--num-negatives", type=int, help="Hard negatives per pair (bi-encoder 1, reranker 4).")
@click.option("--range-max", type=int, help="Mine negatives up to this rank (default: bi-encoder 50; reranker --rerank-top).")
@click.option("--relative-margin", type=float,
              help="Drop candidates within this share of the positive's score, negative to disable (default: bi-encoder "
                   "0.05; reranker none: it must learn the first stage's closest confusions).")
@click.option("--rerank-top", type=int, default=20, show_default=True,
              help="Reranker: the N of rerank(OUT,top=N,first=...): negatives come from, and validation reranks, "
                   "the first stage's top N.")
@click.option("--mining-cross-encoder", help="Filter pass-2 candidates with this cross-encoder.")
@click.option("--negatives-model", default="default", show_default=True,
              help="Reranker: the bi-encoder whose dense top N it learns to reorder (its negatives and validation).")
@click.option("--keep-pass1", is_flag=True, help="Also keep the pass-1 model, in OUT/pass1_model, to measure pass 2.")
@click.option("--export", "export_to", type=click.Choice(["openvino"]),
              help="Bi-encoder: end by exporting the model to this encoding backend (into OUT/openvino and the --cache "
                   "the dense arm reads), its validation beside torch's in the card. Needs the openvino extra.")
@click.option("--quant", type=click.Choice(["int8"]),
              help="With --export openvino: NNCF static int8, calibrated on the dataset's own corpus.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run for this --out.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed, recorded in the card.")
@cache_option
@device_option
def finetune(data, out, base, cross_encoder, passes, loss, fuse, matryoshka, epochs, pass2_epochs, lr, warmup, batch_size, mini_batch_size,
             max_seq_length, patience, pairs_file, synthetic, llm_url, llm_model, llm_key_env, train_split, validation_split,
             validation_share, max_pairs, min_grade, num_negatives, range_max, relative_margin, rerank_top, mining_cross_encoder,
             negatives_model, keep_pass1, export_to, quant, resume, seed, cache_dir):
    """Fine-tune a bi-encoder (two passes) or, with --cross-encoder, a reranker.

    OUT is written only when complete (training runs in OUT/../.OUT.partial); it holds a
    sentence-transformers model (`dense:OUT`, or `rerank(OUT,top=N,first=SPEC)`),
    README.md and training_card.json (base, data hash, parameters, mining statistics,
    validation before/after) and training_log.json (loss curves).

    \b
    Example:
      harness finetune --data data/demo --base default --out out/ft
      harness finetune --data data/demo --passes in-batch --loss cmnrl --batch-size 256 \\
        --mini-batch-size 32 --matryoshka 384,256,128,64 --out out/ft-cmnrl
      harness finetune --data data/demo --cross-encoder --out out/reranker
      harness finetune --data data/demo --out out/ft-ov --export openvino --quant int8
      harness eval --data data/demo --retriever dense --retriever dense:out/ft --out out/eval
    """
    from harness.train.bi_encoder import FinetuneConfig, finetune as run_finetune
    from harness.train.cross_encoder import CrossEncoderConfig, finetune_cross_encoder
    from harness.train.export import export_backend

    if cross_encoder and export_to:
        raise HarnessError("--export applies to a bi-encoder: a reranker is served by rerank(...) on torch")
    export = export_backend(export_to, quant)  # a missing OpenVINO stack fails here, before any training

    llm = {"url": llm_url, "model": llm_model, "key_env": llm_key_env} if synthetic == "llm" else None
    # options left out keep each config's own default; a negative --relative-margin disables the margin
    given = {"learning_rate": lr, "batch_size": batch_size, "num_negatives": num_negatives, "range_max": range_max,
             "early_stopping_patience": patience}
    if relative_margin is not None:
        given["relative_margin"] = relative_margin if relative_margin >= 0 else None
    tuning = {key: value for key, value in given.items() if value is not None or key == "relative_margin"}
    if loss is not None and (loss in CROSS_ENCODER_LOSSES) != bool(cross_encoder):
        kind = "a reranker" if loss in CROSS_ENCODER_LOSSES else "a bi-encoder"
        raise HarnessError(f"--loss {loss} is a loss for {kind}: " + ("add --cross-encoder" if loss in CROSS_ENCODER_LOSSES
                           else f"the reranker's are {' and '.join(CROSS_ENCODER_LOSSES)}"))
    if cross_encoder:
        config = CrossEncoderConfig(
            loss=loss or "lambda", fuse=fuse, epochs=epochs, warmup_ratio=warmup, seed=seed, first_stage_top=rerank_top,
            train_split=train_split, validation_split=validation_split,
            validation_share=validation_share, max_pairs=max_pairs, synthetic=synthetic, min_grade=min_grade,
            max_length=max_seq_length or 256, **tuning,
        )
        result = finetune_cross_encoder(data, out, base=None if base == "default" else base, negatives_model=negatives_model,
                                        config=config, cache_dir=cache_dir, resume=resume, pairs_file=pairs_file, llm=llm, log=_echo)
    else:
        config = FinetuneConfig(
            passes=passes, loss=loss or "mnrl", matryoshka_dims=_dims(matryoshka), epochs=epochs, pass2_epochs=pass2_epochs,
            warmup_ratio=warmup, mini_batch_size=mini_batch_size,
            max_seq_length=max_seq_length, seed=seed, train_split=train_split,
            validation_split=validation_split, validation_share=validation_share, max_pairs=max_pairs, synthetic=synthetic,
            min_grade=min_grade, mining_cross_encoder=mining_cross_encoder, keep_pass1=keep_pass1, **tuning,
        )
        result = run_finetune(data, base, out, config, cache_dir=cache_dir, resume=resume, pairs_file=pairs_file, llm=llm, log=_echo,
                              export=export)
    before, after = result.metrics["before"], result.metrics["after"]
    for metric in sorted(after):
        click.echo(f"{metric}: {before[metric]:.4f} -> {after[metric]:.4f}" if metric in before
                   else f"{metric}: {after[metric]:.4f} (a new head: not validated before training)")
    exported = result.card.get("export")
    if exported:
        click.echo(f"exported to {exported['spec_options']}: " + ", ".join(
            f"{metric} {exported['validation'][metric]:.4f} ({cost:+.4f} vs torch)" for metric, cost in exported["cost"].items()))
    click.echo(f"wrote {result.path}")
