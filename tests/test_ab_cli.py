"""``harness ab`` on the command line: the way back for quarantined rows, and one-line
errors (exit 3) that leave every store as it was."""

from __future__ import annotations

import json

import duckdb
import pytest
from test_ab_analysis import exit_code
from test_ab_store import EXP, click, exposure, write_jsonl


@pytest.fixture
def logs(tmp_path):
    (tmp_path / "experiment.json").write_text(json.dumps(EXP))
    write_jsonl(tmp_path / "events.jsonl", [exposure("x1"), click("c1", "x1"), exposure("x2", user="u2", variant="B"),
                                            exposure("x3", user="u3"), exposure("x4", user="u4", variant="B")])
    return tmp_path


def error_of(argv, capsys) -> str:
    capsys.readouterr()
    assert exit_code(argv) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err  # one line
    return err


def test_logs_ingested_before_their_experiment_load_after_registration_with_retry(logs, capsys):
    db = str(logs / "ab.duckdb")
    assert exit_code(["ab", "ingest", "--db", db, str(logs / "events.jsonl")]) == 0
    assert exit_code(["ab", "ingest", "--db", db, "--experiment", str(logs / "experiment.json")]) == 0
    out = capsys.readouterr().out
    assert '4 rows were quarantined as of experiment e1 before it was registered' in out and "--retry-quarantined" in out
    assert exit_code(["ab", "ingest", "--db", db, "--retry-quarantined"]) == 0
    assert "retried 4: 4 loaded" in capsys.readouterr().out
    assert exit_code(["ab", "ingest", "--db", db, "--retry-quarantined", str(logs / "events.jsonl")]) == 0
    assert "already ingested" in capsys.readouterr().out  # nothing left in quarantine: nothing to retry
    con = duckdb.connect(db)
    assert con.execute("SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM interactions), "
                       "(SELECT count(*) FROM quarantine)").fetchall() == [(4, 1, 0)]
    con.close()
    assert exit_code(["ab", "analyze", "--db", db, "--propensity", "1,0.5,0.33", "--no-daily"]) == 0


def test_a_failed_ingest_leaves_no_store_behind(logs, capsys):
    db = logs / "new.duckdb"
    (logs / "sub").mkdir()
    err = error_of(["ab", "ingest", "--db", str(db), "--experiment", str(logs / "experiment.json"), str(logs / "sub")], capsys)
    assert err == f"error: {logs / 'sub'}: is a directory, not a log file; give its files or a glob (for example '{logs / 'sub' / '*.jsonl'}')"
    (logs / "clicks.csv").write_text("event_id,exposure_id,position,ts\nc9,x1,1,2025-01-02T10:00:09Z\n")
    err = error_of(["ab", "ingest", "--db", str(db), "--experiment", str(logs / "experiment.json"),
                    str(logs / "events.jsonl"), str(logs / "clicks.csv")], capsys)
    assert err == f"error: {logs / 'clicks.csv'}:1: missing CSV column(s) for interactions: kind (every row would be rejected)"
    error_of(["ab", "ingest", "--db", str(db), str(logs / "missing.jsonl")], capsys)
    assert "no quarantined rows to retry" in error_of(["ab", "ingest", "--db", str(db), "--retry-quarantined"], capsys)
    assert sorted(p.name for p in logs.iterdir()) == ["clicks.csv", "events.jsonl", "experiment.json", "sub"]


def test_the_harness_writes_only_into_its_own_stores(logs, capsys):
    other = logs / "warehouse.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()
    for argv in (["ab", "analyze", "--db", str(other)], ["ab", "decide", "--db", str(other), "--method", "fixed"],
                 ["ab", "interleave", "--db", str(other)], ["ab", "ingest", "--db", str(other), str(logs / "events.jsonl")]):
        assert error_of(argv, capsys) == (f"error: {other}: not a harness A/B store (no meta table with a schema version); "
                                          "the harness writes only into its own stores")
    con = duckdb.connect(str(other))
    assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("sales",)]
    con.close()
    missing = logs / "typo.duckdb"
    analysis = logs / "analysis.json"
    analysis.write_text("{}")
    assert "database does not exist" in error_of(["ab", "analyze", "--db", str(missing)], capsys)
    error_of(["ab", "decide", "--db", str(missing), "--analysis", str(analysis)], capsys)
    assert not missing.exists()  # only ingest and registration make a store
    newer = logs / "newer.duckdb"
    assert exit_code(["ab", "ingest", "--db", str(newer), "--experiment", str(logs / "experiment.json")]) == 0
    con = duckdb.connect(str(newer))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    assert "store schema version '99' is not one this harness reads" in error_of(["ab", "analyze", "--db", str(newer)], capsys)


@pytest.mark.parametrize(("value", "message"), [
    ("1,,0.5", "--propensity '1,,0.5': the value for rank 2 is empty"),
    ("1,0.5,", "--propensity '1,0.5,': the value for rank 3 is empty"),
    ("", "--propensity '': the value for rank 1 is empty"),
    ("1,half", "--propensity '1,half': the value for rank 2, 'half', is not a number"),
    ("1,1.5", "--propensity '1,1.5': the value for rank 2, 1.5, is not in (0, 1]"),
    ("0,0.5", "--propensity '0,0.5': the value for rank 1, 0, is not in (0, 1]"),
    ("1,nan", "--propensity '1,nan': the value for rank 2, nan, is not in (0, 1]"),
])
def test_propensities_are_checked_before_any_work(value, message, tmp_path, capsys):
    # the store does not exist: the option is read first
    for command in ("analyze", "decide"):
        assert error_of(["ab", command, "--db", str(tmp_path / "none.duckdb"), "--propensity", value], capsys) == f"error: {message}"


def test_a_variant_of_a_single_user_is_a_clear_error(logs, capsys):
    db = str(logs / "ab.duckdb")
    write_jsonl(logs / "two.jsonl", [exposure("x1"), exposure("x2", user="u2", variant="B")])
    assert exit_code(["ab", "ingest", "--db", db, "--experiment", str(logs / "experiment.json"), str(logs / "two.jsonl")]) == 0
    assert error_of(["ab", "analyze", "--db", db, "--no-daily"], capsys) == (
        "error: too few users to analyse: variant(s) 'A' (1), 'B' (1) have fewer than 2 users with queries in the window")


def test_a_run_file_is_read_in_the_one_ranking_order(tmp_path):
    from harness.adapters.base import Run
    from harness.cli.ab_rankings import read_trec_run

    scores = {"q1": {"d1": 2.0, "d3": 1.0, "d2": 1.0, "d10": 1.0}, "q2": {"a": 0.5, "b": 0.5}}
    # written in an order of its own (ties by id ascending, a rank column that disagrees)
    lines = ["q1 Q0 d1 1 2.0 x", "q1 Q0 d10 2 1.0 x", "q1 Q0 d2 3 1.0 x", "q1 Q0 d3 4 1.0 x", "q2 Q0 a 1 0.5 x", "q2 Q0 b 2 0.5 x"]
    path = tmp_path / "run.trec"
    path.write_text("\n".join(lines) + "\n")
    read = read_trec_run(path)
    run = Run("x", scores)
    assert read == {"q1": run.ranking("q1"), "q2": run.ranking("q2")}
    assert read["q1"] == ["d1", "d3", "d2", "d10"] and read["q2"] == ["b", "a"]  # trec_eval: score, then id, descending


@pytest.mark.parametrize(("second", "message"), [
    ("q1 Q0 d1 2 0.5 x", "run.trec:2: document 'd1' is listed twice for query 'q1' (first on line 1)"),
    ("q1 Q0 d2 2 nan x", "run.trec:2: score 'nan' is not a finite number"),
])
def test_a_run_file_that_cannot_rank_is_an_error(second, message, tmp_path):
    from harness.cli.ab_rankings import read_trec_run
    from harness.errors import HarnessError

    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d1 1 1.0 x\n" + second + "\n")
    with pytest.raises(HarnessError) as caught:
        read_trec_run(path)
    assert str(caught.value) == f"{path.parent}/{message}"


def test_interleaved_rankings_are_written_whole(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "il" / "interleaved.jsonl"
    argv = ["ab", "interleave", "--data", str(tiny_dataset), "--retriever", "bm25", "--retriever", "bm25(k1=0.9,b=0.4)",
            "--out", str(out), "--cache", str(tmp_path / "cache")]
    assert exit_code(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(row["doc_ids"] for row in rows)
    assert [p.name for p in out.parent.iterdir()] == ["interleaved.jsonl"]  # nothing staged left beside it
