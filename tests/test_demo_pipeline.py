"""``harness demo`` runs its stages through the real commands (baselines on the tiny data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import requires_minilm


@requires_minilm
def test_demo_baselines_and_report_stages_on_another_folder(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "demo", "--data", str(tiny_dataset), "--out", str(out),
         "--stage", "baselines", "--stage", "report"],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "eval-baselines" / "result.json").read_text())
    assert [r["spec"] for r in result["retrievers"]] == ["bm25", "dense", "hybrid(bm25,dense)"]
    assert {s["name"] for s in result["suites"]} == {"heldout:test", "slice:doc-disjoint"}
    assert "stage baselines took" in done.stderr and "total" in done.stderr
    assert (out / "report.html").is_file() and f"report: {(out / 'report.html').resolve()}" in done.stdout


def test_unknown_stage_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "demo", "--out", str(tmp_path), "--stage", "everything"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 3 and "everything" in done.stderr
