"""The partial folder a fine-tuning runs in, its state, and resuming from checkpoints.

A run trains in ``<out>/../.<out name>.partial``: the trainer's checkpoints, ``state.json``
(the run key and every finished stage) and whatever a stage leaves for the next (the
pass-1 model, mined negatives). ``publish`` renames the finished model folder to ``out``,
so a folder at ``out`` is always complete; Ctrl-C leaves the partial folder for
``--resume``, which continues only a run of the same data and options.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.files import write_json

STATE_JSON = "state.json"


def work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def run_key(kind: str, base: str, data_hash: str, parameters: dict[str, Any]) -> str:
    """What a resumed run must share with the one it continues: kind, base model, data, options."""
    blob = json.dumps([kind, base, data_hash, parameters], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: unreadable ({exc.__class__.__name__}); remove {path.parent} and start again") from None


def prepare_work_dir(out: Path, resume: bool, key: str) -> tuple[Path, dict[str, Any]]:
    """The partial folder for ``out`` and its state: new, or the unfinished run to resume."""
    out = Path(out)
    work = work_dir(out)
    if out.exists():
        raise HarnessError(f"{out}: already exists; choose another --out or remove it")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    if work.exists() and not resume:
        raise HarnessError(f"{work}: an unfinished run is there; add --resume to continue it, or remove the folder")
    if resume:
        if not work.exists():
            raise HarnessError(f"{work}: nothing to resume (no unfinished run for {out})")
        state = _read_json(work / STATE_JSON) if (work / STATE_JSON).exists() else None
        if not isinstance(state, dict) or "run_key" not in state:
            raise HarnessError(f"{work / STATE_JSON}: missing or corrupt; remove {work} and start again")
        if state["run_key"] != key:
            raise HarnessError(f"{work}: the unfinished run used other data or options; rerun with the same ones, or remove it")
        return work, state
    work.mkdir(parents=True)
    state = {"run_key": key, "stages": {}}
    save_state(work, state)
    return work, state


def save_state(work: Path, state: dict[str, Any]) -> None:
    write_json(work / STATE_JSON, state, default=str)


@contextmanager
def keep_partial_on_interrupt(work: Path) -> Iterator[None]:
    """Ctrl-C becomes a one-line error that says how to go on; the partial folder stays."""
    try:
        yield
    except KeyboardInterrupt:
        raise HarnessError(f"interrupted: checkpoints kept in {work}; run the same command with --resume to continue") from None


def final_dir(work: Path) -> Path:
    """An empty ``final`` folder in the partial folder, where the finished model is assembled."""
    final = work / "final"
    if final.exists():
        shutil.rmtree(final)
    return final


def publish(final: Path, out: Path, work: Path) -> None:
    """Rename the finished folder to ``out`` (one atomic step) and drop the partial folder."""
    os.replace(final, out)
    shutil.rmtree(work, ignore_errors=True)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder, checked; a corrupt one is a one-line error."""
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-"):
            try:
                found.append((int(child.name.split("-", 1)[1]), child))
            except ValueError:
                continue
    if not found:
        return None
    checkpoint = max(found)[1]
    check_checkpoint(checkpoint)
    return checkpoint


def check_checkpoint(checkpoint: Path) -> None:
    def corrupt(reason: str) -> HarnessError:
        return HarnessError(f"{checkpoint}: corrupt checkpoint ({reason}); remove it to resume from the one before, or start again")

    state_file = checkpoint / "trainer_state.json"
    if not state_file.is_file():
        raise corrupt("trainer_state.json is missing")
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        int(state["global_step"])
    except (ValueError, KeyError, TypeError):
        raise corrupt("trainer_state.json is not valid") from None
    weights = [p for p in checkpoint.rglob("*.safetensors")] + [p for p in checkpoint.rglob("pytorch_model.bin")]
    if not weights:
        raise corrupt("no model weights")
    from safetensors import safe_open

    for path in weights:
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="pt") as handle:
                    list(handle.keys())
            except Exception as exc:  # safetensors raises its own error types
                raise corrupt(f"{path.name} is unreadable: {str(exc).splitlines()[0][:80]}") from None
    if not (checkpoint / "optimizer.pt").is_file():
        raise corrupt("optimizer.pt is missing")


def train_resumably(trainer: Any, checkpoints: Path, resume: bool) -> tuple[Any, Path | None]:
    """``trainer.train()``, from the latest checkpoint in ``checkpoints`` when resuming.

    Returns the trainer's output and the checkpoint it resumed from; a checkpoint the
    trainer cannot resume from is a one-line error.
    """
    checkpoint = latest_checkpoint(checkpoints) if resume else None
    try:
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except (HarnessError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if checkpoint is not None:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HarnessError(f"{checkpoint}: cannot resume from this checkpoint ({first[:120]}); remove it and try again") from None
        raise
    return output, checkpoint
