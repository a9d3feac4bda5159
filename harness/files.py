"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: str | Path, data: Any, **dumps: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (a temporary file in the same
    folder, then a rename); ``dumps`` go to ``json.dumps`` (``default=str``, ...)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, **dumps) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target
