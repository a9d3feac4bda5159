"""The sentence-transformers trainers as both fine-tunings set them up: seeds, training
arguments, callbacks (early stopping, a clock inside the epochs), quiet logging, the log."""

from __future__ import annotations

import inspect
import shutil
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.provenance import selected_device


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch
    from transformers import set_seed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    set_seed(seed)


def step_timer() -> Any:
    """A trainer callback summing the time inside epochs (batches, forward, backward,
    optimiser), without the evaluation and checkpointing that follow each epoch."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds = 0.0
            self._start = 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._start:
                self.seconds += time.perf_counter() - self._start
                self._start = 0.0

    return StepTimer()


def check_device() -> None:
    """Before any work: the trainer places the model itself, on the CPU when ``--device cpu``,
    else on the first visible GPU (or MPS), so it cannot be given another GPU by index."""
    device = selected_device()
    if device.startswith("cuda:") and device != "cuda:0":
        raise HarnessError(f"--device {device}: training runs on the first visible GPU; to train on GPU {device[5:]}, "
                           f"run with CUDA_VISIBLE_DEVICES={device[5:]} and --device cuda")


def start(config: Any, data: Any, cache_dir: str | Path | None, pairs_file: str | Path | None,
          llm: dict[str, Any] | None) -> tuple[Path, Any, Any]:
    """What both trainers do before any model loads: check the settings and the device, load
    the dataset and the training pairs. Returns the embedding cache folder, the dataset
    and the :class:`~harness.train.pairs.TrainingData`."""
    from harness.adapters import default_cache_dir
    from harness.data import Dataset, load_dataset
    from harness.train.pairs import load_training_data

    config.validate()
    check_device()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    return cache, dataset, load_training_data(dataset, config, pairs_file, llm)


def trained_on(trainer: Any) -> str:
    """The device the trainer trained on (several GPUs: nn.DataParallel over all of them)."""
    args = trainer.args
    return str(args.device) if args.n_gpu <= 1 else f"{args.device} and {args.n_gpu - 1} more GPU(s), DataParallel"


def checkpoint_scores(folder: Path, log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``checkpoint-N`` folders in ``folder`` with the validation of step N, best first
    (the earlier of equals, as the trainer's best is)."""
    scores = {e["step"]: float(e["eval_val_ndcg@10"]) for e in log_history if "eval_val_ndcg@10" in e}
    found = []
    for child in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = child.name.split("-", 1)[1]
        if child.is_dir() and step.isdigit():
            found.append({"checkpoint": child.name, "step": int(step), "val_ndcg@10": scores.get(int(step))})
    return sorted(found, key=lambda c: (-(c["val_ndcg@10"] if c["val_ndcg@10"] is not None else float("-inf")), c["step"]))


def keep_best_checkpoints(limit: int) -> Any:
    """A trainer callback that keeps, after each checkpoint, the ``limit`` checkpoints with
    the best validation and deletes the others. (The trainer's own ``save_total_limit``
    keeps the latest ones plus the best; the seed articles keep the best 3.)"""
    from transformers import TrainerCallback

    class KeepBestCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            for stale in checkpoint_scores(Path(args.output_dir), state.log_history)[limit:]:
                shutil.rmtree(Path(args.output_dir) / stale["checkpoint"], ignore_errors=True)

    return KeepBestCheckpoints()


def callbacks(evaluations: int, patience: int, keep: int) -> list[Any]:
    """The step timer first, the best ``keep`` checkpoints kept, then early stopping
    (``patience`` validations without a gain) where training validates more than once."""
    from transformers import EarlyStoppingCallback

    chosen: list[Any] = [step_timer(), keep_best_checkpoints(keep)]
    if evaluations > 1 and patience > 0:
        chosen.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return chosen


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, -(-rows // batch_size))


def validations_per_epoch(rows: int, batch_size: int, evaluations_per_epoch: int, min_steps_between: int = 1) -> int:
    """How many times an epoch is validated: ``evaluations_per_epoch`` at most, at least
    ``min_steps_between`` steps apart, and at least once (at its end)."""
    return max(1, min(evaluations_per_epoch, steps_per_epoch(rows, batch_size) // max(1, min_steps_between)))


def validation_steps(rows: int, batch_size: int, evaluations_per_epoch: int, min_steps_between: int = 1) -> int | None:
    """Steps between validations when an epoch is validated more than once (None: at the
    end of each epoch), as ``validations_per_epoch`` counts them."""
    count = validations_per_epoch(rows, batch_size, evaluations_per_epoch, min_steps_between)
    return steps_per_epoch(rows, batch_size) // count if count > 1 else None


def training_arguments(
    cls: Any,
    checkpoints: Path,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    warmup_ratio: float,
    seed: int,
    rows: int,
    evaluations_per_epoch: int = 1,
    min_steps_between_validations: int = 1,
    batch_sampler: Any = None,
) -> Any:
    """``cls`` (the sentence-transformers or cross-encoder training arguments) with the
    harness's schedule: validate and checkpoint at the end of every epoch, or
    ``evaluations_per_epoch`` times an epoch; the best by ``val_ndcg@10`` is loaded at the
    end (``keep_best_checkpoints``, not the trainer's ``save_total_limit``, chooses which
    checkpoints stay); log the loss ten times an epoch (``rows`` training rows), seeded, no
    reporting."""
    from harness.progress import enabled

    every = validation_steps(rows, batch_size, evaluations_per_epoch, min_steps_between_validations)
    kwargs: dict[str, Any] = dict(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=warmup_ratio,  # a float below 1 is a ratio in transformers 5
        eval_strategy="epoch" if every is None else "steps",
        save_strategy="epoch" if every is None else "steps",
        load_best_model_at_end=True,
        metric_for_best_model="val_ndcg@10",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch(rows, batch_size) // 10),
        logging_first_step=True,
        seed=seed,
        data_seed=seed,
        report_to="none",
        disable_tqdm=not enabled(),
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        save_safetensors=True,
        use_cpu=selected_device() == "cpu",  # else the trainer takes a GPU wherever there is one
    )
    if every is not None:
        kwargs["eval_steps"] = kwargs["save_steps"] = every
    if batch_sampler is not None:
        kwargs["batch_sampler"] = batch_sampler
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def quiet(trainer: Any) -> Any:
    """No per-log print lines when progress bars are off; the log goes to training_log.json."""
    from transformers.trainer_callback import PrinterCallback

    from harness.progress import enabled

    if not enabled():
        trainer.remove_callback(PrinterCallback)
    return trainer


def best_validation(record: dict[str, Any], evaluator: Any) -> dict[str, float]:
    """The validation of the checkpoint the trainer loaded at the end (the best one; the
    first of equals, as the trainer keeps it)."""
    validations = [e for e in record["log_history"] if "eval_val_ndcg@10" in e]
    if not validations:
        return {k: v for k, v in evaluator.history[-1].items() if k.startswith("val_")}
    best = max(validations, key=lambda e: e["eval_val_ndcg@10"])
    return {k[len("eval_"):]: float(v) for k, v in best.items() if k.startswith("eval_val_")}


def log_history(trainer: Any) -> list[dict[str, Any]]:
    return [dict(entry) for entry in trainer.state.log_history]


def model_fingerprint(model: Any) -> str:
    """The fingerprint of the weights as they are now (training changed them in place)."""
    from harness.adapters.models import fingerprint

    forget_fingerprint(model)
    return fingerprint(model)


def forget_fingerprint(model: Any) -> None:
    if hasattr(model, "_harness_fingerprint"):
        del model._harness_fingerprint
