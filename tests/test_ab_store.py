"""The A/B log store: schema, validated ingest, quarantine, idempotence, transactions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness.ab import ingest as ing
from harness.ab import schema
from harness.ab import simulate as sim
from harness.ab import staging
from harness.errors import HarnessError

EXP = {"experiment_id": "e1", "variants": ["A", "B"], "start": "2025-01-01T00:00:00Z", "end": "2025-01-15T00:00:00Z"}


def exposure(eid, variant="A", user="u1", ts="2025-01-02T10:00:00Z", docs=("d1", "d2", "d3"), **kw):
    return {"type": "exposure", "event_id": eid, "experiment_id": "e1", "variant": variant, "user_id": user,
            "ts": ts, "doc_ids": list(docs), "query_id": "q1"} | kw


def click(eid, exposure_id, position=1, doc="d1", ts="2025-01-02T10:00:05Z", **kw):
    return {"type": "interaction", "event_id": eid, "exposure_id": exposure_id, "doc_id": doc, "position": position,
            "kind": "click", "dwell_s": 40, "ts": ts} | kw


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path):
    con = schema.connect(tmp_path / "ab.duckdb")
    schema.register_experiment(con, schema.parse_experiment(EXP))
    yield con
    con.close()


def counts(con) -> tuple[int, int, int]:
    return tuple(con.execute(
        "SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM interactions), (SELECT count(*) FROM quarantine)"
    ).fetchall()[0])


def test_ingest_validates_each_row_and_quarantines_with_file_line_reason(store, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [
        exposure("x1"),
        exposure("x2", variant="C"),
        exposure("x1"),
        click("c1", "x1", position=2, doc="d2"),
        click("c2", "x1", position=-1),
        click("c3", "zz", position="2.5"),
        click("c4", "zz", position=[1]),
        '{"type":"interaction","event_id":"c5","exposure',
        "",
        exposure("x9", ts="1970-01-02T10:00:00Z"),
        exposure("x10", ts=1735900000, docs=["d1", 5]),
        click("c6", "x1", position=3, doc="WRONG"),
        click("c7", "x1", position=9, doc="d1"),
        click("c8", "x1", kind="hover"),
        exposure("x11", docs=[]),
        exposure("x12", user=None),
        click("c9", "x1", ts="2025-01-02T09:00:00Z"),
    ])
    [report] = ing.ingest(store, [str(path)], progress=False)
    assert (report.read, report.ingested, report.quarantined) == (17, 3, 14)
    reasons = dict(store.execute("SELECT line, reason FROM quarantine WHERE file = ?", [str(path)]).fetchall())
    assert reasons[2] == 'unknown variant "C"'
    assert reasons[3] == "duplicate event_id (first seen on line 1)"
    assert reasons[5] == "position -1 is out of range"
    assert reasons[6] == 'position "2.5" is not an integer'
    assert reasons[7] == "position must be a string or a number"
    assert reasons[8] == "invalid JSON"
    assert reasons[9] == "empty line"
    assert "outside the experiment window" in reasons[10]
    assert reasons[12] == "doc_id does not match the doc shown at that position"
    assert reasons[13] == "position 9 is beyond the ranking shown"
    assert reasons[14] == "kind must be click or conversion"
    assert reasons[15] == "doc_ids is missing or empty"
    assert reasons[16] == "user_id is missing"
    assert reasons[17] == "timestamp is before its exposure"
    rows = store.execute("SELECT event_id, ts, doc_ids FROM exposures ORDER BY event_id").fetchall()
    assert [r[0] for r in rows] == ["x1", "x10"]
    assert rows[1][2] == ["d1", "5"]  # an epoch timestamp and a numeric id are accepted
    assert str(rows[1][1]) == "2025-01-03 10:26:40"


def test_loading_a_file_twice_adds_nothing_and_duplicates_across_files_are_quarantined(store, tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [exposure("x1"), click("c1", "x1")])
    b = write_jsonl(tmp_path / "b.jsonl", [exposure("x1"), exposure("x2"), click("c1", "x1")])
    first = ing.ingest(store, [str(a)], progress=False)
    before = counts(store)
    again = ing.ingest(store, [str(a)], progress=False)
    assert again[0].skipped and counts(store) == before
    [rb] = ing.ingest(store, [str(b)], progress=False)
    assert (rb.read, rb.ingested, rb.quarantined) == (3, 1, 2)
    assert store.execute("SELECT count(*) FROM quarantine WHERE reason = 'duplicate event_id (already stored)'").fetchall()[0][0] == 2
    assert first[0].ingested == 2


def test_an_error_in_the_middle_of_a_file_leaves_the_database_as_before(store, tmp_path, monkeypatch):
    write_jsonl(tmp_path / "ok.jsonl", [exposure("x0")])
    ing.ingest(store, [str(tmp_path / "ok.jsonl")], progress=False)
    before = counts(store)
    rows = [exposure(f"x{i}", user=f"u{i}") for i in range(1, 300)] + ["garbage"]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    monkeypatch.setattr(staging, "CHUNK_LINES", 50)
    seen = []

    def boom(file, n):
        seen.append(n)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ing.ingest(store, [str(path)], on_chunk=boom, progress=False)
    assert counts(store) == before
    assert store.execute("SELECT count(*) FROM ingested_files").fetchall()[0][0] == 1
    [r] = ing.ingest(store, [str(path)], progress=False)  # and the file loads cleanly afterwards
    assert (r.read, r.ingested, r.quarantined) == (300, 299, 1)


def test_a_killed_ingest_leaves_the_database_as_before(tmp_path):
    db = tmp_path / "ab.duckdb"
    con = schema.connect(db)
    schema.register_experiment(con, schema.parse_experiment(EXP))
    con.close()
    path = write_jsonl(tmp_path / "big.jsonl", [exposure(f"x{i}", user=f"u{i}") for i in range(400)])
    marker = tmp_path / "marker"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from harness.ab import ingest, schema, staging
        staging.CHUNK_LINES = 100
        con = schema.connect({str(db)!r})
        def hang(file, n):
            if n >= 200:
                Path({str(marker)!r}).write_text("x")
                time.sleep(60)
        ingest.ingest(con, [{str(path)!r}], on_chunk=hang, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the ingest did not reach the middle of the file"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    con = schema.connect(db)
    assert counts(con) == (0, 0, 0)
    assert con.execute("SELECT count(*) FROM ingested_files").fetchall()[0][0] == 0
    con.close()


def test_jsonl_csv_and_parquet_ingest_the_same_events(tmp_path):
    cat = sim.synthetic_rankings(50, seed=3)
    cfg = sim.SimConfig(n_users=200, days=3, seed=3, pre_days=1)
    totals = {}
    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / fmt
        summary = sim.write(cat, cfg, out, fmt, progress=False)
        con = schema.connect(tmp_path / f"{fmt}.duckdb")
        schema.register_experiment(con, schema.load_experiment_file(out / "experiment.json"))
        reports = ing.ingest(con, [str(out / f"*.{fmt}")], progress=False)
        assert all(r.quarantined == 0 and r.read == r.ingested for r in reports), reports
        totals[fmt] = (counts(con), con.execute("SELECT sum(len(doc_ids)), count(DISTINCT user_id), min(ts) FROM exposures").fetchall()[0],
                       con.execute("SELECT sum(position), round(sum(dwell_s), 1) FROM interactions").fetchall()[0])
        assert totals[fmt][0][:2] == (summary["exposures"], summary["interactions"])
        con.close()
    assert totals["jsonl"] == totals["csv"] == totals["parquet"]


def test_fuzz_ten_thousand_corrupted_lines_lose_nothing_and_crash_nothing(tmp_path):
    cat = sim.synthetic_rankings(30, seed=5)
    cfg = sim.SimConfig(n_users=400, days=2, seed=5, pre_days=0)
    out = tmp_path / "logs"
    sim.write(cat, cfg, out, "jsonl", progress=False)
    rng = np.random.default_rng(0)
    valid = (out / "exposures.jsonl").read_text().splitlines() + (out / "interactions.jsonl").read_text().splitlines()
    corrupted = [sim.corrupt(valid[i], rng) for i in rng.integers(0, len(valid), 9000)]
    extra = ['{"event_id": 1e999}', '{"type": "exposure", "event_id": null}', "[1,2,3]", '"a string"', "\x00\x01\x02",
             '{"type":"exposure","event_id":"z","experiment_id":"e1","variant":"A","user_id":"u","ts":"2025-13-45","doc_ids":["d"]}',
             '{"type":"interaction","event_id":"y","exposure_id":"x","position":1e3,"kind":"click","ts":"2025-01-01"}']
    corrupted += [extra[i % len(extra)] for i in range(500)]
    corrupted += [valid[i] for i in rng.integers(0, len(valid), 500)]  # duplicated ids
    lines = valid + corrupted
    order = rng.permutation(len(lines))
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(lines[i] + "\n" for i in order), encoding="utf-8")
    con = schema.connect(tmp_path / "fuzz.duckdb")
    schema.register_experiment(con, schema.load_experiment_file(out / "experiment.json"))
    [r] = ing.ingest(con, [str(path)], progress=False)
    assert r.read == len(lines) and r.ingested + r.quarantined == r.read
    assert len(corrupted) >= 10_000
    n_exp, n_int, n_q = counts(con)
    assert n_exp + n_int + n_q == len(lines)
    assert r.quarantined >= 5000
    bad = con.execute("SELECT count(*) FROM quarantine WHERE reason IS NULL OR line IS NULL OR line < 1 OR line > ?", [len(lines)]).fetchall()[0][0]
    assert bad == 0
    # every stored exposure is well-formed
    assert con.execute("SELECT count(*) FROM exposures WHERE variant NOT IN ('control', 'treatment') OR len(doc_ids) = 0 OR ts < TIMESTAMP '2024-01-01'").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM interactions WHERE position < 1 OR kind NOT IN ('click', 'conversion')").fetchall()[0][0] == 0
    con.close()


def test_names_with_quotes_or_sql_cannot_change_a_query(tmp_path):
    import ibis

    from harness.ab import analysis

    evil_exp = "x'); DROP TABLE exposures; --"
    evil_variants = ['a"b', "c'd OR 1=1 --"]
    definition = {"experiment_id": evil_exp, "variants": evil_variants, "start": "2025-01-01T00:00:00", "end": "2025-01-08T00:00:00"}
    con = schema.connect(tmp_path / "ab.duckdb")
    schema.register_experiment(con, schema.parse_experiment(definition))
    rng = np.random.default_rng(1)
    rows = []
    for i in range(400):
        v = evil_variants[i % 2]
        rows.append({"type": "exposure", "event_id": f"x{i}", "experiment_id": evil_exp, "variant": v, "user_id": f"u{i % 200}",
                     "ts": f"2025-01-0{2 + i % 5}T10:00:00", "doc_ids": ["d1", "d2", "d3"], "query_id": "q"})
        if rng.random() < 0.5:
            rows.append({"type": "interaction", "event_id": f"c{i}", "exposure_id": f"x{i}", "doc_id": "d1", "position": 1,
                         "kind": "click", "dwell_s": 50, "ts": f"2025-01-0{2 + i % 5}T10:00:09"})
    rows.append(exposure("evil", variant="a' OR '1'='1") | {"experiment_id": evil_exp})
    path = write_jsonl(tmp_path / "evil.jsonl", rows)
    [r] = ing.ingest(con, [str(path)], progress=False)
    assert r.quarantined == 1 and r.ingested == len(rows) - 1
    exp = schema.get_experiment(con, evil_exp)
    res = analysis.analyze(ibis.duckdb.from_connection(con), exp, analysis.Options(propensities=[1, 0.5, 0.33]), duckdb_con=con)
    assert set(res["variants"]) == set(evil_variants)
    assert sum(v["users"] for v in res["variants"].values()) == 200
    assert con.execute("SELECT count(*) FROM exposures").fetchall()[0][0] == 400  # the table survived
    con.close()


def test_experiment_definitions_are_validated(tmp_path):
    with pytest.raises(HarnessError, match="variants"):
        schema.parse_experiment(EXP | {"variants": ["A"]})
    with pytest.raises(HarnessError, match="unknown metric"):
        schema.parse_experiment(EXP | {"primary_metric": "revenue"})
    with pytest.raises(HarnessError, match="control"):
        schema.parse_experiment(EXP | {"control": "Z"})
    bad = tmp_path / "exp.json"
    bad.write_text("{\n  'x': 1\n}")
    with pytest.raises(HarnessError, match=r"exp.json:2"):
        schema.load_experiment_file(bad)
    con = schema.connect(None)
    schema.register_experiment(con, schema.parse_experiment(EXP))
    assert not schema.register_experiment(con, schema.parse_experiment(EXP))  # identical: no-op
    with pytest.raises(HarnessError, match="different definition"):
        schema.register_experiment(con, schema.parse_experiment(EXP | {"guardrail_margin": 0.1}))
    with pytest.raises(HarnessError, match="no such file"):
        ing.ingest(con, [str(tmp_path / "missing-*.jsonl")], progress=False)


def stored_outcomes(con) -> list[tuple]:
    return con.execute(
        "SELECT event_id, clicks, first_click_pos, click_dwell_max, converted, list_sort(click_positions) "
        "FROM exposure_outcomes ORDER BY event_id"
    ).fetchall()


def stored_user_outcomes(con) -> list[tuple]:
    return con.execute(
        "SELECT experiment_id, user_id, variant_min, variant_max, variant_max, queries, clicked, clicks, successes, rr, "
        "clicks_at_1, clicks_at_2, clicks_at_3, pre_queries, conversions FROM user_outcomes ORDER BY ALL"
    ).fetchall()


def test_the_outcomes_table_follows_every_ingest_whichever_arrives_first(tmp_path):
    import ibis

    from harness.ab import outcomes

    early = write_jsonl(tmp_path / "early.jsonl", [click("c1", "x1", position=2, doc="d2"), click("c2", "x2", position=9, doc=None)])
    shown = write_jsonl(tmp_path / "shown.jsonl", [exposure("x1"), exposure("x2", user="u2"), exposure("x3", user="u3")])
    late = write_jsonl(tmp_path / "late.jsonl", [click("c3", "x1", position=1), click("c4", "x3", position=3, doc="d3", dwell_s=5),
                                                  {**click("c5", "x3", position=3, doc="d3"), "kind": "conversion"}])
    results = []
    for order in ([early, shown, late], [shown, late, early]):
        con = schema.connect(tmp_path / f"{order[0].stem}.duckdb")
        schema.register_experiment(con, schema.parse_experiment(EXP))
        for path in order:
            ing.ingest(con, [str(path)], progress=False)
        assert outcomes.is_current(con)
        raw = ibis.duckdb.from_connection(con)
        expected = outcomes.outcomes(raw.table("exposures"), raw.table("interactions")).to_pyarrow().to_pylist()
        expected = sorted((r["event_id"], r["clicks"], r["first_click_pos"], r["click_dwell_max"], r["converted"],
                           sorted(r["click_positions"]) if r["click_positions"] is not None else None) for r in expected)
        assert stored_outcomes(con) == expected
        per_user = stored_user_outcomes(con)
        outcomes.refresh(con)  # rebuilt from scratch: the same as kept file by file
        assert stored_user_outcomes(con) == per_user
        results.append((stored_outcomes(con), per_user))
        con.close()
    assert results[0] == results[1]
    per_user = {r[1]: r for r in results[0][1]}
    assert per_user["u1"][4:9] == ("A", 1, 1, 2, 1)  # variant, queries, clicked, clicks, successes
    assert per_user["u3"][7:9] == (1, 0) and per_user["u3"][-1] == 1  # a short click; converted
    results = [r[0] for r in results]
    # x1: clicks at 2 then 1; x2: a click beyond the ranking shown (it arrived first) voids it; x3 converted
    assert results[0] == [("x1", 2, 1, 40.0, 0, [1, 2]), ("x2", 0, None, None, 0, None), ("x3", 1, 3, 5.0, 1, [3])]


def test_a_rolled_back_ingest_leaves_the_outcomes_as_before_and_a_stale_table_is_not_read(store, tmp_path):
    import ibis

    from harness.ab import outcomes

    ing.ingest(store, [str(write_jsonl(tmp_path / "a.jsonl", [exposure("x1"), click("c1", "x1")]))], progress=False)
    before = stored_outcomes(store)
    with pytest.raises(HarnessError):
        ing.ingest(store, [str(write_jsonl(tmp_path / "b.jsonl", [exposure("x2"), click("c2", "x1")]))], progress=False,
                   on_chunk=lambda *_: (_ for _ in ()).throw(HarnessError("stop")))
    assert stored_outcomes(store) == before and outcomes.is_current(store)
    # rows written around the ingest: the analysis reads the raw logs until the table is refreshed
    store.execute("INSERT INTO interactions VALUES ('c9', 'x1', 'd2', 2, 'click', 3.0, TIMESTAMP '2025-01-02 10:01:00')")
    assert not outcomes.is_current(store)
    backend = ibis.duckdb.from_connection(store)
    assert outcomes.source(backend).to_pyarrow().to_pylist()[0]["clicks"] == 2
    outcomes.refresh(store)
    assert outcomes.is_current(store) and stored_outcomes(store)[0][1] == 2


def test_rows_quarantined_before_their_experiment_was_registered_load_on_retry(tmp_path):
    from harness.ab import outcomes

    con = schema.connect(tmp_path / "ab.duckdb")  # the logs arrive before the experiment is registered
    path = write_jsonl(tmp_path / "early.jsonl", [
        exposure("x1"), click("c1", "x1"), exposure("x2", user="u2"), "not json", exposure("x3", variant="Z"),
    ])
    [first] = ing.ingest(con, [str(path)], progress=False)
    assert (first.read, first.ingested, first.quarantined) == (5, 1, 4)  # the click waits for its exposure
    reasons = [r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY line").fetchall()]
    assert reasons == ['unknown experiment "e1"'] * 2 + ["invalid JSON", 'unknown experiment "e1"']
    [again] = ing.ingest(con, [str(path)], progress=False)
    assert again.skipped and counts(con) == (0, 1, 4)  # without the retry the file stays as it was

    schema.register_experiment(con, schema.parse_experiment(EXP))
    [retry] = ing.ingest(con, [str(path)], retry_quarantined=True, progress=False)
    assert (retry.read, retry.ingested, retry.quarantined, retry.retried, retry.exposures) == (5, 3, 2, 4, 2)
    assert retry.ingested + retry.quarantined == retry.read
    assert counts(con) == (2, 1, 2)
    assert con.execute("SELECT rows_read, rows_ingested, rows_quarantined FROM ingested_files").fetchall() == [(5, 3, 2)]
    still = con.execute("SELECT line, reason FROM quarantine ORDER BY line").fetchall()
    assert still == [(4, "invalid JSON"), (5, 'unknown variant "Z"')]  # what registration cannot cure stays, with today's reason
    assert outcomes.is_current(con) and stored_outcomes(con)[0][:2] == ("x1", 1)  # the waiting click now counts

    [twice] = ing.ingest(con, [str(path)], retry_quarantined=True, progress=False)
    assert (twice.ingested, twice.quarantined, twice.exposures + twice.interactions) == (3, 2, 0)
    assert counts(con) == (2, 1, 2)
    con.close()


def test_a_retry_reads_the_quarantine_of_the_content_it_is_given_not_of_its_name(tmp_path):
    """Logs rotated under one name: each content keeps its own quarantined rows."""
    con = schema.connect(None)
    path = tmp_path / "events.jsonl"
    write_jsonl(path, [exposure("x1"), exposure("x2")])
    ing.ingest(con, [str(path)], progress=False)
    old_content = path.read_text()
    write_jsonl(path, [exposure("x3")])
    ing.ingest(con, [str(path)], progress=False)
    schema.register_experiment(con, schema.parse_experiment(EXP))
    with pytest.raises(HarnessError, match=r"events.jsonl: 2 of its rows are quarantined, but the file is no longer there"):
        ing.quarantined_files(con)
    [r] = ing.ingest(con, [str(path)], retry_quarantined=True, progress=False)
    assert (r.read, r.ingested, r.quarantined) == (1, 1, 0)
    assert [e[0] for e in con.execute("SELECT event_id FROM exposures").fetchall()] == ["x3"]
    (tmp_path / "old.jsonl").write_text(old_content)  # the first content, found again elsewhere
    [r] = ing.ingest(con, [str(tmp_path / "old.jsonl")], retry_quarantined=True, progress=False)
    assert (r.read, r.ingested, r.quarantined) == (2, 2, 0)
    assert counts(con) == (3, 0, 0)
    con.close()


def test_a_store_of_schema_version_2_is_upgraded_and_its_quarantine_can_be_retried(tmp_path):
    db = tmp_path / "v2.duckdb"
    con = schema.connect(db)
    path = write_jsonl(tmp_path / "a.jsonl", [exposure("x1"), exposure("x2")])
    ing.ingest(con, [str(path)], progress=False)
    con.execute("ALTER TABLE quarantine DROP COLUMN sha256")  # the table as version 2 wrote it
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    con = schema.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(str(schema.SCHEMA_VERSION),)]
    schema.register_experiment(con, schema.parse_experiment(EXP))
    [r] = ing.ingest(con, [str(path)], retry_quarantined=True, progress=False)
    assert (r.read, r.ingested, r.quarantined) == (2, 2, 0)
    con.close()


def test_a_folder_or_a_table_without_the_columns_its_records_need_is_an_error_before_any_row(store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "logs").mkdir()
    with pytest.raises(HarnessError, match=r"logs: is a directory, not a log file; give its files or a glob"):
        ing.ingest(store, [str(tmp_path / "logs")], progress=False)
    good = write_jsonl(tmp_path / "good.jsonl", [exposure("x1")])
    csv_path = tmp_path / "no-docs.csv"
    csv_path.write_text("type,event_id,experiment_id,variant,user_id,ts\nexposure,x2,e1,A,u2,2025-01-02T10:00:00Z\n")
    with pytest.raises(HarnessError, match=r"no-docs.csv:1: missing CSV column\(s\) for exposures: doc_ids \(every row"):
        ing.ingest(store, [str(good), str(csv_path)], progress=False)
    assert counts(store) == (0, 0, 0)  # checked before the first file was read
    clicks = tmp_path / "clicks.parquet"
    pq.write_table(pa.table({"event_id": ["c1"], "exposure_id": ["x1"], "kind": ["click"]}), clicks)
    with pytest.raises(HarnessError, match=r"clicks.parquet: missing Parquet column\(s\) for interactions: ts, position"):
        ing.ingest(store, [str(clicks)], progress=False)
    neither = tmp_path / "neither.csv"
    neither.write_text("event_id,ts\nx9,2025-01-02T10:00:00Z\n")
    with pytest.raises(HarnessError, match=r"neither.csv:1: no CSV column of exposures"):
        ing.ingest(store, [str(neither)], progress=False)
    assert store.execute("SELECT count(*) FROM ingested_files").fetchall()[0][0] == 0
