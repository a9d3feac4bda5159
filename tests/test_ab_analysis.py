"""The A/B analysis, decision and interleaving on simulated logs, end to end."""

from __future__ import annotations

import json
import math

import ibis
import numpy as np
import pytest

from harness.ab import analysis as A
from harness.ab import decide as D
from harness.ab import ingest as ing
from harness.ab import schema
from harness.ab import simulate as S
from harness.ab.sequential import confidence_sequence, half_width

PROPS = [1.0 / k for k in range(1, 11)]


def build(tmp_path, name, fmt="jsonl", **kw):
    cat = kw.pop("catalogue", None) or S.synthetic_rankings(200, seed=kw.get("seed", 0))
    cfg = S.SimConfig(experiment_id=name, **({"n_users": 3000, "days": 7, "pre_days": 7} | kw))
    out = tmp_path / name
    S.write(cat, cfg, out, fmt, progress=False)
    con = schema.connect(tmp_path / f"{name}.duckdb")
    schema.register_experiment(con, schema.load_experiment_file(out / "experiment.json"))
    ing.ingest(con, [str(out / f"*.{fmt}")], progress=False)
    return con, schema.get_experiment(con, name), S.true_values(cat, cfg), out


def run(con, exp, **kw):
    return A.analyze(ibis.duckdb.from_connection(con), exp, A.Options(**({"propensities": PROPS} | kw)), duckdb_con=con)


@pytest.fixture(scope="module")
def lifted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifted")
    con, exp, truth, out = build(tmp, "lift", effect=0.15, seed=11, duplicates=0.01, late=0.05)
    res = run(con, exp)
    yield con, exp, truth, res, out, tmp
    con.close()


def effect(res, metric, treatment="treatment"):
    return next(e for e in res["effects"] if e["metric"] == metric and e["treatment"] == treatment)


def test_effects_are_estimated_on_users_and_cover_the_true_effect(lifted):
    con, exp, truth, res, _, _ = lifted
    ctr = effect(res, "ctr")
    true = truth["ctr"]["treatment"] - truth["ctr"]["control"]
    assert ctr["effect_size_ci_lower"] <= true <= ctr["effect_size_ci_upper"]
    assert ctr["pvalue_holm"] < 0.01 and ctr["pvalue_holm"] >= ctr["pvalue"]
    assert effect(res, "abandonment")["effect_size"] == pytest.approx(-ctr["effect_size"])
    assert res["srm"]["mismatch"] is False
    assert res["data_quality"]["users_in_several_variants"] == 0
    # duplicated and late events changed nothing: the variant CTRs equal a direct count
    direct = con.execute(
        """SELECT e.variant, avg(CASE WHEN c.n > 0 THEN 1 ELSE 0 END) FROM exposures e
           LEFT JOIN (SELECT exposure_id, count(*) n FROM interactions WHERE kind = 'click' GROUP BY 1) c ON c.exposure_id = e.event_id
           WHERE e.ts >= ? GROUP BY 1""", [exp.start]).fetchall()
    for variant, value in direct:
        assert res["variants"][variant]["metrics"]["ctr"] == pytest.approx(value, rel=1e-9)
    for name in A.METRICS:
        assert effect(res, name)["power"].get("users_needed", 1) > 0


def test_cumulative_last_day_matches_the_main_analysis_and_sequential_is_wider(lifted):
    _, _, _, res, _, _ = lifted
    for name in ("ctr", "mrr", "ipw_clicks_per_query"):
        cum = [c for c in res["cumulative"] if c["metric"] == name]
        assert [c["day"] for c in cum] == list(range(7))
        assert cum[-1]["effect_size"] == pytest.approx(effect(res, name)["effect_size"], rel=1e-9, abs=1e-12)
        last = cum[-1]
        assert last["seq_ci_lower"] <= last["ci_lower"] + 1e-12 and last["seq_ci_upper"] >= last["ci_upper"] - 1e-12
        assert all(c["users"] <= d["users"] for c, d in zip(cum, cum[1:]))
    daily = [d for d in res["daily"] if d["metric"] == "ctr"]
    assert len(daily) == 7 and all(d["users_control"] > 0 for d in daily)


def test_cuped_narrows_the_interval(lifted):
    con, exp, _, res, _, _ = lifted
    plain = run(con, exp, cuped=False, daily=False)
    assert res["options"]["cuped"] and not plain["options"]["cuped"]
    width = lambda r: effect(r, "queries_per_user")["effect_size_ci_upper"] - effect(r, "queries_per_user")["effect_size_ci_lower"]
    assert width(res) < 0.9 * width(plain)


def test_parquet_mode_gives_the_same_numbers_as_the_store(tmp_path):
    con, exp, _, out = build(tmp_path, "pq", fmt="parquet", n_users=800, days=4, seed=4, effect=0.1)
    res_db = run(con, exp)
    con.close()
    pcon = schema.connect_parquet(out)
    res_pq = run(pcon, schema.get_experiment(pcon, "pq"))
    pcon.close()
    for a, b in zip(res_db["effects"], res_pq["effects"], strict=True):
        assert a["metric"] == b["metric"]
        assert a["effect_size"] == pytest.approx(b["effect_size"], rel=1e-9, abs=1e-12)
        assert a["pvalue"] == pytest.approx(b["pvalue"], rel=1e-6, abs=1e-12)


def test_srm_blocks_the_decision(tmp_path):
    con, exp, _, _ = build(tmp_path, "srm", n_users=6000, days=3, srm=0.08, effect=0.3, pre_days=0)
    res = run(con, exp)
    assert res["srm"]["mismatch"] and res["srm"]["pvalue"] < 0.001
    decision = D.decide(res)
    assert decision["decision"] == "hold" and decision["exit_code"] == 2
    assert "sample-ratio mismatch" in decision["treatments"][0]["reasons"][0]
    con.close()


def test_decide_promotes_rolls_back_and_holds(lifted, tmp_path):
    con, exp, _, res, _, _ = lifted
    up = D.decide(res)
    assert up["decision"] == "promote" and up["exit_code"] == 0 and up["variant"] == "treatment"
    fixed = D.decide(res, method="fixed")
    assert fixed["decision"] == "promote"
    audit = D.record(con, exp.experiment_id, up, {"method": "sequential"}, who="tester")
    row = con.execute("SELECT decided_by, decision, exit_code, len(reasons) FROM decisions WHERE decision_id = ?", [audit]).fetchall()[0]
    assert row == ("tester", "promote", 0, len(up["treatments"][0]["reasons"]))
    con2, exp2, _, _ = build(tmp_path, "down", effect=-0.3, n_users=3000, days=5, seed=5)
    down = D.decide(run(con2, exp2))
    assert down["decision"] == "rollback" and down["exit_code"] == 1
    assert any("abandonment" in r for r in down["treatments"][0]["reasons"])
    con2.close()
    con3, exp3, _, _ = build(tmp_path, "flat", effect=0.0, n_users=600, days=3, seed=6)
    flat = D.decide(run(con3, exp3))
    assert flat["decision"] == "hold" and flat["exit_code"] == 2
    assert "not significantly better" in flat["treatments"][0]["reasons"][0]
    con3.close()


def test_novelty_shows_in_the_effect_per_day(tmp_path):
    con, exp, _, _ = build(tmp_path, "novel", effect=0.0, novelty=0.6, novelty_days=1.0, n_users=6000, days=6, seed=8, pre_days=0)
    res = run(con, exp, cuped=False)
    daily = {d["day"]: d for d in res["daily"] if d["metric"] == "clicks_per_query"}
    assert daily[0]["effect_size_ci_lower"] > 0
    assert daily[5]["effect_size_ci_lower"] < 0 < daily[5]["effect_size_ci_upper"] or daily[5]["effect_size"] < daily[0]["effect_size"] / 3
    con.close()


def test_position_propensities_are_estimated_by_intervention_harvesting(tmp_path):
    base = S.synthetic_rankings(150, seed=9)
    rng = np.random.default_rng(9)
    names = ["v0", "v1", "v2", "v3"]
    rankings, grades = {}, {}
    for v in names:  # every variant shows each query's documents in its own random order
        perms = [rng.permutation(10) for _ in base.rankings["control"]]
        rankings[v] = [[docs[i] for i in p] for docs, p in zip(base.rankings["control"], perms)]
        grades[v] = np.stack([g[p] for g, p in zip(base.grades["control"], perms)])
    cat = S.Catalogue(base.query_ids, base.query_texts, base.query_weights, rankings, grades)
    con, exp, _, _ = build(tmp_path, "prop", catalogue=cat, variants=names, n_users=4000, days=4, pre_days=0, seed=9)
    props = A.estimate_propensities(con, exp, A.Options())
    assert props["sources"][1:4] == ["harvested"] * 3
    for k in (2, 3, 4):  # the simulator's examination is 1/k
        assert props["values"][k - 1] == pytest.approx(1.0 / k, rel=0.25)
    con.close()


def test_interleaving_detects_a_ranking_change(tmp_path):
    from harness.ab.calibration import improved_catalogue
    from harness.ab.interleave import analyze_interleaving, interleave_runs

    cat = improved_catalogue(0.3, seed=2)
    con, exp, _, _ = build(tmp_path, "il", catalogue=cat, interleave=True, n_users=1500, days=3, pre_days=0, seed=2)
    res = analyze_interleaving(ibis.duckdb.from_connection(con), exp, A.Options())
    assert res["winner"] == "treatment" and res["preference"] > 0 and res["pvalue"] < 0.01
    assert res["wins_a"] + res["wins_b"] + res["ties"] <= res["impressions"]
    con.close()
    rows = interleave_runs({"q": ["a", "b", "c"]}, {"q": ["b", "d", "a"]}, k=4, seed=0)
    assert sorted(rows[0]["doc_ids"]) == ["a", "b", "c", "d"] and len(rows[0]["teams"]) == 4


def test_confidence_sequence_is_wider_than_the_fixed_interval_and_shrinks():
    days = list(range(14))
    variances = [1.0 / (d + 1) for d in days]
    points, tau2 = confidence_sequence(days, [0.0] * 14, variances, alpha=0.05, horizon_days=14)
    z = 1.959964
    for p, v in zip(points, variances):
        assert p.ci_upper - p.ci_lower > 2 * z * math.sqrt(v)
    assert points[-1].ci_upper < points[0].ci_upper and tau2 > 0
    assert half_width(1.0, tau2, 0.05) > half_width(1.0, tau2, 0.2)


def exit_code(argv) -> int:
    from harness.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_cli_runs_simulate_ingest_analyze_decide_with_exit_codes(tmp_path, capsys):
    from harness.cli import main

    out = tmp_path / "logs"
    db = tmp_path / "ab.duckdb"
    main(["ab", "simulate", "--out", str(out), "--users", "1500", "--days", "4", "--effect", "0.3", "--malformed", "0.001",
          "--guardrail-margin", "0.3"])
    main(["ab", "ingest", "--db", str(db), "--experiment", str(out / "experiment.json"), str(out / "*.jsonl")])
    main(["ab", "analyze", "--db", str(db), "--out", str(tmp_path / "analysis.json"), "--propensity", ",".join(map(str, PROPS))])
    doc = json.loads((tmp_path / "analysis.json").read_text())
    assert doc["schema_version"] == 1 and doc["kind"] == "ab-analysis" and doc["provenance"]["libraries"]
    assert doc["cumulative"] and doc["effects"] and doc["srm"]
    code = exit_code(["ab", "decide", "--analysis", str(tmp_path / "analysis.json"), "--db", str(db), "--out", str(tmp_path / "d.json"), "--method", "fixed"])
    assert code == 0
    decision = json.loads((tmp_path / "d.json").read_text())
    assert decision["kind"] == "ab-decision" and decision["decision"]["decision"] == "promote"
    assert exit_code(["ab", "analyze", "--db", str(tmp_path / "missing.duckdb")]) == 3
    assert exit_code(["ab", "decide", "--db", str(db), "--srm-typo"]) == 3
