"""Team-draft interleaving: build interleaved rankings and analyse credited clicks.

Interleaving shows one merged list per query (Radlinski, Kurup and Joachims, CIKM 2008,
"How does clickthrough data reflect retrieval quality?"); each click is credited to the
team (ranker) that contributed the clicked document. Per impression the ranker with more
credited clicks wins. The statistic is the preference

    delta = (wins_B - wins_A) / impressions        (Chapelle, Joachims, Radlinski and Yue,
                                                   TOIS 2012, "Large-scale validation and
                                                   analysis of interleaved search evaluation")

computed on users as the unit: per user the sum of (win_B - win_A) and of impressions,
the ratio's variance by the delta method (tea-tasting's ``Aggregates.ratio_var``), a
normal test, and statsmodels' one-sample power for the users needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.ab.analysis import Options, _clean, _mt, window
from harness.ab.schema import ExperimentConfig
from harness.errors import HarnessError


def interleave_runs(
    run_a: dict[str, list[str]], run_b: dict[str, list[str]], k: int = 10, seed: int = 0, names: tuple[str, str] = ("A", "B")
) -> list[dict[str, Any]]:
    """One team-draft interleaving per query answered by both rankers."""
    from harness.ab.simulate import team_draft

    rng = np.random.default_rng(seed)
    out = []
    for qid in run_a:
        if qid not in run_b:
            continue
        shown, teams = team_draft(list(run_a[qid]), list(run_b[qid]), k, rng)
        out.append({"query_id": qid, "doc_ids": shown, "teams": [names[0] if t == "A" else names[1] for t in teams]})
    if not out:
        raise HarnessError("the two rankers answer no query in common")
    return out


def analyze_interleaving(backend, exp: ExperimentConfig, opts: Options, a: str | None = None, b: str | None = None) -> dict[str, Any]:
    import ibis
    import scipy.stats
    import tea_tasting.aggr as tta
    from statsmodels.stats.power import NormalIndPower

    a = a or exp.variants[0]
    b = b or exp.variants[1]
    _, start, end = window(exp, opts)
    params = _mt({"experiment_id": [exp.experiment_id], "_start_ts": [start], "_end_ts": [end], "_a": [a], "_b": [b]})
    e = backend.table("exposures").join(params, "experiment_id")
    e = e.filter(e.ts >= e._start_ts, e.ts < e._end_ts, e.teams.notnull())
    i = backend.table("interactions")
    i = i.filter((i.kind == "click") & (i.position >= 1))
    j = e.join(i, e.event_id == i.exposure_id)
    j = j.filter(j.position <= j.teams.length())
    team = j.teams[(j.position - 1).cast("int64")]
    credit = j.group_by(j.event_id).aggregate(
        ca=(team == j._a).cast("int64").sum(), cb=(team == j._b).cast("int64").sum()
    )
    per = e.left_join(credit, e.event_id == credit.event_id)
    ca, cb = per.ca.fill_null(0), per.cb.fill_null(0)
    per = per.select(
        "user_id",
        win_a=(ca > cb).cast("int64"),
        win_b=(cb > ca).cast("int64"),
        tie=((ca == cb) & (ca > 0)).cast("int64"),
        pref=((cb > ca).cast("int64") - (ca > cb).cast("int64")),
    )
    users = per.group_by("user_id").aggregate(
        n=per.count(), pref=per.pref.sum(), wins_a=per.win_a.sum(), wins_b=per.win_b.sum(), ties=per.tie.sum()
    )
    totals = users.aggregate(
        users=users.count(), impressions=users.n.sum(), wins_a=users.wins_a.sum(), wins_b=users.wins_b.sum(), ties=users.ties.sum()
    ).to_pyarrow().to_pylist()[0]
    if not totals["impressions"]:
        raise HarnessError(f"experiment {exp.experiment_id!r} has no interleaved exposures (exposures with teams)")
    agg = tta.read_aggregates(users, None, has_count=True, mean_cols=["pref", "n"], var_cols=["pref", "n"], cov_cols=[("pref", "n")])
    delta = agg.mean("pref") / agg.mean("n")
    var = agg.ratio_var("pref", "n") / agg.count()
    se = math.sqrt(var) if var > 0 else math.nan
    z = delta / se if se and se > 0 else math.nan
    p = float(2 * scipy.stats.norm.sf(abs(z))) if math.isfinite(z) else 1.0
    q = scipy.stats.norm.ppf(1 - opts.alpha / 2)
    users_needed = None
    if math.isfinite(se) and delta != 0:
        d = abs(delta) / math.sqrt(var * agg.count())
        users_needed = math.ceil(NormalIndPower().solve_power(effect_size=d, alpha=opts.alpha, power=0.8, ratio=0))
    decisive = (totals["wins_a"] or 0) + (totals["wins_b"] or 0)
    sign = scipy.stats.binomtest(int(totals["wins_b"] or 0), int(decisive), 0.5).pvalue if decisive else 1.0
    return {
        "experiment_id": exp.experiment_id,
        "a": a,
        "b": b,
        "users": totals["users"],
        "impressions": totals["impressions"],
        "wins_a": totals["wins_a"],
        "wins_b": totals["wins_b"],
        "ties": totals["ties"],
        "preference": _clean(delta),
        "se": _clean(se),
        "ci_lower": _clean(delta - q * se),
        "ci_upper": _clean(delta + q * se),
        "pvalue": _clean(p),
        "sign_test_pvalue": _clean(float(sign)),
        "winner": (b if delta > 0 else a) if p < opts.alpha else None,
        "power": {
            "power": 0.8,
            "alpha": opts.alpha,
            "users_needed": users_needed,
            "impressions_needed": None if users_needed is None else math.ceil(users_needed * agg.mean("n")),
        },
    }
