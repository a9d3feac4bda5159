"""`harness ab pairs`: training pairs from logged clicks, on a hand-built store (every row
known in advance) and on logs simulated over the demo data (two BM25 rankers, the demo qrels
as the users' truth): positives, skip-above negatives, weights from
the analysis's propensities, the held-out queries kept out, windows and validation by time,
errors with exit 3."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import ibis
import pytest

from harness.ab import analysis as A
from harness.ab import ingest as ing
from harness.ab import pairs as P
from harness.ab import schema
from harness.ab import simulate as S
from harness.errors import HarnessError
from test_ab_analysis import exit_code as cli_exit_code

HAND_PROPS = [1.0, 0.5, 0.25, 0.2, 0.1, 0.05]
EXPERIMENT = {"experiment_id": "hand", "variants": ["control", "treatment"], "start": "2025-01-06T00:00:00Z",
              "end": "2025-01-09T00:00:00Z"}


def exit_code(argv) -> int:
    return cli_exit_code([str(a) for a in argv])  # paths as the shell would pass them


def exposure(event_id, variant, user, text, docs, ts):
    return {"type": "exposure", "event_id": event_id, "experiment_id": "hand", "variant": variant, "user_id": user,
            "query_id": f"q-{event_id}", "query_text": text, "ts": ts, "doc_ids": docs}


def click(event_id, exposure_id, doc, position, dwell, ts, kind="click"):
    return {"type": "interaction", "event_id": event_id, "exposure_id": exposure_id, "doc_id": doc, "position": position,
            "kind": kind, "dwell_s": dwell, "ts": ts}


HAND_EVENTS = [
    # a short click on d1, a long one on d3: d3 is the positive, d2 (skipped above it) its negative
    exposure("x1", "control", "u1", "Reset password", ["d1", "d2", "d3", "d4"], "2025-01-06T09:00:00Z"),
    click("c1", "x1", "d1", 1, 5.0, "2025-01-06T09:00:05Z"),
    click("c2", "x1", "d3", 3, 60.0, "2025-01-06T09:00:20Z"),
    click("c3", "x1", "d3", 3, None, "2025-01-06T09:02:00Z", kind="conversion"),
    # the same query spelled otherwise: d1 positive; d3 skipped above it but a positive of the query: no negative
    exposure("x2", "treatment", "u2", "  reset   PASSWORD ", ["d3", "d5", "d1"], "2025-01-06T10:00:00Z"),
    click("c4", "x2", "d1", 3, 40.0, "2025-01-06T10:00:09Z"),
    # a short click only, and no click at all: no pair
    exposure("x3", "control", "u3", "vortex gateway", ["d4", "d5", "d6"], "2025-01-06T11:00:00Z"),
    click("c5", "x3", "d5", 2, 10.0, "2025-01-06T11:00:04Z"),
    exposure("x4", "treatment", "u4", "vortex gateway", ["d6", "d4", "d5"], "2025-01-06T12:00:00Z"),
    # a success at position 6 (propensity 0.05): weight 20, clipped to 10
    exposure("x5", "control", "u5", "vortex gateway", ["d1", "d2", "d3", "d4", "d5", "d6"], "2025-01-07T08:00:00Z"),
    click("c6", "x5", "d6", 6, 90.0, "2025-01-07T08:00:30Z"),
    # on the last day: the validation split with --validation-days 1
    exposure("x6", "treatment", "u6", "reset password", ["d2", "d3"], "2025-01-08T08:00:00Z"),
    click("c7", "x6", "d3", 2, 31.0, "2025-01-08T08:00:07Z"),
]


def write_store(tmp_path, events, name="hand"):
    logs = tmp_path / f"{name}-logs"
    logs.mkdir()
    (logs / "experiment.json").write_text(json.dumps(EXPERIMENT), encoding="utf-8")
    (logs / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    db = tmp_path / f"{name}.duckdb"
    with schema.writing(db) as con:
        schema.register_experiment(con, schema.load_experiment_file(logs / "experiment.json"))
        reports = ing.ingest(con, [str(logs / "events.jsonl")], progress=False)
    assert reports[0].quarantined == 0, con.execute("SELECT reason FROM quarantine").fetchall()
    return db


@pytest.fixture
def hand_store(tmp_path):
    return write_store(tmp_path, HAND_EVENTS)


def build(db, **kw):
    con = schema.connect(db, create=False)
    try:
        return P.build_pairs(con, P.PairsOptions(**kw))
    finally:
        con.close()


def test_positives_negatives_and_weights_on_a_hand_built_store(hand_store):
    header, rows = build(hand_store, propensities=HAND_PROPS, validation_days=1)
    got = {(r["split"], P.normalise_query(r["query"]), r["doc_id"]): r for r in rows}
    assert sorted(got) == [
        ("train", "reset password", "d1"), ("train", "reset password", "d3"), ("train", "vortex gateway", "d6"),
        ("validation", "reset password", "d3"),
    ]
    assert [r["split"] for r in rows] == ["train", "train", "train", "validation"]
    d1, d3, d6 = got["train", "reset password", "d1"], got["train", "reset password", "d3"], got["train", "vortex gateway", "d6"]
    assert (d1["weight"], d1["negative_ids"], d1["positions"]) == (4.0, ["d5"], {"3": 1})  # 1/0.25; d3 is a positive
    assert (d3["weight"], d3["negative_ids"]) == (4.0, ["d2"])  # d1 was clicked: not skipped
    assert (d6["weight"], d6["negative_ids"]) == (10.0, ["d1", "d2", "d3", "d4", "d5"])  # 1/0.05 = 20, clipped
    validation = got["validation", "reset password", "d3"]
    assert (validation["weight"], validation["negative_ids"], validation["first_seen"]) == (2.0, ["d2"], "2025-01-08T08:00:00")
    assert d1["query_id"] == d3["query_id"] == validation["query_id"] != d6["query_id"]
    assert header["counts"] == {
        "exposures": 6, "interactions": 7, "exposures_with_a_positive": 4, "successes": 4, "successes_clipped": 1,
        "negatives": 8, "negatives_dropped_as_positives": 1, "heldout_queries": 0,
    }
    assert header["debias"] | {"references": None} == {
        "method": "ipw", "weight": "min(1 / p_position, clip) per positive click", "propensities": HAND_PROPS,
        "propensity_sources": ["given"] * 6, "propensity_window": {"start": "2025-01-06T00:00:00", "end": "2025-01-09T00:00:00"},
        "clip": 10.0, "propensity_floor": 0.1, "references": None,
        "train_weights": {"total": 18.0, "min": 4.0, "max": 10.0, "mean": 6.0},
    }
    assert any("Strehl" in r for r in header["debias"]["references"]) and any("Joachims" in r for r in header["debias"]["references"])
    assert header["window"]["validation_from"] == "2025-01-08T00:00:00"
    assert header["rows"] == {"train": 3, "validation": 1, "train_queries": 2, "validation_queries": 1,
                              "validation_queries_also_in_train": 1}
    # without the correction every positive click weighs 1
    _, plain = build(hand_store, propensities=HAND_PROPS, debias="none")
    assert [r["weight"] for r in plain] == [float(r["successes"]) for r in plain] == [1.0, 2.0, 1.0]


def test_an_exposure_with_a_positive_is_a_success_of_the_analysis(hand_store):
    header, _ = build(hand_store, propensities=HAND_PROPS)
    con = schema.connect(hand_store, create=False)
    res = A.analyze(ibis.duckdb.from_connection(con), schema.get_experiment(con, "hand"),
                    A.Options(propensities=HAND_PROPS, daily=False, cuped=False), duckdb_con=con)
    con.close()
    successes = sum(v["metrics"]["success_rate"] * v["queries"] for v in res["variants"].values())
    assert successes == pytest.approx(header["counts"]["exposures_with_a_positive"]) == 4


def test_the_file_appears_whole_and_reads_back_as_the_trainers_pairs(hand_store, tmp_path):
    from harness.train.bi_encoder import negative_rows
    from harness.train.pairs import Pair

    header, rows = build(hand_store, propensities=HAND_PROPS, validation_days=1)
    path = P.write_pairs_file(tmp_path / "pairs.jsonl", header, rows)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing left aside
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["kind"] == "pairs-header" and len(lines) == 1 + len(rows)

    corpus = tmp_path / "corpus"
    (corpus / "qrels").mkdir(parents=True)
    (corpus / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"}) + "\n"
                                                 for i in range(1, 7)), encoding="utf-8")
    (corpus / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "q"}) + "\n", encoding="utf-8")
    from harness.data import load_dataset

    dataset = load_dataset(corpus)
    read = P.read_pairs_file(path, dataset)
    assert read.header == header and len(read.rows) == 4
    train = read.split("train")
    assert all(isinstance(r.pair, Pair) for r in read.rows)
    first = train[0]
    assert (first.pair.doc_id, first.pair.positive, first.weight, first.negatives) == ("d1", dataset.corpus["d1"].content, 4.0,
                                                                                     (dataset.corpus["d5"].content,))
    assert negative_rows(train, 1, "mnrl") == {
        "anchor": [r.query for r in train], "positive": [r.positive for r in train], "negative_1": [r.negatives[0] for r in train],
    }
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join([lines[0], lines[1].replace('"weight": 4.0', '"weight": 40.0'), *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(HarnessError, match=r"edited.jsonl:1: the rows do not match"):
        P.read_pairs_file(edited, dataset)
    # documents the corpus no longer holds: counted and left out; none at all is the wrong corpus
    smaller = load_dataset(corpus)
    del smaller.corpus["d5"], smaller.corpus["d6"]
    fewer = P.read_pairs_file(path, smaller)
    assert fewer.left_out == {"rows_with_unknown_positive": 1, "unknown_negatives": 1}
    assert [(r.pair.doc_id, r.negative_ids) for r in fewer.split("train")] == [("d1", ()), ("d3", ("d2",))]
    smaller.corpus.clear()
    smaller.corpus["other"] = dataset.corpus["d1"]
    with pytest.raises(HarnessError, match=r"pairs.jsonl:2: no row whose positive is a document of .*the first: 'd1'"):
        P.read_pairs_file(path, smaller)
    with pytest.raises(HarnessError, match=r":1: not a pairs file"):
        P.read_pairs_file(corpus / "queries.jsonl", dataset)


def test_each_error_exits_3_and_writes_nothing(hand_store, tmp_path):
    out = tmp_path / "pairs.jsonl"
    base = ["ab", "pairs", "--db", hand_store, "--out", out, "--propensity", ",".join(map(str, HAND_PROPS))]
    errors = {
        "missing store": ["ab", "pairs", "--db", tmp_path / "missing.duckdb", "--out", out],
        "unknown experiment": [*base, "--experiment", "nope"],
        "unknown variant": [*base, "--variant", "nope"],
        "no usable pair": [*base, "--dwell", "1000"],
        "empty window": [*base, "--since", "2025-01-08", "--until", "2025-01-07"],
        "no exposures in the window": [*base, "--since", "2025-02-01", "--until", "2025-02-02"],
        "validation covers the window": [*base, "--validation-days", "3"],
        "bad date": [*base, "--since", "yesterday"],
        "clip below 1": [*base, "--clip", "0.5"],
        "not a dataset": [*base, "--exclude-queries-of", tmp_path],
    }
    for what, argv in errors.items():
        assert exit_code(argv) == 3, what
        assert not out.exists(), what
    no_clicks = write_store(tmp_path, [e for e in HAND_EVENTS if e["type"] == "exposure"], name="noclicks")
    assert exit_code(["ab", "pairs", "--db", no_clicks, "--out", out]) == 3
    with pytest.raises(HarnessError, match="no interactions"):
        build(no_clicks)
    with pytest.raises(HarnessError, match=r"no usable training pair .*successes without propensity 4"):
        build(hand_store, propensities=[1.0])  # every positive click is below rank 1: none carries a weight
    assert exit_code(base) == 0 and out.exists()


# ------------------------------------------------------------------ simulated logs on the demo data


@pytest.fixture(scope="module")
def demo_logs(tmp_path_factory):
    """Logs of bm25 (control) against a differently tuned bm25 (treatment: different rankings,
    so the analysis harvests propensities from them) serving every demo
    query (train, dev and test) with the demo qrels as truth, plus a live query that is a
    test query typed in capitals with extra spaces."""
    from harness.adapters import build_retriever
    from harness.data import load_dataset
    from harness.data.demo import write_demo_dataset

    tmp = tmp_path_factory.mktemp("pairs-demo")
    data = write_demo_dataset(tmp / "demo")
    ds = load_dataset(data)
    qrels = {qid: rels for split in ("train", "dev", "test") for qid, rels in ds.split(split).qrels.items()}
    texts = {qid: ds.queries[qid].text for qid in qrels}
    rankings = {}
    # (the tiny random model would do as the treatment, but encoding the corpus with it takes
    # over a minute on a loaded 2-core machine)
    for variant, spec in (("control", "bm25"), ("treatment", "bm25(k1=0.3,b=0.1,stopwords=none)")):
        retriever = build_retriever(spec, tmp / "cache")
        retriever.build(ds.corpus)
        run = retriever.search(texts, k=10)
        rankings[variant] = {qid: run.ranking(qid) for qid in texts}
    cat = S.catalogue_from_runs(rankings, qrels, texts)
    cfg = S.SimConfig(experiment_id="demo", n_users=3000, days=6, pre_days=0, queries_per_user_day=0.6, seed=5)
    S.write(cat, cfg, tmp / "logs", progress=False)
    test_qid = next(iter(ds.split("test").qrels))
    test_doc = next(iter(ds.split("test").qrels[test_qid]))
    live_text = "  " + ds.queries[test_qid].text.upper().replace(" ", "   ") + " "
    live = [
        {"type": "exposure", "event_id": "live-x", "experiment_id": "demo", "variant": "control", "user_id": "live-u",
         "query_id": "live-1", "query_text": live_text, "ts": "2025-01-07T10:00:00Z", "doc_ids": [test_doc]},
        {"type": "interaction", "event_id": "live-c", "exposure_id": "live-x", "doc_id": test_doc, "position": 1,
         "kind": "click", "dwell_s": 120.0, "ts": "2025-01-07T10:00:05Z"},
    ]
    (tmp / "logs" / "live.jsonl").write_text("".join(json.dumps(e) + "\n" for e in live), encoding="utf-8")
    db = tmp / "ab.duckdb"
    with schema.writing(db) as con:
        schema.register_experiment(con, schema.load_experiment_file(tmp / "logs" / "experiment.json"))
        ing.ingest(con, [str(tmp / "logs" / "*.jsonl")], progress=False)
    heldout = {P.normalise_query(ds.queries[q].text) for split in ("dev", "test") for q in ds.split(split).qrels}
    return {"db": db, "data": data, "dataset": ds, "heldout": heldout, "live": P.normalise_query(live_text), "rankings": rankings}


def test_a_logged_query_equal_to_a_test_query_never_reaches_a_pairs_file(demo_logs, tmp_path):
    out = tmp_path / "pairs.jsonl"
    assert exit_code(["ab", "pairs", "--db", demo_logs["db"], "--exclude-queries-of", demo_logs["data"], "--out", out]) == 0
    read = P.read_pairs_file(out, demo_logs["dataset"])
    assert read.left_out["rows_with_unknown_positive"] < 0.05 * len(read.rows)  # the simulator's placeholders for short lists
    guarded = {json.loads(line)["query"] for line in out.read_text(encoding="utf-8").splitlines()[1:]}
    guarded = {P.normalise_query(text) for text in guarded}
    assert guarded and not guarded & demo_logs["heldout"]
    assert demo_logs["live"] in demo_logs["heldout"]
    # without the guard the same logs put held-out queries (the live one among them) in the file
    header, rows = build(demo_logs["db"])
    unguarded = {P.normalise_query(r["query"]) for r in rows}
    leaked = unguarded & demo_logs["heldout"]
    assert demo_logs["live"] in leaked and unguarded - leaked == guarded
    leak = read.header["leakage"]
    assert leak["excluded_queries"] == len(leaked)
    assert leak["excluded_successes"] == sum(r["successes"] for r in rows if P.normalise_query(r["query"]) in leaked)
    assert leak["exclude_queries_of"][0]["splits"].keys() == {"dev", "test"}
    assert read.header["counts"]["successes"] + leak["excluded_successes"] == header["counts"]["successes"]


def test_weights_use_the_propensities_the_analysis_estimates(demo_logs):
    con = schema.connect(demo_logs["db"], create=False)
    res = A.analyze(ibis.duckdb.from_connection(con), schema.get_experiment(con, "demo"), A.Options(daily=False, cuped=False),
                    duckdb_con=con)
    con.close()
    header, rows = build(demo_logs["db"], clip=8.0)
    props = res["propensities"]["values"]
    # the same estimate (DuckDB's parallel sums may differ in the last bits between two runs)
    assert header["debias"]["propensities"] == pytest.approx(props, rel=1e-9) and "harvested" in res["propensities"]["sources"]
    assert any(1 / p > 8.0 for p in props)  # the clip binds somewhere
    for row in rows:
        expected = sum(n * min(1.0 / props[int(k) - 1], 8.0) for k, n in row["positions"].items())
        assert row["weight"] == pytest.approx(expected, rel=1e-9)
    assert sum(r["weight"] for r in rows) > sum(r["successes"] for r in rows)
    # the analysis's success count, exposure by exposure
    successes = sum(v["metrics"]["success_rate"] * v["queries"] for v in res["variants"].values())
    assert successes == pytest.approx(header["counts"]["exposures_with_a_positive"])
    _, plain = build(demo_logs["db"], debias="none")
    assert all(r["weight"] == r["successes"] for r in plain)


def test_pairs_come_only_from_the_window_and_validation_is_the_last_days(demo_logs):
    start = datetime(2025, 1, 6)
    since, until = start + timedelta(days=1), start + timedelta(days=5)
    header, rows = build(demo_logs["db"], since=since, until=until, validation_days=2)
    cutoff = until - timedelta(days=2)
    con = schema.connect(demo_logs["db"], create=False)
    in_window = con.execute("SELECT count(*) FROM exposures WHERE ts >= ? AND ts < ?", [since, until]).fetchall()[0][0]
    con.close()
    assert header["counts"]["exposures"] == in_window
    assert header["window"] | {"on": None} == {"since": since.isoformat(), "until": until.isoformat(), "on": None,
                                               "validation_days": 2, "validation_from": cutoff.isoformat()}
    train = [r for r in rows if r["split"] == "train"]
    validation = [r for r in rows if r["split"] == "validation"]
    assert train and validation
    assert all(since.isoformat() <= r["first_seen"] and r["last_seen"] < cutoff.isoformat() for r in train)
    assert all(cutoff.isoformat() <= r["first_seen"] and r["last_seen"] < until.isoformat() for r in validation)
    _, everything = build(demo_logs["db"])
    assert sum(r["successes"] for r in rows) < sum(r["successes"] for r in everything)


def test_the_cli_on_logs_of_test_queries_only_is_an_error(demo_logs, tmp_path):
    """`ab simulate --split test` serves only test queries: with the guard nothing is left."""
    ds = demo_logs["dataset"]
    argv = ["ab", "simulate", "--out", tmp_path / "logs", "--data", demo_logs["data"], "--split", "test", "--users", "400",
            "--days", "2", "--pre-days", "0"]
    for variant, ranked in demo_logs["rankings"].items():
        lines = [f"{qid} Q0 {d} {i} {10 - i} {variant}" for qid, docs in ranked.items() for i, d in enumerate(docs, 1)]
        (tmp_path / f"{variant}.trec").write_text("\n".join(lines) + "\n", encoding="utf-8")
        argv += ["--run", f"{variant}={tmp_path / f'{variant}.trec'}"]
    assert exit_code(argv) == 0
    db = tmp_path / "test-only.duckdb"
    assert exit_code(["ab", "ingest", "--db", db, "--experiment", tmp_path / "logs" / "experiment.json",
                      str(tmp_path / "logs" / "*.jsonl")]) == 0
    out = tmp_path / "pairs.jsonl"
    assert exit_code(["ab", "pairs", "--db", db, "--exclude-queries-of", demo_logs["data"], "--out", out]) == 3
    assert not out.exists()
    assert exit_code(["ab", "pairs", "--db", db, "--out", out]) == 0
    assert P.read_pairs_file(out, ds).split("train")
