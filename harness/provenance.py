"""What every result file records about how it was made, and the machine's devices.

The device models load, encode, rerank and train on is chosen once a process:
``select_device`` (``--device``) checks a name against this machine; ``auto`` (the
default) leaves the choice to sentence-transformers (a CUDA GPU, Apple's MPS, ..., else
the CPU) and the trainer. ``collect`` records it in every result.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import re
import sys
from typing import Any

import harness
from harness.errors import HarnessError

DEVICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_selected = "auto"

LIBRARIES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "mteb",
    "ranx",
    "bm25s",
    "faiss-cpu",
    "duckdb",
    "ibis-framework",
    "tea-tasting",
    "scipy",
    "statsmodels",
    "numpy",
)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(seed: int | None = None, command: list[str] | None = None) -> dict[str, Any]:
    """Versions, machine, time, seed and command line: enough to reproduce a result."""
    return {
        "harness_version": harness.__version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "command": command if command is not None else sys.argv,
        "python": sys.version.split()[0],
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": _cpu_count(),
            "vector_extensions": cpu_vector_extensions(),
        },
        "device": device_record(),
        "libraries": library_versions(),
    }


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def select_device(name: str) -> str:
    """Make ``name`` the device this process's models run on, once this machine is known to
    have it; an unknown name or a device that is not here is a one-line error."""
    global _selected
    wanted = (name or "auto").strip().lower()
    if not _DEVICE_NAME.fullmatch(wanted):
        raise HarnessError(f"--device {name!r}: not a device name (known: {DEVICES})")
    if wanted.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(wanted.partition(":")[2] or 0)
        if count == 0:
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise HarnessError(f"--device {wanted}: no CUDA GPU on this machine (torch {torch.__version__}, {build}); "
                               "use --device cpu or auto")
        if index >= count:
            raise HarnessError(f"--device {wanted}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif wanted == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise HarnessError("--device mps: Apple's MPS is not available on this machine; use --device cpu or auto")
    _selected = wanted
    return wanted


def selected_device() -> str:
    """The device asked for: ``auto`` or a name ``select_device`` checked."""
    return _selected


def torch_device() -> str:
    """The torch device models run on: the one selected, or the one sentence-transformers
    picks under ``auto``."""
    if _selected == "auto":
        from sentence_transformers.util import get_device_name

        return get_device_name()
    if _selected == "cuda":
        import torch

        return f"cuda:{torch.cuda.current_device()}"
    return _selected


def device_record() -> dict[str, Any]:
    """The device asked for and the one models ran on, with its name (the GPU's where CUDA).

    A process that has not imported sentence-transformers has loaded no model: all it
    computed ran on the CPU, and finding the accelerators would cost a torch import.
    """
    device = torch_device() if "sentence_transformers" in sys.modules else "cpu"
    record: dict[str, Any] = {"requested": _selected, "device": device}
    if device.startswith("cuda"):
        import torch

        record["name"] = torch.cuda.get_device_name(device)
        record["cuda"] = torch.version.cuda
    elif device == "cpu":
        record["name"] = _cpu_name()
    return record


# The CPU's vector extensions that decide how fast a backend encodes: OpenVINO runs bf16 only
# with avx512_bf16 or amx_bf16 and gains from int8 only with a VNNI extension (on plain AVX2 it
# measured 0.96x PyTorch, docs/scaling.md). The model name alone does not tell them apart: a VM
# shows "AMD EPYC" for Zen 3 (AVX2) and Zen 4 (AVX-512, VNNI, BF16) alike.
VECTOR_EXTENSIONS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_vector_extensions() -> list[str] | None:
    """Which of ``VECTOR_EXTENSIONS`` this CPU has, from Linux's /proc/cpuinfo (None elsewhere)."""
    flags = _cpuinfo_field("flags")
    if flags is None:
        return None
    present = set(flags.split())
    return [name for name in VECTOR_EXTENSIONS if name in present]


def _cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line of /proc/cpuinfo (None where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None
