"""The set-up (`make setup`): a clean environment, and a wrong torch index refused in one line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pip_check_is_clean_after_setup() -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_torch_index_that_does_not_exist_fails_in_one_line_naming_the_variable(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "setup", f"VENV={venv}", "TORCH_INDEX=file:///nonexistent-torch-index"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]  # make's own trailer
    assert len(errors) == 1 and errors[0].startswith("error: TORCH_INDEX=file:///nonexistent-torch-index: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not venv.exists()  # refused before anything was installed
