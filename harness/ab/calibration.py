"""Calibration of the analysis on simulated logs (the acceptance figures of docs/ab.md).

    python -m harness.ab.calibration --experiments 500 --out calibration.json

* A/A: the false-positive rate of the fixed-horizon test at the end, of the naive test
  peeked every day, and of the sequential (always-valid) test peeked every day.
* Coverage: how often the 95% interval of the CTR effect covers the true effect the
  simulator implies (computed exactly from its click model).
* SRM: a 1% loss of treatment users at about a million users is detected (and no false
  alarm without it).
* Interleaving vs A/B: the queries each needs to detect the same simulated lift.

Every experiment goes through the real pipeline: simulated logs are inserted into a
DuckDB store and analysed by ``harness.ab.analysis.analyze``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from harness.ab import analysis as A
from harness.ab import schema
from harness.ab import simulate as S

PROPS = [1.0 / k for k in range(1, 11)]


def _load(con, cat, cfg) -> schema.ExperimentConfig:
    definition = S.experiment_definition(cat, cfg)
    exp = schema.parse_experiment(definition, cfg.experiment_id)
    schema.register_experiment(con, exp)
    for exposures, interactions in S.generate(cat, cfg):
        con.register("_e", exposures.drop_columns(["type"]))
        con.execute("INSERT INTO exposures BY NAME SELECT * FROM _e")
        con.unregister("_e")
        con.register("_i", interactions.drop_columns(["type"]))
        con.execute("INSERT INTO interactions BY NAME SELECT * FROM _i")
        con.unregister("_i")
    return exp


def run_many(n: int, effect: float, users: int, days: int, seed: int, metrics=("ctr",)) -> list[dict[str, Any]]:
    import ibis

    out = []
    cat = S.synthetic_rankings(300, seed=seed)
    for i in range(n):
        con = schema.connect(None)
        cfg = S.SimConfig(experiment_id=f"cal-{i}", n_users=users, days=days, effect=effect, seed=seed * 100_003 + i, pre_days=7)
        exp = _load(con, cat, cfg)
        truth = S.true_values(cat, cfg)["ctr"]
        res = A.analyze(ibis.duckdb.from_connection(con), exp, A.Options(propensities=PROPS, metrics=list(metrics)))
        con.close()
        eff = next(e for e in res["effects"] if e["metric"] == "ctr")
        cum = [c for c in res["cumulative"] if c["metric"] == "ctr"]
        out.append(
            {
                "true_effect": truth["treatment"] - truth["control"],
                "effect": eff["effect_size"],
                "ci": [eff["effect_size_ci_lower"], eff["effect_size_ci_upper"]],
                "pvalue": eff["pvalue"],
                "daily_pvalues": [c["pvalue"] for c in cum],
                "seq_pvalue": eff.get("seq_pvalue"),
                "seq_ci": [eff.get("seq_ci_lower"), eff.get("seq_ci_upper")],
                "srm_pvalue": res["srm"]["pvalue"],
            }
        )
    return out


def summarise_aa(rows: list[dict[str, Any]], alpha: float = 0.05) -> dict[str, Any]:
    n = len(rows)
    fixed = sum(r["pvalue"] < alpha for r in rows) / n
    naive = sum(any(p is not None and p < alpha for p in r["daily_pvalues"]) for r in rows) / n
    seq = sum(r["seq_pvalue"] is not None and r["seq_pvalue"] < alpha for r in rows) / n
    return {
        "experiments": n,
        "fixed_horizon_fpr": fixed,
        "fixed_horizon_fpr_binomial_95": _binom_ci(fixed, n),
        "naive_daily_peeking_fpr": naive,
        "sequential_daily_peeking_fpr": seq,
        "srm_false_alarms_at_0.001": sum(r["srm_pvalue"] < 0.001 for r in rows),
    }


def summarise_coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    cov = sum(r["ci"][0] <= r["true_effect"] <= r["ci"][1] for r in rows) / n
    seq_cov = sum(r["seq_ci"][0] is not None and r["seq_ci"][0] <= r["true_effect"] <= r["seq_ci"][1] for r in rows) / n
    power = sum(r["pvalue"] < 0.05 for r in rows) / n
    return {
        "experiments": n,
        "true_effect": rows[0]["true_effect"],
        "mean_estimate": float(np.mean([r["effect"] for r in rows])),
        "coverage_95": cov,
        "coverage_95_binomial_95": _binom_ci(cov, n),
        "sequential_coverage": seq_cov,
        "power_fixed": power,
    }


def _binom_ci(p: float, n: int) -> list[float]:
    half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
    return [max(0.0, p - half), min(1.0, p + half)]


def srm_check(users: int = 1_000_000, loss: float = 0.01, seed: int = 0) -> dict[str, Any]:
    import ibis

    out = {}
    cat = S.synthetic_rankings(100, seed=seed)
    for label, srm in (("with_1pct_loss", loss), ("without_loss", 0.0)):
        con = schema.connect(None)
        cfg = S.SimConfig(experiment_id=f"srm-{label}", n_users=users, days=1, queries_per_user_day=1.2, srm=srm, seed=seed, pre_days=0)
        exp = _load(con, cat, cfg)
        res = A.analyze(ibis.duckdb.from_connection(con), exp, A.Options(propensities=PROPS, metrics=["ctr"], daily=False, cuped=False))
        con.close()
        out[label] = {"users": res["srm"]["users"], "pvalue": res["srm"]["pvalue"], "mismatch": res["srm"]["mismatch"]}
    return out


def improved_catalogue(share: float, seed: int = 0) -> S.Catalogue:
    """A ranking change: in a share of the queries the treatment ranks the relevant
    documents first (sorted by grade); elsewhere both variants serve the same list."""
    cat = S.synthetic_rankings(300, seed=seed)
    rng = np.random.default_rng(seed)
    docs = [list(r) for r in cat.rankings["control"]]
    grades = cat.grades["control"].copy()
    for q in np.nonzero(rng.random(len(docs)) < share)[0]:
        order = np.argsort(-grades[q], kind="stable")
        docs[q] = [docs[q][i] for i in order]
        grades[q] = grades[q][order]
    cat.rankings = {"control": cat.rankings["control"], "treatment": docs}
    cat.grades = {"control": cat.grades["control"], "treatment": grades}
    return cat


def interleaving_vs_ab(users: int = 20_000, days: int = 7, share: float = 0.15, seed: int = 0) -> dict[str, Any]:
    """Queries needed for 80% power at alpha 0.05 to detect the same ranking change, by
    A/B on CTR (tea-tasting power on the observed variance and the true effect) and by
    interleaving (statsmodels power on the observed preference)."""
    import ibis
    import tea_tasting as tt

    from harness.ab.interleave import analyze_interleaving

    effect = 0.0
    cat = improved_catalogue(share, seed)
    # A/B
    con = schema.connect(None)
    cfg = S.SimConfig(experiment_id="ab", n_users=users, days=days, effect=effect, seed=seed, pre_days=0)
    exp = _load(con, cat, cfg)
    truth = S.true_values(cat, cfg)["ctr"]
    rel = truth["treatment"] / truth["control"] - 1
    b = ibis.duckdb.from_connection(con)
    opts = A.Options(propensities=PROPS, metrics=["ctr"], daily=False, cuped=False)
    res = A.analyze(b, exp, opts)
    pe = A.exposure_table(b, exp, opts, PROPS, by_day=False)
    users_t = A.user_table(pe, cuped=False)
    users_t = users_t.filter(~users_t.several_variants)
    metric = tt.RatioOfMeans("clicked", "queries", rel_effect_size=rel, use_t=False)
    n_users_ab = metric.solve_power(users_t, "n_obs")[0].n_obs
    queries_per_user = sum(v["queries"] for v in res["variants"].values()) / sum(v["users"] for v in res["variants"].values())
    con.close()
    # interleaving
    con = schema.connect(None)
    cfg = S.SimConfig(experiment_id="il", n_users=users, days=days, effect=effect, seed=seed + 1, pre_days=0, interleave=True)
    exp = _load(con, cat, cfg)
    il = analyze_interleaving(ibis.duckdb.from_connection(con), exp, A.Options())
    con.close()
    q_ab = n_users_ab * queries_per_user
    q_il = il["power"]["impressions_needed"]
    return {
        "ranking_change": f"relevant documents ranked first in {share:.0%} of the queries",
        "true_relative_ctr_lift": rel,
        "ab_users_needed": n_users_ab,
        "ab_queries_needed": round(q_ab),
        "ab_observed_pvalue": res["effects"][0]["pvalue"],
        "interleaving_preference": il["preference"],
        "interleaving_pvalue": il["pvalue"],
        "interleaving_queries_needed": q_il,
        "ab_over_interleaving_queries": q_ab / q_il if q_il else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--effect", type=float, default=0.05)
    parser.add_argument("--srm-users", type=int, default=1_000_000)
    parser.add_argument("--skip", action="append", default=[], choices=["aa", "coverage", "srm", "interleaving"])
    parser.add_argument("--out")
    parser.add_argument("--full-pipeline", action="store_true", help="A/A and coverage through DuckDB and Ibis (slow) instead of numpy sums.")
    args = parser.parse_args(argv)
    many = run_many if args.full_pipeline else run_many_fast
    report: dict[str, Any] = {}
    for part in ("aa", "coverage", "srm", "interleaving"):
        if part in args.skip:
            continue
        t = time.time()
        if part == "aa":
            report["aa"] = summarise_aa(many(args.experiments, 0.0, args.users, args.days, seed=1))
        elif part == "coverage":
            report["coverage"] = summarise_coverage(many(args.experiments, args.effect, args.users, args.days, seed=2))
        elif part == "srm":
            report["srm"] = srm_check(args.srm_users)
        else:
            report["interleaving"] = interleaving_vs_ab()
        report[part]["seconds"] = round(time.time() - t, 1)
        report[part]["path"] = "full pipeline" if args.full_pipeline or part in ("srm", "interleaving") else "numpy sums"
        print(json.dumps({part: report[part]}, indent=1), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)



# --------------------------------------------------------------------------- fast path


def run_many_fast(n: int, effect: float, users: int, days: int, seed: int, pre_days: int = 7) -> list[dict[str, Any]]:
    """The same statistics as ``analyze`` (per-user CTR with CUPED, tea-tasting's delta
    method on aggregates, the confidence sequence over cumulative days) on the simulated
    logs, with the per-user sums computed by numpy instead of SQL. The SQL path is
    checked against direct counts and against its own cumulative series by the tests;
    this path makes 500+ experiments affordable on a small machine."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import scipy.stats

    from harness.ab.sequential import confidence_sequence

    cat = S.synthetic_rankings(300, seed=seed)
    out = []
    cols = ["clicked", "queries", "pre_clicked", "pre_queries"]
    pairs = sorted({tuple(sorted((a, b))) for a in cols for b in cols})
    fixed_metric = A.tt_metrics(True, ["ctr"])["ctr"]
    normal_metric = A.tt_metrics(True, ["ctr"], use_t=False)["ctr"]
    z = scipy.stats.norm.ppf(0.975)
    for i in range(n):
        cfg = S.SimConfig(experiment_id=f"cal-{i}", n_users=users, days=days, effect=effect, seed=seed * 100_003 + i, pre_days=pre_days)
        truth = S.true_values(cat, cfg)["ctr"]
        n_days = days + pre_days
        q = np.zeros((users, n_days))
        c = np.zeros((users, n_days))
        variant = np.full(users, -1)
        offset = 0
        for e, it in S.generate(cat, cfg):
            uid = pc.cast(pc.utf8_slice_codeunits(e["user_id"], 1), pa.int64()).to_numpy()
            v = pc.not_equal(e["variant"], "control").to_numpy(zero_copy_only=False)
            day = ((e["ts"].cast(pa.int64()).to_numpy() // 1_000_000 - int(cfg.start_dt.timestamp())) // 86400) + pre_days
            clicked = np.zeros(e.num_rows, dtype=bool)
            clicks = it.filter(pc.equal(it["kind"], "click"))["exposure_id"]
            idx = pc.cast(pc.utf8_slice_codeunits(clicks, len(cfg.experiment_id) + 2), pa.int64()).to_numpy() - offset
            clicked[idx] = True
            offset += e.num_rows
            np.add.at(q, (uid, day), 1)
            np.add.at(c, (uid, day), clicked)
            assigned = day >= pre_days
            variant[uid[assigned]] = v[assigned].astype(int)
        pre_q, pre_c = q[:, :pre_days].sum(1), c[:, :pre_days].sum(1)
        cum_q, cum_c = np.cumsum(q[:, pre_days:], 1), np.cumsum(c[:, pre_days:], 1)
        series = []
        for d in range(days):
            aggs = {}
            for v in (0, 1):
                m = (variant == v) & (cum_q[:, d] > 0)
                data = {"clicked": cum_c[m, d], "queries": cum_q[m, d], "pre_clicked": pre_c[m], "pre_queries": pre_q[m]}
                sums = {k: float(x.sum()) for k, x in data.items()}
                prods = {(a, b): float((data[a] * data[b]).sum()) for a, b in pairs}
                aggs[v] = A.aggregates_from_moments(int(m.sum()), sums, prods, cols, pairs)
            r = normal_metric.analyze_aggregates(aggs[0], aggs[1])
            series.append((d, r, ((r.effect_size_ci_upper - r.effect_size_ci_lower) / (2 * z)) ** 2, aggs))
        points, _ = confidence_sequence([s[0] for s in series], [s[1].effect_size for s in series], [s[2] for s in series],
                                        alpha=0.05, horizon_days=days)
        final = fixed_metric.analyze_aggregates(series[-1][3][0], series[-1][3][1])
        out.append({
            "true_effect": truth["treatment"] - truth["control"],
            "effect": final.effect_size,
            "ci": [final.effect_size_ci_lower, final.effect_size_ci_upper],
            "pvalue": final.pvalue,
            "daily_pvalues": [s[1].pvalue for s in series],
            "seq_pvalue": points[-1].pvalue,
            "seq_ci": [points[-1].ci_lower, points[-1].ci_upper],
            "srm_pvalue": float(scipy.stats.chisquare([series[-1][3][0].count(), series[-1][3][1].count()]).pvalue),
        })
    return out


if __name__ == "__main__":
    main()
