"""``harness gate``: policy validation (exit 3 naming key and line), verdicts, exit codes, outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import HarnessError
from harness.gate import verdict
from harness.policy import load_policy
from harness.results import EvalResult, RetrieverResult, SuiteResult

N = 200


def write_result(path: Path, n: int = N, seed: int = 0) -> Path:
    """A hand-built evaluation result: bm25 baseline, a better, a worse and an equal arm."""
    rng = np.random.default_rng(seed)
    ids = [f"q{i:03d}" for i in range(n)]
    base = rng.random(n)
    arms = {
        "bm25": base,
        "hybrid(bm25,dense)": np.clip(base + rng.normal(0.08, 0.15, n), 0, 1),
        "dense(dim=16)": np.clip(base - 0.25 + rng.normal(0, 0.05, n), 0, 1),
        "dense": np.clip(base + rng.normal(0.0, 0.15, n), 0, 1),
    }
    per_query = {spec: {"ndcg@10": dict(zip(ids, map(float, v))), "recall@100": dict(zip(ids, map(float, v)))} for spec, v in arms.items()}
    storage = ids[: n // 4]
    suites = [
        SuiteResult("heldout:test", "heldout", "test", ids, {}, per_query),
        SuiteResult("slice:subdomain=storage", "slice", "test", storage, {"outside_slice": n - len(storage)},
                    {s: {m: {q: v[q] for q in storage} for m, v in per.items()} for s, per in per_query.items()}),
    ]
    retrievers = [
        RetrieverResult("bm25", {"kind": "bm25"}, 0.4, {"p50_ms": 1.0, "p95_ms": 2.0, "mean_ms": 1.1}),
        RetrieverResult("hybrid(bm25,dense)", {"kind": "hybrid", "components": [{"kind": "bm25"}, {"kind": "dense", "dimension": 384, "encode_seconds": 12.0}]},
                        13.0, {"p50_ms": 6.0, "p95_ms": 11.0, "mean_ms": 7.0}),
        RetrieverResult("dense(dim=16)", {"kind": "dense", "dimension": 16}, 12.0, {"p50_ms": 5.0, "p95_ms": 9.0, "mean_ms": 6.0}),
        RetrieverResult("dense", {"kind": "dense", "dimension": 384}, 12.0, {"p50_ms": 5.0, "p95_ms": 9.0, "mean_ms": 6.0}),
    ]
    result = EvalResult({"seed": seed}, {"name": "synthetic", "hash": "abc123"}, {"metrics": ["ndcg@10", "recall@100"], "split": "test"},
                        retrievers, suites, {q: f"query text {q}" for q in ids})
    return result.write(path)


POLICY = """\
# a test policy
baseline = "bm25"
candidate = "hybrid(bm25,dense)"
results = ["result.json"]
n_resamples = 999

[[check]]
type = "superiority"
suite = "heldout"
metric = "ndcg@10"

[[check]]
type = "non-inferiority"
suite = "slice:subdomain=storage"
metric = "ndcg@10"
margin = 0.05

[budgets]
p95_latency_ms = 50
dimension = 768
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    write_result(tmp_path / "result.json")
    (tmp_path / "gate.toml").write_text(POLICY, encoding="utf-8")
    return tmp_path


def gate(*args: str):
    return CliRunner().invoke(cli, ["gate", *args], catch_exceptions=True)


def run_main(*args: str) -> tuple[int, str]:
    """In process through ``harness.cli.main``, the installed command's entry point (exit 3 on errors)."""
    import contextlib
    import io

    from harness.cli import main

    stream = io.StringIO()
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, stream.getvalue()


def run_subprocess(*args: str) -> tuple[int, str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


# ---------------------------------------------------------------------------- verdicts


def test_verdict_exit_codes() -> None:
    assert verdict(["pass", "pass"]) == ("pass", 0)
    assert verdict(["pass", "fail", "inconclusive"]) == ("fail", 1)
    assert verdict(["pass", "inconclusive"]) == ("inconclusive", 2)
    assert verdict(["pass", "inconclusive"], inconclusive_blocks=False) == ("inconclusive", 0)


def test_better_candidate_passes_with_outputs(policy_dir: Path) -> None:
    out = policy_dir / "out"
    result = gate("--policy", str(policy_dir / "gate.toml"), "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads((out / "gate.json").read_text())
    assert document["kind"] == "gate" and document["schema_version"] == 1 and document["provenance"]["harness_version"]
    assert [c["status"] for c in document["checks"]] == ["pass", "pass", "pass", "pass"]
    superiority = document["checks"][0]
    assert superiority["numbers"]["ci_low"] > 0 and superiority["numbers"]["p_adjusted"] < 0.05
    assert "one-sided p=" in superiority["reason"]
    assert document["checks"][3]["numbers"]["dimension"] == 384
    suite = ET.fromstring((out / "junit.xml").read_text())
    assert suite.get("tests") == "4" and suite.get("failures") == "0"
    assert [case.get("classname") for case in suite.iter("testcase")][:2] == ["gate.superiority", "gate.non-inferiority"]
    markdown = (out / "gate.md").read_text()
    assert "PASS" in markdown and "| ✅ pass |" in markdown


def test_degraded_candidate_fails(policy_dir: Path) -> None:
    out = policy_dir / "out"
    result = gate("--policy", str(policy_dir / "gate.toml"), "--candidate", "dense(dim=16)", "--out", str(out))
    assert result.exit_code == 1, result.output
    document = json.loads((out / "gate.json").read_text())
    assert document["checks"][0]["status"] == "fail" and "not better" in document["checks"][0]["reason"]
    assert document["checks"][1]["status"] == "fail" and "worse than the margin" in document["checks"][1]["reason"]
    assert document["policy"]["overrides"] == {"candidate": "dense(dim=16)"}
    suite = ET.fromstring((out / "junit.xml").read_text())
    assert suite.get("failures") == "2"
    assert [f.get("type") for f in suite.iter("failure")] == ["fail", "fail"]


def test_small_sample_is_inconclusive_and_recorded(policy_dir: Path) -> None:
    out = policy_dir / "out"
    result = gate("--policy", str(policy_dir / "gate.toml"), "--candidate", "dense", "--max-queries", "20", "--out", str(out))
    assert result.exit_code == 2, result.output
    document = json.loads((out / "gate.json").read_text())
    assert document["status"] == "inconclusive"
    assert document["options"]["max_queries"] == 20
    assert len(document["sampled_query_ids"]["heldout:test"]) == 20
    assert document["checks"][0]["numbers"]["n"] == 20
    statuses = [c["status"] for c in document["checks"]]
    assert "fail" not in statuses and statuses[0] == "inconclusive"
    assert "inconclusive" in ET.tostring(ET.fromstring((out / "junit.xml").read_text()), encoding="unicode")


def test_inconclusive_does_not_block_when_the_policy_says_so(policy_dir: Path) -> None:
    policy = policy_dir / "gate.toml"
    policy.write_text(POLICY.replace('n_resamples = 999', 'n_resamples = 999\ninconclusive_blocks = false'))
    result = gate("--policy", str(policy), "--candidate", "dense", "--max-queries", "20", "--out", str(policy_dir / "o"))
    assert result.exit_code == 0, result.output
    assert "<skipped" in (policy_dir / "o" / "junit.xml").read_text()


def test_min_lift_and_holm_across_superiority_checks(policy_dir: Path) -> None:
    policy = policy_dir / "gate.toml"
    extra = '\n[[check]]\ntype = "superiority"\nsuite = "heldout"\nmetric = "recall@100"\nmin_lift = 0.5\n'
    policy.write_text(POLICY + extra)
    result = gate("--policy", str(policy), "--out", str(policy_dir / "o"))
    assert result.exit_code == 1, result.output
    document = json.loads((policy_dir / "o" / "gate.json").read_text())
    lifted = [c for c in document["checks"] if c["metric"] == "recall@100"][0]
    assert lifted["status"] == "fail" and lifted["numbers"]["min_lift"] == 0.5
    first = document["checks"][0]["numbers"]
    assert first["p_adjusted"] >= first["p_value"]  # Holm across the two superiority checks


def test_budget_failure(policy_dir: Path) -> None:
    policy = policy_dir / "gate.toml"
    policy.write_text(POLICY.replace("p95_latency_ms = 50", "p95_latency_ms = 5"))
    result = gate("--policy", str(policy), "--out", str(policy_dir / "o"))
    assert result.exit_code == 1
    document = json.loads((policy_dir / "o" / "gate.json").read_text())
    assert document["checks"][2]["status"] == "fail" and "exceeds the budget 5 ms" in document["checks"][2]["reason"]


# ---------------------------------------------------------------------------- bad policies -> exit 3


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(
    ("edit", "needle", "message"),
    [
        (lambda t: t.replace("n_resamples = 999", "n_resamples = 999\nbaseline_spec = \"bm25\""), "baseline_spec", "unknown key 'baseline_spec'"),
        (lambda t: t.replace('metric = "ndcg@10"\nmargin', 'metric = "ndgc@10"\nmargin'), "ndgc@10", "unknown metric 'ndgc@10'"),
        (lambda t: t.replace("margin = 0.05", "margin = -0.05"), "margin = -0.05", "'margin' must be positive"),
        (lambda t: t.replace('results = ["result.json"]', 'results = ["missing.json"]'), "missing.json", "does not exist"),
        (lambda t: t.replace("margin = 0.05", "margin = 0.05\nalpha = 0.1"), "alpha = 0.1", "unknown key 'alpha' for a non-inferiority"),
        (lambda t: t.replace('type = "superiority"', 'type = "superior"'), "superior\"", "'type' must be one of"),
        (lambda t: t.replace("dimension = 768", "memory_mb = 100"), "memory_mb", "unknown key 'memory_mb'"),
        (lambda t: t.replace('suite = "heldout"', 'suite = "holdout"'), "holdout", "unknown suite 'holdout'"),
        (lambda t: t.replace('candidate = "hybrid(bm25,dense)"', 'candidate = "hybrid(bm25,"'), "hybrid(bm25,\"", "bad retriever spec"),
        (lambda t: t.replace("n_resamples = 999", "n_resamples = 999\nmin_lift = -0.1").replace(
            'metric = "ndcg@10"\n\n', 'metric = "ndcg@10"\nmin_lift = -0.01\n\n', 1), "min_lift = -0.01", "'min_lift' must be >= 0"),
        (lambda t: t.replace("n_resamples = 999", "n_resamples = 999\nunknown_docs = \"drop\""), "unknown_docs",
         "'unknown_docs' must be one of error, keep, got 'drop'"),
    ],
)
def test_bad_policy_exits_3_naming_key_and_line(policy_dir: Path, edit, needle: str, message: str) -> None:
    policy = policy_dir / "gate.toml"
    text = edit(POLICY)
    if "min_lift = -0.1" in text:  # only the check-level one is under test here
        text = text.replace("n_resamples = 999\nmin_lift = -0.1", "n_resamples = 999")
    policy.write_text(text)
    code, output = run_main("gate", "--policy", str(policy))
    assert code == 3, output
    assert f"{policy}:{line_of(text, needle)}:" in output, output
    assert message in output, output


def test_missing_policy_file_and_bad_toml(tmp_path: Path) -> None:
    code, output = run_subprocess("gate", "--policy", str(tmp_path / "nope.toml"))
    assert code == 3 and "policy file does not exist" in output
    bad = tmp_path / "bad.toml"
    bad.write_text('baseline = "bm25"\ncandidate = \n')
    code, output = run_main("gate", "--policy", str(bad))
    assert code == 3 and f"{bad}:2:" in output and "not valid TOML" in output


def test_missing_dataset_and_missing_required_keys(tmp_path: Path) -> None:
    policy = tmp_path / "gate.toml"
    policy.write_text('baseline = "bm25"\ncandidate = "dense"\ndata = "no-such-folder"\n\n[budgets]\ndimension = 384\n')
    with pytest.raises(HarnessError, match=r"gate.toml:3: 'data': dataset folder 'no-such-folder' does not exist"):
        load_policy(policy)
    policy.write_text('candidate = "dense"\ndata = "."\n')
    with pytest.raises(HarnessError, match="missing required key 'baseline'"):
        load_policy(policy)
    policy.write_text('baseline = "bm25"\ncandidate = "dense"\ndata = "."\n')
    with pytest.raises(HarnessError, match="no checks"):
        load_policy(policy)


def test_error_during_the_run_exits_3_and_never_passes(policy_dir: Path) -> None:
    out = policy_dir / "out"
    code, output = run_main("gate", "--policy", str(policy_dir / "gate.toml"), "--candidate", "rerank(ce,first=bm25)", "--out", str(out))
    assert code == 3 and "not in the results" in output
    assert json.loads((out / "gate.json").read_text())["status"] == "error"
    assert "<error" in (out / "junit.xml").read_text()


def test_example_policy_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    policy = load_policy(root / "examples" / "gate.toml", {"data": root / "tests"})  # any existing folder
    kinds = [c.type for c in policy.checks]
    assert "superiority" in kinds and "non-inferiority" in kinds and "budget" in kinds


def test_gate_evaluates_for_real_on_the_tiny_dataset(tiny_dataset: Path, tmp_path: Path) -> None:
    policy = tmp_path / "gate.toml"
    policy.write_text(
        f'baseline = "bm25"\ncandidate = "bm25(k1=0.9,b=0.4)"\ndata = "{tiny_dataset}"\ncache = "cache"\n'
        'n_resamples = 999\n\n[[check]]\ntype = "non-inferiority"\nsuite = "heldout"\nmetric = "ndcg@10"\nmargin = 0.5\n'
    )
    result = gate("--policy", str(policy), "--out", str(tmp_path / "out"))
    assert result.exit_code in (0, 2), result.output
    assert (tmp_path / "out" / "eval" / "result.json").is_file()
    assert json.loads((tmp_path / "out" / "gate.json").read_text())["checks"][0]["numbers"]["n"] == 5


def test_unknown_docs_keep_loads_judgements_for_documents_missing_from_the_corpus(tiny_dataset: Path, tmp_path: Path) -> None:
    qrels = tiny_dataset / "qrels" / "test.tsv"
    query = qrels.read_text(encoding="utf-8").splitlines()[1].split("\t")[0]
    with open(qrels, "a", encoding="utf-8") as handle:
        handle.write(f"{query}\tno-such-doc\t1\n")
    policy = tmp_path / "gate.toml"
    body = (
        f'baseline = "bm25"\ncandidate = "bm25(k1=0.9,b=0.4)"\ndata = "{tiny_dataset}"\ncache = "cache"\n'
        'n_resamples = 99\n\n[[check]]\ntype = "non-inferiority"\nsuite = "heldout"\nmetric = "ndcg@10"\nmargin = 0.5\n'
    )
    policy.write_text(body)
    code, output = run_main("gate", "--policy", str(policy), "--out", str(tmp_path / "refused"))
    assert code == 3 and "no-such-doc" in output, output  # the default: such a judgement is an error
    policy.write_text(body.replace('cache = "cache"\n', 'cache = "cache"\nunknown_docs = "keep"\n'))
    assert load_policy(policy).unknown_docs == "keep"
    result = gate("--policy", str(policy), "--out", str(tmp_path / "out"))
    assert result.exit_code in (0, 2), result.output
    evaluated = json.loads((tmp_path / "out" / "eval" / "result.json").read_text())
    assert evaluated["options"]["unknown_docs"] == "keep"
    assert evaluated["dataset"]["unretrievable_judgements"] == {"test": 1}


def test_results_override_reads_another_file(policy_dir: Path, tmp_path: Path) -> None:
    other = write_result(tmp_path / "elsewhere" / "other.json", seed=1)
    result = gate("--policy", str(policy_dir / "gate.toml"), "--results", str(other), "--out", str(policy_dir / "o"))
    assert result.exit_code == 0, result.output
    document = json.loads((policy_dir / "o" / "gate.json").read_text())
    assert document["policy"]["results"] == [str(other)]
    code, output = run_main("gate", "--policy", str(policy_dir / "gate.toml"), "--results", str(tmp_path / "nope.json"))
    assert code == 3 and "--results" in output and "does not exist" in output
