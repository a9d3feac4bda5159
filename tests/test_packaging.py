"""The installed import names: the harness's folders never collide with another package's."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERIC = ("adapters", "suites", "reports")


def test_a_users_own_adapters_suites_and_reports_packages_do_not_shadow_the_harness(tmp_path: Path) -> None:
    # a user's project (or AdapterHub's `adapters`) first on sys.path, as in a notebook run from it
    for name in GENERIC:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"OWNER = 'user-{name}'\n")
    script = (
        "import adapters, suites, reports\n"
        "assert (adapters.OWNER, suites.OWNER, reports.OWNER) == ('user-adapters', 'user-suites', 'user-reports')\n"
        "from harness.adapters import build_retriever\n"
        "from harness.suites import parse_suite\n"
        "from harness.reports.html import render\n"
        "import harness.cli, harness.evaluate, harness.gate\n"
        "assert build_retriever and parse_suite('heldout') and render\n"
        "assert not hasattr(adapters, 'build_retriever')\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_every_package_folder_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"harness": "harness", **config["package-dir"]}
    found = set()
    for package, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found == set(config["packages"])
