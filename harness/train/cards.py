"""Model cards: what a fine-tuned model folder says about how it was made.

``training_card.json`` (base model, data and pairs hashes, every parameter, seed, mining
statistics, each pass's record, validation before and after, provenance), its Markdown
twin ``README.md``, ``training_log.json`` (loss curves and validation per pass, for
plotting) and ``training_pairs.jsonl`` (the pairs trained on).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.files import write_json

CARD_JSON = "training_card.json"
LOG_JSON = "training_log.json"


@dataclass
class FinetuneResult:
    path: Path
    card: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return {"before": self.card["validation"]["before"], "after": self.card["validation"]["after"]}


def write_card_and_log(final: Path, work: Path, card: dict[str, Any], passes: dict[str, Any]) -> None:
    """Write the card, its Markdown, the training log (from each pass's trainer log history)
    and the training pairs into the finished model folder ``final``."""
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
        f"- device: {_device_line(card['provenance']['device'])}",
        f"- total time: {card['seconds']} s",
        "",
        "## Validation (harness metrics)",
        "",
        "| metric | before | after |",
        "|---|---|---|",
    ]
    for metric in metrics:
        b, a = validation["before"].get(metric), validation["after"].get(metric)
        lines.append(f"| {metric} | {_figure(b)} | {_figure(a)} |")
    from harness.train.export import export_lines

    lines += _first_stage_lines(card) + _curve_lines(validation.get("history", [])) + _choice_lines(card.get("choices", {}))
    lines += export_lines(card.get("export"))
    lines += ["", "## Passes", ""]
    for name, rec in card.get("passes", {}).items():
        lines.append(
            f"- {name}: {rec['loss']}, {rec['rows']} rows, {rec['epochs_done']} of {rec['epochs']} epoch(s), {rec['steps']} steps, "
            f"{rec['seconds']} s ({rec['pairs_per_second']} pairs/s) on {rec['device']}, finished on {_best_line(rec)}"
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


def _first_stage_lines(card: dict[str, Any]) -> list[str]:
    """A reranker's card: the first stage it reorders and that stage's own validation figures."""
    first = card.get("first_stage")
    if not first:
        return []
    own = card["validation"].get("first_stage", {})
    figures = ", ".join(f"{metric} {value:.4f}" for metric, value in sorted(own.items()))
    return ["", f"Reranks the top {first['top']} of `{first['spec']}` (`{first['rerank_spec']}`); "
                f"that first stage's own order on the same validation queries: {figures}."]


def _figure(value: Any) -> str:
    """A validation figure, or a dash where none was measured (a new reranker head is not
    validated before training)."""
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


def _curve_lines(history: list[dict[str, Any]]) -> list[str]:
    """The validation curve: every validation the run made (step 0 is before training; the
    last pass's steps restart at 0 in a two-pass card)."""
    if not history:
        return []
    metrics = [k for k in history[0] if k.startswith("val_")]
    lines = ["", "## Validation curve", "", "| step | epoch | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for entry in history:
        epoch = entry.get("epoch")
        epoch_text = f"{epoch:.2f}" if isinstance(epoch, (int, float)) and epoch >= 0 else "end"
        lines.append(f"| {entry.get('step')} | {epoch_text} | " + " | ".join(f"{entry.get(m, float('nan')):.4f}" for m in metrics) + " |")
    return lines


def _choice_lines(choices: dict[str, Any]) -> list[str]:
    """Every setting the defaults chose, its value and why."""
    if not choices:
        return []
    return ["", "## Choices", ""] + [f"- {name}: {choice['value']} ({choice['why']})" for name, choice in choices.items()]


def _best_line(record: dict[str, Any]) -> str:
    """The checkpoint a pass finished on: the best by validation (the best 3 were kept)."""
    best = record.get("best_checkpoint")
    if not best:
        return "its last step (no checkpoint)"
    metric = record.get("best_metric")
    kept = ", ".join(c["checkpoint"] for c in record.get("kept_checkpoints", []))
    return (f"the best checkpoint, {Path(best).name}" + (f" (val ndcg@10 {metric:.4f})" if isinstance(metric, float) else "")
            + (f"; kept the best {len(record['kept_checkpoints'])}: {kept}" if kept else ""))


def _device_line(device: dict[str, Any]) -> str:
    named = f"{device['device']} ({device['name']})" if device.get("name") else device["device"]
    return named if device["requested"] == "auto" else f"{named}, --device {device['requested']}"
