"""A model folder as the registry reads it: its card, its weights' fingerprint (checked
against the card), what it was trained on (dataset and pairs hashes, and a pairs file of
logged traffic with its log window), and the card's figures as MLflow metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.registry_evidence import file_sha256, metric_key

CARD_FILES = ("training_card.json", "README.md", "training_log.json")


def model_folder(model: str | Path) -> tuple[Path, dict[str, Any]]:
    """The folder (``default``: the offline MiniLM) and its card (empty where it has none)."""
    from harness.adapters.models import resolve_model_name

    folder = Path(resolve_model_name(str(model))).expanduser()
    if not folder.is_dir():
        raise HarnessError(f"{model}: model folder does not exist (register a sentence-transformers folder)")
    card_file = folder / CARD_FILES[0]
    card: dict[str, Any] = {}
    if card_file.is_file():
        try:
            card = json.loads(card_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise HarnessError(f"{card_file}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    return folder.resolve(), card


def weights_fingerprint(folder: Path, card: dict[str, Any]) -> str:
    """The weights' fingerprint, computed from the folder; its card must agree."""
    from harness.adapters.models import fingerprint, load_cross_encoder, load_sentence_transformer

    load = load_cross_encoder if card.get("kind") == "cross-encoder" else load_sentence_transformer
    value = fingerprint(load(str(folder)))
    if card.get("fingerprint") and card["fingerprint"] != value:
        raise HarnessError(f"{folder / CARD_FILES[0]}: the card describes weights {card['fingerprint']}, "
                           f"the folder holds {value}: it was changed after training")
    return value


def training_record(card: dict[str, Any], pairs: Path | None) -> dict[str, Any]:
    """What it was trained on: the dataset and pairs hashes of its card, and a pairs file
    from logged traffic with its header (log window, experiment, debiasing)."""
    data = card.get("training_data", {})
    record: dict[str, Any] = {k: v for k, v in {
        "dataset_hash": card.get("dataset", {}).get("hash"), "training_source": data.get("source"),
        "pairs_hash": data.get("pairs_hash"),
    }.items() if v}
    if pairs is not None:
        pairs = Path(pairs)
        if not pairs.is_file():
            raise HarnessError(f"{pairs}: pairs file does not exist")
        with pairs.open(encoding="utf-8") as handle:
            first = handle.readline()
        try:
            header = json.loads(first)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"{pairs}:1: not valid JSON: {exc.msg}") from None
        if not isinstance(header, dict) or header.get("kind") != "pairs-header":
            raise HarnessError(f"{pairs}:1: not a pairs file of `harness ab pairs` (no pairs-header record)")
        record |= {"pairs_file": str(pairs.resolve()), "pairs_sha256": file_sha256(pairs),
                   "log_window": json.dumps(header.get("window")), "pairs_header": header}
    return record


def card_metrics(card: dict[str, Any]) -> dict[str, float]:
    validation = card.get("validation", {})
    return {metric_key("validation", when, name): float(value)
            for when in ("before", "after") for name, value in (validation.get(when) or {}).items()
            if isinstance(value, (int, float))}
