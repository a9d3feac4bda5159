"""The HTML report in a real headless Chromium: it renders without errors, its figures load,
its tables sort, and screenshots are saved: the whole report, and each kind of figure on a
page of its own (in the test's output folder and, when ``HARNESS_SCREENSHOTS=DIR`` is set,
in DIR too, for a reviewer to look at the layout).

Chromium comes from Debian's packages (``apt-get install chromium``; ``.ci/run`` installs
it). Without it the test is skipped with a message that says so.

How errors are seen: the page traps script errors, ``console.error`` calls and resources
that fail to load into ``#report-errors`` and sets ``<body data-report-status>`` to ``ok``
or ``errors`` once loaded; ``chromium --dump-dom`` prints the DOM after the page's scripts
ran. Chromium's own log (``--enable-logging=stderr``) is read as well for console messages.
A control page with a deliberate error checks that this detection works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.reports import html
from harness.reports.document import Report, Section
from harness.reports.sections import build_report

from test_report import FIGURE_KINDS, SPECS, ab_analysis_result, compare_result, every_kind_results, write_json

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    explicit = os.environ.get("HARNESS_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else shutil.which(explicit)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed: the browser test of the HTML report needs it "
    "(Debian: apt-get install chromium; .ci/run installs it; or set HARNESS_CHROMIUM=/path/to/chrome)",
)


def chromium(args: list[str], profile: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        *args,
    ]
    env = dict(os.environ, HOME=str(profile))
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def console_errors(stderr: str) -> list[str]:
    """Console messages Chromium logged for the page (uncaught errors, failed loads)."""
    lines = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return [line for line in lines if re.search(r"error|uncaught|failed|refused", line, re.I)]


def load(page: Path, tmp_path: Path, fragment: str = "") -> tuple[str, str]:
    result = chromium(["--dump-dom", page.as_uri() + fragment], tmp_path / f"profile-dom{fragment.strip('#')}")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    from conftest import write_beir

    from harness.evaluate import evaluate

    root = tmp_path_factory.mktemp("browser")
    data = write_beir(root / "tiny")
    evaluate(data, SPECS, ["heldout", "slice:subdomain=identity"], out=root / "eval", cache_dir=root / "cache")
    files = [
        root / "eval" / "result.json",
        write_json(root / "compare.json", compare_result()),
        write_json(root / "analysis.json", ab_analysis_result()),
    ]
    return html.write(build_report(files), root / "report.html")


def test_report_renders_in_chromium_without_errors(report_page: Path, tmp_path: Path) -> None:
    dom, stderr = load(report_page, tmp_path)
    assert 'data-report-status="ok"' in dom, re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.S)
    errors = re.search(r'<pre id="report-errors"([^>]*)>(.*?)</pre>', dom, re.S)
    assert errors is not None and "hidden" in errors.group(1) and errors.group(2).strip() == ""
    assert console_errors(stderr) == [], console_errors(stderr)
    figures = len(re.findall(r"<img ", dom))
    assert figures >= 6
    assert f'data-images="{figures}"' in dom
    assert int(re.search(r'data-sortable-tables="(\d+)"', dom).group(1)) >= 5

    screenshot = tmp_path / "report.png"
    shot = chromium(["--window-size=1280,2400", f"--screenshot={screenshot}", report_page.as_uri()], tmp_path / "profile-shot")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 20_000
    keep(screenshot)
    print(f"screenshot: {screenshot}")


def keep(screenshot: Path) -> None:
    """A copy in $HARNESS_SCREENSHOTS, where it is set."""
    folder = os.environ.get("HARNESS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(folder) / screenshot.name)


def test_a_screenshot_of_every_kind_of_figure(report_page: Path, tmp_path: Path) -> None:
    """Each kind of figure on a page of its own, as the report shows it:
    look at them for legends and labels cut at the edges (test_report checks the same in
    matplotlib's own geometry)."""
    eval_data = json.loads((report_page.parent / "eval" / "result.json").read_text())
    report = build_report(every_kind_results(tmp_path, eval_data))
    first_of_kind = {}
    # the evaluation under the demo's arm names first: its long specs are what a legend must fit
    for section in sorted(report.sections, key=lambda s: not s.source.endswith("demo-arms.json")):
        for figure in section.figures:
            first_of_kind.setdefault(figure.plot, (section, figure))
    assert set(first_of_kind) >= FIGURE_KINDS
    for plot, (section, figure) in sorted(first_of_kind.items()):
        page = html.write(Report(f"Figure kind {plot}", [Section(section.title, section.kind, section.source, key="s0", figures=[figure])], []),
                          tmp_path / f"{plot}.html")
        screenshot = tmp_path / f"figure-{plot}.png"
        shot = chromium(["--window-size=1280,1100", f"--screenshot={screenshot}", page.as_uri()], tmp_path / f"profile-{plot}")
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert screenshot.is_file() and screenshot.stat().st_size > 10_000, plot
        keep(screenshot)
    print(f"screenshots of every figure kind: {tmp_path}/figure-*.png")


def test_tables_sort_in_chromium(report_page: Path, tmp_path: Path) -> None:
    dom, _ = load(report_page, tmp_path, "#selftest-sort")
    match = re.search(r'data-sort-selftest="([^"]+)"', dom)
    assert match is not None, "the sort self-test did not run"
    assert match.group(1).startswith("ok:") and int(match.group(1)[3:]) >= 3, match.group(1)
    assert 'aria-sort="descending"' in dom


def test_the_error_trap_catches_a_broken_page(report_page: Path, tmp_path: Path) -> None:
    """Control: a script error and a missing image must turn the status to errors."""
    page = report_page.read_text(encoding="utf-8").replace(
        "</main>", '<img src="missing-image.png" alt="broken"><script>notDefinedAnywhere();</script></main>'
    )
    broken = tmp_path / "broken.html"
    broken.write_text(page, encoding="utf-8")
    dom, _ = load(broken, tmp_path)
    assert 'data-report-status="errors"' in dom
    assert "notDefinedAnywhere" in dom and "missing-image.png" in dom
