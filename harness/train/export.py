"""``harness finetune --export openvino [--quant int8]``: the fine-tuned bi-encoder, exported
to a fast encoding backend at the end of training, with the quality that costs measured on
the validation split and written in the card.

The export is the one the ``dense`` arm makes (``harness.adapters.backends``): the same
sentence-transformers export and NNCF calibration, on a seeded sample of the dataset's own
corpus, cached under the same key (source fingerprint, backend, quantisation, calibration
hash) in ``--cache``, so ``dense:OUT(backend=openvino,quant=int8)`` over that corpus, with
that cache, exports nothing again. The exported files are also copied into the model folder
(``OUT/openvino/``, where sentence-transformers' own ``backend="openvino"`` looks), so the
folder ships with them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from harness.adapters.backends import (
    INT8_FILE, OPENVINO_FILE, EncodingBackend, calibration_sample, load_backend_model,
)
from harness.data import Dataset
from harness.errors import HarnessError


def export_backend(backend: str | None, quant: str | None) -> EncodingBackend | None:
    """The backend to export to, checked before any training (a missing OpenVINO stack is a
    one-line error then, not after an hour of training); None without ``--export``."""
    if backend is None:
        if quant is not None:
            raise HarnessError(f"--quant {quant} needs --export openvino")
        return None
    try:
        return EncodingBackend.parse(backend, quant)
    except HarnessError as exc:  # the dense arm's own check, said in this command's words
        raise HarnessError(f"--export {backend}: {str(exc).removeprefix('dense: ')}") from None


def export_trained(final: Path, trained: Any, fingerprint: str, backend: EncodingBackend, dataset: Dataset,
                   evaluator: Any, torch_validation: dict[str, float], cache_dir: Path) -> dict[str, Any]:
    """Export the model saved in ``final`` (``trained`` is it, loaded), validate the export on
    ``evaluator`` (a fresh one over the validation queries and corpus the passes used), copy
    its files into ``final`` and return the card's ``export`` entry."""
    started = time.perf_counter()
    texts = [doc.content for doc in dataset.corpus.values()]
    calibration = calibration_sample(texts) if backend.quantisation else None
    exported = load_backend_model(trained, str(final), backend, fingerprint, calibration, cache_dir)
    export_seconds = time.perf_counter() - started
    validation = {k: v for k, v in evaluator(exported, epoch=-1, steps=-1).items() if k.startswith("val_")}
    key = backend.key(fingerprint, calibration)
    folder = Path(cache_dir) / "backends" / key
    model_file = INT8_FILE if backend.quantisation else OPENVINO_FILE
    (final / "openvino").mkdir(parents=True, exist_ok=True)
    for source in (folder / model_file, (folder / model_file).with_suffix(".bin")):
        shutil.copy2(source, final / source.relative_to(folder))
    shutil.copy2(folder / "harness_export.json", final / "openvino" / "harness_export.json")
    return {
        **backend.describe(calibration),
        "key": key,
        "file": model_file,
        "cache_folder": str(folder),
        "spec_options": "backend=openvino" + (f",quant={backend.quantisation}" if backend.quantisation else ""),
        "validation": validation,
        "torch_validation": {k: torch_validation[k] for k in validation if k in torch_validation},
        "cost": {k: round(validation[k] - torch_validation[k], 6) for k in validation if k in torch_validation},
        "export_seconds": round(export_seconds, 1),
        "validation_seconds": evaluator.history[-1]["seconds"] if evaluator.history else None,
    }


def export_lines(export: dict[str, Any] | None) -> list[str]:
    """The card's Markdown for the export: what, where, and what it cost on validation."""
    if not export:
        return []
    name = export["backend"] + (f" {export['quantisation']}" if export.get("quantisation") else "")
    lines = ["", "## Export", "",
             f"Exported to {name} (`{export['file']}`; key `{export['key']}`), "
             f"in {export['export_seconds']} s; evaluate it as `dense:OUT({export['spec_options']})`.", "",
             "| metric | torch | " + name + " | difference |", "|---|---|---|---|"]
    for metric, value in export["validation"].items():
        torch_value = export["torch_validation"].get(metric)
        if torch_value is None:
            continue
        lines.append(f"| {metric} | {torch_value:.4f} | {value:.4f} | {value - torch_value:+.4f} |")
    if export.get("calibration"):
        calibration = export["calibration"]
        lines.append("")
        lines.append(f"Calibrated on {calibration['texts']} texts of the dataset's corpus (seed {calibration['seed']}, "
                     f"sha256 `{calibration['sha256']}`).")
    return lines
