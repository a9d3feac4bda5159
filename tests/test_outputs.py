"""Outputs appear whole or not at all, and ``--out`` is checked before any work.

The interruptions are real: ``harness`` runs as a subprocess that sends itself SIGINT
(Ctrl-C) or SIGKILL at a chosen moment of its writing, found by an audit hook on the
file opens and renames the harness itself makes; the files are real files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_beir
from test_gate import run_main

BASELINE, CANDIDATE, OTHER = "bm25", "bm25(k1=0.9,b=0.4)", "bm25(b=0.5)"

# Runs the harness command line; on the AFTER-th audit event EVENT ("open" for writing or
# "os.rename", which os.replace raises too) whose path holds TRIGGER, it signals itself.
INTERRUPTER = """\
import os, signal, sys
# a user's Ctrl-C reaches a process whose SIGINT is Python's own handler; a child inherits an
# ignored SIGINT from its parent, and pytest started in the background (`make test &`: a shell
# without job control starts background commands with SIGINT ignored) passes one down
signal.signal(signal.SIGINT, signal.default_int_handler)
from harness.cli import main

event_wanted, trigger, signal_name, after = sys.argv[1:5]
seen = 0

def hook(event, args):
    global seen
    if event != event_wanted or seen >= int(after):
        return
    path = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else ""
    writing = event != "open" or (isinstance(args[1], str) and any(c in args[1] for c in "wxa"))
    if trigger in path and writing:
        seen += 1
        if seen == int(after):
            os.kill(os.getpid(), getattr(signal, signal_name))

sys.addaudithook(hook)
main(sys.argv[5:])
"""


def interrupted(tmp_path: Path, event: str, trigger: str, signal_name: str, *args: str, after: int = 1) -> subprocess.CompletedProcess:
    script = tmp_path / "interrupter.py"
    script.write_text(INTERRUPTER, encoding="utf-8")
    return subprocess.run([sys.executable, str(script), event, trigger, signal_name, str(after), *args],
                          capture_output=True, text=True, timeout=600)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def named_run_files(out: Path) -> set[str]:
    result = json.loads((out / "result.json").read_text())
    return {path for r in result["retrievers"] for path in r["run_files"].values()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "data")


def eval_args(data: Path, out: Path, *specs: str) -> list[str]:
    return ["eval", "--data", str(data), *[a for s in specs for a in ("--retriever", s)], "--metric", "ndcg@10",
            "--out", str(out), "--cache", str(out.parent / "cache")]


# ---------------------------------------------------------------------------- --out checked first


@pytest.mark.parametrize("command", ["eval", "compare", "gate", "report"])
@pytest.mark.parametrize("place", ["a file", "under a file", "unwritable"])
def test_an_out_that_cannot_be_written_is_one_line_exit_3_before_any_work(tmp_path: Path, command: str, place: str) -> None:
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("not a folder\n")
    target = {"a file": blocker, "under a file": blocker / "out", "unwritable": Path("/proc/harness-out")}[place]
    missing = str(tmp_path / "no-such-input")  # were any work done first, this would be the error
    args = {
        "eval": ["eval", "--data", missing, "--retriever", "bm25", "--out", str(target)],
        "compare": ["compare", missing, "--baseline", "bm25", "--out", str(target)],
        "gate": ["gate", "--policy", missing, "--out", str(target)],
        "report": ["report", missing, "--html", str(target / "report.html" if place == "unwritable" else target)],
    }[command]
    if command == "report" and place == "a file":
        args[-1] = str(tmp_path)  # a folder where the file should go
    code, output = run_main(*args)
    assert code == 3, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --"), output
    expected = {
        "a file": "is a folder, not a file" if command == "report" else "is a file, not a folder",
        "under a file": f"{blocker} is a file, not a folder",
        "unwritable": "cannot write in /proc",
    }[place]
    assert expected in lines[0], output
    assert blocker.read_text() == "not a folder\n"



@pytest.mark.parametrize(("command", "folder"), [
    ("ab simulate", True), ("demo", True), ("ab analyze", False), ("ab decide", False), ("ab interleave", False),
])
@pytest.mark.parametrize("place", ["the wrong kind", "under a file"])
def test_an_ab_or_demo_out_that_cannot_be_written_is_one_line_exit_3_before_any_work(
    tmp_path: Path, command: str, folder: bool, place: str
) -> None:
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("not a folder\n")
    target = (blocker if folder else tmp_path) if place == "the wrong kind" else blocker / "out"
    missing = str(tmp_path / "no-such-input")  # were any work done first, this would be the error
    args = {
        "ab simulate": ["ab", "simulate", "--data", missing, "--retriever", "bm25", "--retriever", "dense"],
        "demo": ["demo", "--data", missing],
        "ab analyze": ["ab", "analyze", "--db", missing],
        "ab decide": ["ab", "decide", "--db", missing],
        "ab interleave": ["ab", "interleave", "--data", missing, "--retriever", "bm25", "--retriever", "dense"],
    }[command]
    code, output = run_main(*args, "--out", str(target))
    assert code == 3, output
    expected = {
        "the wrong kind": "is a file, not a folder" if folder else "is a folder, not a file",
        "under a file": f"{blocker} is a file, not a folder",
    }[place]
    assert output.strip() == f"error: --out {target}: {expected}", output
    assert blocker.read_text() == "not a folder\n"


# ---------------------------------------------------------------------------- eval: result and runs together


def test_a_reused_out_keeps_only_the_run_files_its_result_names(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_main(*eval_args(data, out, BASELINE, CANDIDATE))[0] == 0
    first = named_run_files(out)
    assert len(first) == 2 and {f"runs/{p.name}" for p in (out / "runs").iterdir()} == first
    assert run_main(*eval_args(data, out, OTHER))[0] == 0
    assert {f"runs/{p.name}" for p in (out / "runs").iterdir()} == named_run_files(out) != first
    assert len(named_run_files(out)) == 1 and leftovers(out) == []


@pytest.mark.parametrize(("trigger", "after"), [(".runs.partial-", 2), (".result.json.partial-", 1)])
def test_ctrl_c_while_an_eval_writes_leaves_the_previous_outputs_and_no_orphans(data: Path, tmp_path: Path, trigger: str, after: int) -> None:
    out = tmp_path / "out"
    assert run_main(*eval_args(data, out, BASELINE, CANDIDATE))[0] == 0
    before = snapshot(out)
    done = interrupted(tmp_path, "open", trigger, "SIGINT", *eval_args(data, out, OTHER, BASELINE), after=after)
    assert done.returncode == 130 and done.stderr.split() == ["interrupted"], done.stderr
    assert snapshot(out) == before and leftovers(out) == []


def test_a_killed_eval_leaves_the_previous_outputs_and_the_next_one_clears_its_remains(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_main(*eval_args(data, out, BASELINE, CANDIDATE))[0] == 0
    before = snapshot(out)
    done = interrupted(tmp_path, "open", ".result.json.partial-", "SIGKILL", *eval_args(data, out, OTHER))
    assert done.returncode == -9, done.stderr
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".")} == before
    assert leftovers(out)  # the killed process could not clean up: the next run does
    assert run_main(*eval_args(data, out, OTHER))[0] == 0
    assert leftovers(out) == [] and {f"runs/{p.name}" for p in (out / "runs").iterdir()} == named_run_files(out)


def test_ctrl_c_during_the_swap_waits_until_the_outputs_are_in_place(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_main(*eval_args(data, out, BASELINE, CANDIDATE))[0] == 0
    done = interrupted(tmp_path, "os.rename", ".runs.partial-", "SIGINT", *eval_args(data, out, OTHER))
    assert done.returncode == 130 and done.stderr.split() == ["interrupted"], done.stderr
    specs = [r["spec"] for r in json.loads((out / "result.json").read_text())["retrievers"]]
    assert specs == [OTHER] and {f"runs/{p.name}" for p in (out / "runs").iterdir()} == named_run_files(out)
    assert leftovers(out) == []


# ---------------------------------------------------------------------------- compare, gate, report


def test_ctrl_c_while_compare_gate_or_report_writes_leaves_the_previous_outputs(data: Path, tmp_path: Path) -> None:
    evaluated = tmp_path / "eval"
    assert run_main(*eval_args(data, evaluated, BASELINE, CANDIDATE, OTHER))[0] == 0
    result = str(evaluated / "result.json")
    policy = tmp_path / "gate.toml"
    policy.write_text(f'baseline = "{BASELINE}"\ncandidate = "{CANDIDATE}"\nresults = ["{result}"]\nn_resamples = 999\n\n'
                      '[[check]]\ntype = "non-inferiority"\nsuite = "heldout"\nmetric = "ndcg@10"\nmargin = 0.5\n')
    out = tmp_path / "out"
    commands = {
        # command: (first run, second run, a file the second run is stopped while writing)
        "compare": (["compare", result, "--baseline", BASELINE, "--resamples", "999", "--out", str(out / "compare")],
                    ["compare", result, "--baseline", OTHER, "--resamples", "999", "--out", str(out / "compare")], ".compare.md.partial-"),
        "gate": (["gate", "--policy", str(policy), "--out", str(out / "gate")],
                 ["gate", "--policy", str(policy), "--candidate", OTHER, "--out", str(out / "gate")], ".junit.xml.partial-"),
        "report": (["report", result, "-q", "--markdown", str(out / "report" / "r.md"), "--json", str(out / "report" / "r.json"),
                    "--html", str(out / "report" / "r.html")],
                   ["report", result, "-q", "--title", "another", "--markdown", str(out / "report" / "r.md"),
                    "--json", str(out / "report" / "r.json"), "--html", str(out / "report" / "r.html")], ".r.html.partial-"),
    }
    for command, (first, second, trigger) in commands.items():
        assert run_main(*first)[0] in (0, 1, 2), command
        before = snapshot(out)
        done = interrupted(tmp_path, "open", trigger, "SIGINT", *second)
        assert done.returncode == 130 and done.stderr.split() == ["interrupted"], (command, done.stderr)
        assert snapshot(out) == before and leftovers(out) == [], command
