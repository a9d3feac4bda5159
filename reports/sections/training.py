"""Sections of fine-tuning (``harness finetune``): a model's folder (its training card and
log), the card or the log alone: validation before and after, passes, parameters, the
hard-negative scores, the training curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.reports.document import Cell, Figure, Section, Table
from harness.reports.formatting import fmt, num, short, text
from harness.reports.sections.captions import provenance_line, versions
from harness.reports.sections.generic import generic_section
from harness.results import read_result

if TYPE_CHECKING:
    from harness.reports.sections import Context

KIND_NAMES = {"model-card": "fine-tuning", "training-log": "fine-tuning"}
CARD_FILE = "training_card.json"
LOG_FILE = "training_log.json"


def is_model_folder(path: Path) -> bool:
    """A fine-tuned model's folder, or its training card."""
    return (path.is_dir() and (path / CARD_FILE).is_file()) or path.name == CARD_FILE


def read_model_folder(path: Path) -> dict[str, Any]:
    """A fine-tuned model's folder (or its ``training_card.json``) as one ``model-card`` document:
    the card (which has no ``schema_version``) with the training log beside it."""
    folder = path if path.is_dir() else path.parent
    try:
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{folder / CARD_FILE}: cannot read the training card ({exc})") from exc
    log = None
    if (folder / LOG_FILE).is_file():
        log = read_result(folder / LOG_FILE)
    return {"schema_version": 1, "kind": "model-card", "provenance": card.get("provenance") or {}, "card": card, "log": log,
            "folder": str(folder)}


def sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    kind = str(data.get("kind"))
    if kind == "model-card":
        card, log = data.get("card") or {}, data.get("log") or {}
    elif kind == "training-log":
        card, log = {}, data
    else:  # a card written as a result of its own
        card, log = data, data.get("log") or {}
    prov = card.get("provenance") or data.get("provenance") or {}
    output = card.get("output") or data.get("folder") or source
    section = Section(
        title=f"Fine-tuning: {card.get('kind', 'model')} {Path(str(output)).name}" if card else f"Fine-tuning log {Path(source).parent.name}",
        kind=kind, source=source, provenance=provenance_line(prov) if prov else "",
    )
    dataset = card.get("dataset") or {}
    training = card.get("training_data") or {}
    if card:
        section.intro.append(
            f"Base model {card.get('base_model', '?')} -> {output} (fingerprint {short(card.get('fingerprint'))}); "
            f"data {dataset.get('name', '?')} (hash {short(dataset.get('hash'))}), pairs from {training.get('source', '?')}: "
            f"{fmt(training.get('pairs'))} pairs of {fmt(training.get('queries'))} queries (pairs hash {short(training.get('pairs_hash'))}); "
            f"validation {(training.get('validation') or {}).get('kind', '?')} {(training.get('validation') or {}).get('split', '')} "
            f"({fmt(training.get('validation_queries'))} queries); chosen: {card.get('chosen', '?')}; {fmt(card.get('seconds'), 3)} s."
        )
        validation = card.get("validation") or {}
        before, after = validation.get("before") or {}, validation.get("after") or {}
        if before or after:
            metrics = [m for m in after if m in before] or list(after)
            section.headline.append(
                "Validation " + "; ".join(f"{m.replace('val_', '')} {fmt(before.get(m))} before, {fmt(after.get(m))} after" for m in metrics)
                + f" ({card.get('chosen', 'final')} model, {fmt(validation.get('queries'))} validation queries)."
            )
            section.tables.append(
                Table("Validation before and after fine-tuning", ["metric", "before", "after"],
                      [[text(m.replace("val_", "")), num(before.get(m)), num(after.get(m))] for m in metrics],
                      note=f"Validation corpus: {validation.get('corpus', '?')}.")
            )
        for note in card.get("notes") or []:
            section.notes.append(str(note))
    else:
        section.notes.append("A training log alone records no model fingerprint or data hash; give the model folder "
                             "(with training_card.json) to caption its curves.")
    passes = card.get("passes") or {}
    if passes:
        val_names = sorted({k for p in passes.values() for k in (p.get("validation") or {})})
        section.tables.append(
            Table(
                "Training passes",
                ["pass", "loss", "rows", "epochs", "steps", "batch", "seconds", "pairs/s", "best metric", *[v.replace("val_", "val ") for v in val_names]],
                [[Cell(name + (" (chosen)" if name == card.get("chosen") else ""), name), text(p.get("loss")), num(p.get("rows")),
                  num(p.get("epochs_done")), num(p.get("steps")), num(p.get("batch_size")), num(p.get("seconds"), 3),
                  num(p.get("pairs_per_second"), 3), num(p.get("best_metric")), *[num((p.get("validation") or {}).get(v)) for v in val_names]]
                 for name, p in passes.items()],
            )
        )
    parameters = card.get("parameters") or {}
    if parameters:
        section.tables.append(Table("Parameters", ["parameter", "value"],
                                    [[text(k), num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else text(v)] for k, v in parameters.items()]))
    mining = card.get("mining") or {}
    scores = mining.get("scores") or {}
    if scores:
        section.tables.append(
            Table("Hard-negative mining: similarity scores", ["scores", "count", "mean", "std", "p25", "median", "p75"],
                  [[text(k), num(v.get("count")), num(v.get("mean")), num(v.get("std")), num(v.get("p25")), num(v.get("median")), num(v.get("p75"))]
                   for k, v in scores.items()],
                  note=f"{fmt(mining.get('pairs_with_negatives'))} of {fmt(mining.get('pairs'))} pairs got negatives; "
                       f"{fmt(mining.get('negatives'))} negatives from {fmt(mining.get('candidates_per_query'))} candidates per query.")
        )
    curves: dict[str, Any] = {}
    for name, p in (log.get("passes") or {}).items():
        loss = [[e.get("step"), e.get("loss")] for e in p.get("loss_curve") or [] if e.get("step") is not None and e.get("loss") is not None]
        validation: dict[str, list] = {}
        for e in p.get("validation") or []:
            for key, value in e.items():
                if key.startswith("eval_val_") and isinstance(value, (int, float)) and e.get("step") is not None:
                    validation.setdefault(key[len("eval_val_"):], []).append([e["step"], value])
        curves[name] = {"loss": loss, "validation": validation, "loss_name": p.get("loss")}
    if any(c["loss"] or c["validation"] for c in curves.values()):
        caption = (
            (f"Model: {output} @{short(card.get('fingerprint'))} from {card.get('base_model', '?')}; " if card else "Model: not recorded in the log; ")
            + (f"data {dataset.get('name', '?')} (hash {short(dataset.get('hash'))}, pairs {short(training.get('pairs_hash'))}). " if card else "")
            + ("Versions: " + versions(prov) + "." if prov else "Versions: not recorded in the log.")
        )
        section.figures.append(
            Figure("", "Training loss and validation curves", "training_curves", {"passes": curves}, caption,
                   alt="Training loss and validation metrics by step, one column per training pass")
        )
    if not section.tables and not section.figures:
        return [generic_section(source, data, note="No training log or card this renderer knows in this result; its fields are listed as they are.")]
    return [section]


BUILDERS = {kind: sections for kind in ("training-log", "model-card", "bi-encoder", "cross-encoder")}
