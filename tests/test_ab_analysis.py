"""The A/B analysis, decision and interleaving on simulated logs, end to end."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import ibis
import numpy as np
import pytest

from harness.ab import analysis as A
from harness.ab import decide as D
from harness.ab import ingest as ing
from harness.ab import propensities
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
    _, start, end = A.window(exp, A.Options())
    props = propensities.estimate(con, exp.experiment_id, start, end, sample=A.Options().propensity_sample)
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
    main(["ab", "analyze", "--db", str(db), "--no-daily", "--out", str(tmp_path / "fast.json")])
    fast = json.loads((tmp_path / "fast.json").read_text())
    assert not fast["cumulative"] and fast["effects"][0]["effect_size"] == pytest.approx(doc["effects"][0]["effect_size"], rel=1e-9)
    assert exit_code(["ab", "decide", "--db", str(db), "--no-daily"]) == 3  # sequential needs the per-day part
    assert exit_code(["ab", "decide", "--db", str(db), "--no-daily", "--method", "fixed"]) == 0
    assert exit_code(["ab", "analyze", "--db", str(tmp_path / "missing.duckdb")]) == 3
    assert exit_code(["ab", "decide", "--db", str(db), "--srm-typo"]) == 3


# The numbers of the analysis before it was restructured into one pass (commit 1f14f42:
# per-exposure rows, per-user-day sums, per-user sums, then two per-day queries), on this
# seeded log. The one-pass path must give them all: effects, intervals, p-values, power,
# per-day and cumulative figures, sequential bounds.
BEFORE = json.loads(
    """{"quality":{"users":526,"users_in_several_variants":0,"pre_period_only_users":90,"users_with_pre_period":410},"users":{"control":206,"treatment":230},"variants":{"control":{"ctr":0.567278287462,"success_rate":0.423547400612,"mrr":0.441538638901,"abandonment":0.432721712538,"clicks_per_query":0.772171253823,"ipw_clicks_per_query":1.86850152905,"conversion_rate":0.0474006116208,"queries_per_user":3.17475728155},"treatment":{"ctr":0.593607305936,"success_rate":0.467275494673,"mrr":0.47352745766,"abandonment":0.406392694064,"clicks_per_query":0.79604261796,"ipw_clicks_per_query":1.8599695586,"conversion_rate":0.0456621004566,"queries_per_user":2.85652173913}},"effects":{"ctr":[0.0315966667888,-0.0298670230862,0.0930603566638,0.312801106457,1.0,-0.063479788263,0.126673121841,0.590845506818,25004],"success_rate":[0.04453167859,-0.0154727920313,0.104536149211,0.145385976301,1.0,-0.0397095441997,0.137238370319,0.558371885067,40644],"mrr":[0.0366476998993,-0.021088725158,0.0943841249565,0.212824557828,1.0,-0.0458936694692,0.125987801557,0.53090375298,35530],"abandonment":[-0.0315966667888,-0.0930603566638,0.0298670230862,0.312801106457,1.0,-0.126673121841,0.063479788263,0.590845506818,47869],"clicks_per_query":[0.0288289954225,-0.071196959765,0.12885495061,0.571296337547,1.0,-0.124671195308,0.183775035151,1.0,36045],"ipw_clicks_per_query":[-0.0127818532043,-0.302326345799,0.276762639391,0.930891556908,1.0,-0.459888699728,0.43432499332,1.0,53391],"conversion_rate":[-0.00149527962514,-0.0252990024912,0.0223084432409,0.901791544472,1.0,-0.0384927901228,0.0326737639029,1.0,579431],"queries_per_user":[-0.217871654647,-0.598096113452,0.162352804157,0.260632023603,1.0,-0.298062584081,0.36820843771,0.99414061242,34671]},"daily":{"ctr/0":[0.089322685596,-0.0230401730042,0.201685544196],"mrr/0":[0.0800430040891,-0.0237062299852,0.183792238164],"ctr/1":[0.0228010418754,-0.0833845831464,0.128986666897],"mrr/1":[0.0480557225228,-0.0534509943364,0.149562439382],"ctr/2":[-0.0157434201461,-0.121713786066,0.0902269457741],"mrr/2":[-0.0236475701621,-0.124869106767,0.0775739664424],"ctr/3":[0.0139014202172,-0.0907464138405,0.118549254275],"mrr/3":[0.0280010343319,-0.0730912196837,0.129093288347]},"cumulative":{"ctr/0":[204,0.0996229637811,-0.00906914405341,0.208315071616,-0.0814022642193,0.280648191781],"ctr/1":[313,0.0634282773459,-0.0195022651168,0.146358819808,-0.0681361887365,0.194992743428],"ctr/2":[386,0.0392304085441,-0.0295658309557,0.108026648044,-0.0680726762154,0.146533493304],"ctr/3":[436,0.0315966667888,-0.0296790104208,0.0928723439985,-0.063479788263,0.126673121841],"ipw_clicks_per_query/0":[204,-0.0243141177147,-0.593755789707,0.545127554278,-0.972711481232,0.924083245803],"ipw_clicks_per_query/1":[313,-0.0234588719854,-0.435502854409,0.388585110438,-0.67321589442,0.626298150449],"ipw_clicks_per_query/2":[386,0.0450381751948,-0.281868823576,0.371945173966,-0.462493152491,0.552569502881],"ipw_clicks_per_query/3":[436,-0.0127818532043,-0.301478802183,0.275915095774,-0.459888699728,0.43432499332],"queries_per_user/0":[204,0.0350729268149,-0.164950027299,0.235095880929,-0.298062584081,0.36820843771],"queries_per_user/1":[313,-0.0178172208955,-0.270167485506,0.234533043715,-0.298062584081,0.36820843771],"queries_per_user/2":[386,-0.165821702652,-0.489888033122,0.158244627818,-0.298062584081,0.36820843771],"queries_per_user/3":[436,-0.217871654647,-0.596939287982,0.161195978688,-0.298062584081,0.36820843771]}}"""
)


def test_the_one_pass_analysis_gives_the_numbers_of_the_former_pipeline(tmp_path):
    cat = S.synthetic_rankings(120, seed=31)
    cfg = S.SimConfig(experiment_id="ref", n_users=700, days=4, pre_days=3, effect=0.1, seed=31, late=0.05, duplicates=0.01)
    S.write(cat, cfg, tmp_path / "logs", "jsonl", progress=False)
    con = schema.connect(tmp_path / "ref.duckdb")
    schema.register_experiment(con, schema.load_experiment_file(tmp_path / "logs" / "experiment.json"))
    ing.ingest(con, [str(tmp_path / "logs" / "*.jsonl")], progress=False)
    res = A.analyze(ibis.duckdb.from_connection(con), schema.get_experiment(con, "ref"), A.Options(propensities=PROPS))
    no_daily = A.analyze(ibis.duckdb.from_connection(con), schema.get_experiment(con, "ref"), A.Options(propensities=PROPS, daily=False))
    con.close()
    near = lambda x: pytest.approx(x, rel=1e-9, abs=1e-12)
    assert res["data_quality"] == BEFORE["quality"] and res["srm"]["users"] == BEFORE["users"]
    for v, metrics in BEFORE["variants"].items():
        assert res["variants"][v]["metrics"] == near(metrics)
    keys = ("effect_size", "effect_size_ci_lower", "effect_size_ci_upper", "pvalue", "pvalue_holm", "seq_ci_lower", "seq_ci_upper", "seq_pvalue")
    for e, f in zip(res["effects"], no_daily["effects"], strict=True):
        assert [e[k] for k in keys] + [e["power"].get("users_needed")] == near(BEFORE["effects"][e["metric"]])
        assert [f[k] for k in keys[:5]] == near(BEFORE["effects"][e["metric"]][:5])  # the per-period pass: same numbers
    daily = {f'{c["metric"]}/{c["day"]}': [c[k] for k in keys[:3]] for c in res["daily"] if c["metric"] in ("ctr", "mrr")}
    assert daily.keys() == BEFORE["daily"].keys()
    for k, v in BEFORE["daily"].items():
        assert daily[k] == near(v)
    cumulative = {f'{c["metric"]}/{c["day"]}': [c["users"]] + [c[k] for k in ("effect_size", "ci_lower", "ci_upper", "seq_ci_lower", "seq_ci_upper")]
                  for c in res["cumulative"] if c["metric"] in ("ctr", "ipw_clicks_per_query", "queries_per_user")}
    assert cumulative.keys() == BEFORE["cumulative"].keys()
    for k, v in BEFORE["cumulative"].items():
        assert cumulative[k] == near(v)


def test_holm_adjust_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for n in (1, 2, 8, 30):
        p = rng.uniform(0, 0.2, n).tolist()
        p[n // 2] = p[0]  # ties
        assert A.holm_adjust(p) == multipletests(p, method="holm")[1].tolist()


def test_the_stored_per_user_sums_answer_the_analysis_without_per_day_figures(lifted):
    con, exp, _, _, _, _ = lifted
    backend = ibis.duckdb.from_connection(con)
    opts = A.Options(propensities=[0.9, 0.5, 0.3], daily=False)
    assert A.stored_user_table(backend, exp, opts, opts.propensities) is not None
    for other in (A.Options(daily=True), A.Options(daily=False, dwell_threshold=10.0), A.Options(daily=False, as_of=exp.start + timedelta(days=2)),
                  A.Options(daily=False, use_stored_outcomes=False)):
        assert A.stored_user_table(backend, exp, other, PROPS) is None
    assert A.stored_user_table(backend, exp, opts, PROPS + [0.05]) is None  # 11 positions
    stored = run(con, exp, propensities=opts.propensities, daily=False)
    raw = run(con, exp, propensities=opts.propensities, daily=False, use_stored_outcomes=False)
    assert stored["data_quality"] == raw["data_quality"] and stored["srm"] == raw["srm"]
    assert stored["options"]["cuped"] and raw["options"]["cuped"]
    for a, b in zip(stored["effects"], raw["effects"], strict=True):
        assert a["metric"] == b["metric"]
        assert (a["effect_size"], a["effect_size_ci_lower"], a["pvalue"]) == pytest.approx(
            (b["effect_size"], b["effect_size_ci_lower"], b["pvalue"]), rel=1e-9, abs=1e-12)


def test_the_stored_outcomes_and_the_raw_logs_give_the_same_analysis(lifted):
    con, exp, _, res, _, _ = lifted
    raw = run(con, exp, use_stored_outcomes=False)
    assert raw["data_quality"] == res["data_quality"] and raw["srm"] == res["srm"]
    for a, b in zip(res["effects"], raw["effects"], strict=True):
        assert a["metric"] == b["metric"]
        assert (a["effect_size"], a["pvalue"]) == pytest.approx((b["effect_size"], b["pvalue"]), rel=1e-9, abs=1e-12)
    for a, b in zip(res["cumulative"], raw["cumulative"], strict=True):
        assert a["ci_lower"] == pytest.approx(b["ci_lower"], rel=1e-9, abs=1e-12)
