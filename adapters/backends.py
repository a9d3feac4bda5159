"""Encoding backends of a dense arm: PyTorch (the default), OpenVINO fp32 and OpenVINO static int8.

``dense:MODEL(backend=openvino)`` encodes with the model exported to OpenVINO IR by
sentence-transformers itself (``SentenceTransformer(path, backend="openvino")``);
``quant=int8`` adds NNCF's post-training static quantisation through sentence-transformers'
``export_static_quantized_openvino_model``, calibrated on a seeded sample of the evaluated
corpus's own texts (never a hub data set: the helper's default is glue/sst2).

An exported model is an arm of its own: its key is the source model's fingerprint, the backend,
the quantisation and (int8) the calibration sample's hash. That key names the exported folder,
cached under ``<cache>/backends/<key>/`` (a second evaluation exports nothing), the embedding
cache's namespace (an int8 arm is never served torch vectors) and the model's fingerprint, so
anything that keys on ``fingerprint(model)`` (MTEB's cache) tells the arms apart too.

``backend=onnx`` is refused: sentence-transformers loads ONNX through optimum-onnx, whose newest
release needs transformers<4.58, and the project runs transformers 5. The OpenVINO stack
(optimum-intel) needs transformers<5.6, so it lives in an environment of its own:
``make openvino`` (``constraints-openvino.txt`` says why).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

BACKENDS = ("torch", "openvino", "onnx")
QUANTISATIONS = ("int8",)
# optimum-intel's default calibration size; more texts cost export time, not accuracy here
CALIBRATION_SAMPLES = 300
CALIBRATION_SEED = 0
OPENVINO_FILE = "openvino/openvino_model.xml"
INT8_SUFFIX = "qint8_quantized"
INT8_FILE = f"openvino/openvino_model_{INT8_SUFFIX}.xml"
INSTALL_HINT = "install the openvino extra in its own environment: make openvino (README, 'Encoding backends')"


@dataclass(frozen=True)
class EncodingBackend:
    """What encodes a dense arm's texts: ``name`` (torch, openvino) and ``quantisation`` (None, int8)."""

    name: str = "torch"
    quantisation: str | None = None

    @classmethod
    def parse(cls, backend: str | None, quant: str | None) -> "EncodingBackend":
        """The backend of a spec's options, refused in one line when it cannot run here."""
        name = backend or "torch"
        if name not in BACKENDS:
            raise HarnessError(f"dense: unknown backend {name!r} (known: {', '.join(BACKENDS)})")
        if name == "onnx":
            raise HarnessError("dense: backend=onnx is not available: sentence-transformers loads ONNX through "
                               "optimum-onnx, which needs transformers<4.58 (the project runs transformers 5); "
                               "use backend=openvino")
        if quant is not None and quant not in QUANTISATIONS:
            raise HarnessError(f"dense: unknown quant {quant!r} (known: {', '.join(QUANTISATIONS)})")
        if quant is not None and name != "openvino":
            raise HarnessError(f"dense: quant={quant} needs backend=openvino")
        chosen = cls(name, quant)
        chosen.check_installed()
        return chosen

    @property
    def is_torch(self) -> bool:
        return self.name == "torch"

    def check_installed(self) -> None:
        if self.is_torch:
            return
        missing = [module for module in ("openvino", "optimum", "nncf") if importlib.util.find_spec(module) is None]
        if not missing and importlib.util.find_spec("optimum.intel") is None:
            missing.append("optimum-intel")
        if missing:
            raise HarnessError(f"dense: backend={self.name} needs {', '.join(missing)}: {INSTALL_HINT}")

    def key(self, source_fingerprint: str, calibration: Sequence[str] | None) -> str:
        """The arm's key: the source fingerprint for torch, else with backend, quantisation, calibration."""
        if self.is_torch:
            return source_fingerprint
        parts = [source_fingerprint, self.name]
        if self.quantisation:
            parts += [self.quantisation, calibration_hash(self._calibration(calibration))]
        return "+".join(parts)

    def describe(self, calibration: Sequence[str] | None) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "quantisation": self.quantisation}
        if self.quantisation and calibration is not None:
            info["calibration"] = {"texts": len(calibration), "sha256": calibration_hash(calibration),
                                   "source": "the evaluated corpus", "seed": CALIBRATION_SEED}
        return info

    def _calibration(self, calibration: Sequence[str] | None) -> Sequence[str]:
        if calibration is None:
            raise HarnessError(f"dense: quant={self.quantisation} calibrates on the evaluated corpus: "
                               "the arm must index a corpus before it encodes anything")
        return calibration


def calibration_sample(texts: Sequence[str], size: int = CALIBRATION_SAMPLES) -> list[str]:
    """Up to ``size`` distinct non-blank texts, a seeded sample in corpus order."""
    distinct = list(dict.fromkeys(text for text in texts if text.strip()))
    if len(distinct) <= size:
        return distinct
    chosen = sorted(random.Random(CALIBRATION_SEED).sample(range(len(distinct)), size))
    return [distinct[index] for index in chosen]


def calibration_hash(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def load_backend_model(source: Any, source_path: str, backend: EncodingBackend, source_fingerprint: str,
                       calibration: Sequence[str] | None, cache_dir: Path) -> Any:
    """The SentenceTransformer of ``source`` (the loaded torch model of ``source_path``) on
    ``backend``, exported into the cache the first time, loaded from it after."""
    from harness.provenance import selected_device

    if selected_device() not in ("auto", "cpu"):
        raise HarnessError(f"dense: backend={backend.name} encodes on the CPU, not on --device {selected_device()}")
    key = backend.key(source_fingerprint, calibration)
    folder = Path(cache_dir) / "backends" / key
    model_file = INT8_FILE if backend.quantisation else OPENVINO_FILE
    if not (folder / model_file).is_file():
        _export(source, source_path, backend, source_fingerprint, calibration, folder)
    model = _load_openvino(folder, model_file)
    model.max_seq_length = source.max_seq_length
    model._harness_fingerprint = key
    return model


def _export(source: Any, source_path: str, backend: EncodingBackend, source_fingerprint: str,
            calibration: Sequence[str] | None, folder: Path) -> None:
    """Export into ``folder`` whole or not at all: fp32 from the source, int8 from the cached fp32."""
    from harness.files import staged

    if backend.quantisation:
        fp32_folder = folder.parent / EncodingBackend("openvino").key(source_fingerprint, None)
        if not (fp32_folder / OPENVINO_FILE).is_file():
            _export(source, source_path, EncodingBackend("openvino"), source_fingerprint, None, fp32_folder)
        fp32 = _load_openvino(fp32_folder, OPENVINO_FILE)
        with staged(folder) as (staging,):
            fp32.save_pretrained(str(staging))
            _quantise(fp32, backend._calibration(calibration), staging)
            for fp32_file in (staging / OPENVINO_FILE, (staging / OPENVINO_FILE).with_suffix(".bin")):
                fp32_file.unlink()  # the int8 folder holds the int8 model only
            _write_provenance(staging, source_path, source_fingerprint, backend, calibration)
        return
    from harness.adapters.models import load_backend_sentence_transformer

    exported = load_backend_sentence_transformer(source_path, backend.name)
    exported.max_seq_length = source.max_seq_length
    with staged(folder) as (staging,):
        exported.save_pretrained(str(staging))
        _write_provenance(staging, source_path, source_fingerprint, backend, None)


def _quantise(fp32: Any, calibration: Sequence[str], folder: Path) -> None:
    """NNCF static int8 through sentence-transformers' helper, calibrated on ``calibration``: the
    helper reads a data set by name, so the texts go to a local JSON-lines folder it loads."""
    from optimum.intel import OVQuantizationConfig
    from sentence_transformers.backend import export_static_quantized_openvino_model

    if not calibration:
        raise HarnessError("dense: quant=int8 has no corpus text to calibrate on")
    _cap_max_length(fp32.tokenizer, fp32.max_seq_length)
    with tempfile.TemporaryDirectory(prefix="harness-calibration-") as data:
        with open(Path(data) / "train.jsonl", "w", encoding="utf-8") as handle:
            for text in calibration:
                handle.write(json.dumps({"text": text}) + "\n")
        try:
            export_static_quantized_openvino_model(
                fp32, OVQuantizationConfig(num_samples=len(calibration)), str(folder),
                dataset_name=data, dataset_config_name="default", dataset_split="train", column_name="text",
                file_suffix=INT8_SUFFIX,
            )
        except Exception as exc:
            raise HarnessError(f"dense: int8 quantisation failed: {_first_line(exc)}") from exc


def _cap_max_length(tokenizer: Any, limit: int) -> None:
    """Cap ``max_length`` at the model's sequence length on this (throw-away) model's tokenizer.
    The helper pads calibration texts to 384 tokens: past the position table of a model with
    fewer positions, and past the length the arm encodes at, whose activations are the ones to
    calibrate. sentence-transformers exposes the tokenizer read-only, so its class is narrowed."""
    base = type(tokenizer)

    class Capped(base):  # type: ignore[misc, valid-type]
        def __call__(self, *texts: Any, **options: Any) -> Any:
            options["max_length"] = min(options.get("max_length") or limit, limit)
            return super().__call__(*texts, **options)

    tokenizer.__class__ = Capped


def _load_openvino(folder: Path, model_file: str) -> Any:
    from harness.adapters.models import load_backend_sentence_transformer

    return load_backend_sentence_transformer(str(folder), "openvino", model_file)


def _write_provenance(folder: Path, source_path: str, source_fingerprint: str, backend: EncodingBackend,
                      calibration: Sequence[str] | None) -> None:
    from harness.files import write_json

    write_json(folder / "harness_export.json", {"source": source_path, "source_fingerprint": source_fingerprint,
                                                 **backend.describe(calibration)})


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
