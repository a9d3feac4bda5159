"""The analysis of an experiment, computed where the logs are.

Every per-variant number is an Ibis expression (so the same code runs on DuckDB, Spark,
BigQuery, ...): exposures and interactions are reduced to one row per user inside the
engine, and tea-tasting aggregates those rows by variant inside the engine too (count,
means, variances, covariances). Only the aggregates reach Python.

The logs are read once, as per-exposure outcomes (harness.ab.outcomes: in the DuckDB
store a narrow table kept up to date by the ingest; elsewhere an expression over the raw
logs): one aggregation sums them per user, or per (user, variant, day) first when per-day
figures are wanted, and the per-user table is materialised once (a temporary table);
tea-tasting, the data-quality counts and the one per-day moments query read only those
small tables.

* Ranking metrics per query (ratio metrics over users, delta method): click-through
  rate, success rate (a click with dwell >= threshold), mean reciprocal rank of the
  first click, abandonment, clicks per query, inverse-propensity-weighted clicks per
  query (position bias removed with propensities estimated from the logs or given),
  conversion rate; and queries per user.
* tea-tasting: delta method, Welch's t-test, CUPED with the pre-period, power; optional
  bootstrap intervals. SRM by scipy's chi-square test; Holm by statsmodels.
* Added here (harness.ab.sequential): confidence sequences over the cumulative effect of
  every day, the effect of each single day (novelty), the IPW click metric.

User values (experiment id, variants, dates, propensities) enter the queries as Ibis
memtables, i.e. as Arrow data, never as SQL text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from harness.ab import propensities
from harness.ab.schema import METRIC_DIRECTION, METRICS, ExperimentConfig
from harness.errors import HarnessError

BASE = ("queries", "clicked", "clicks", "successes", "rr", "abandoned", "ipw_clicks", "conversions")
SUMMED = tuple(b for b in BASE if b != "abandoned")  # abandoned = queries - clicked
METRIC_DEFS: dict[str, tuple[str, str | None]] = {
    "ctr": ("clicked", "queries"),
    "success_rate": ("successes", "queries"),
    "mrr": ("rr", "queries"),
    "abandonment": ("abandoned", "queries"),
    "clicks_per_query": ("clicks", "queries"),
    "ipw_clicks_per_query": ("ipw_clicks", "queries"),
    "conversion_rate": ("conversions", "queries"),
    "queries_per_user": ("queries", None),
}
assert tuple(METRIC_DEFS) == METRICS


@dataclass
class Options:
    dwell_threshold: float = 30.0
    propensities: list[float] | None = None  # given; else estimated (DuckDB) or naive
    alpha: float = 0.05
    mde: float = 0.02  # relative lift the power analysis is asked about
    cuped: bool = True
    daily: bool = True
    bootstrap: int = 0  # resamples for a bootstrap interval of the primary metric
    horizon_days: int | None = None  # planned duration; default: the experiment's
    as_of: datetime | None = None  # analyse only the logs before this time
    propensity_sample: int = 500_000  # exposures used to estimate propensities
    use_stored_outcomes: bool = True  # False: reduce the raw logs even where the store has them
    seed: int = 0
    metrics: list[str] = field(default_factory=lambda: list(METRICS))


def _mt(data: dict[str, list]) -> Any:
    import ibis
    import pyarrow as pa

    return ibis.memtable(pa.table(data))


def window(exp: ExperimentConfig, opts: Options) -> tuple[datetime, datetime, datetime]:
    from harness.ab.outcomes import HORIZON_DAYS, PRE_DAYS

    start = exp.start
    end = exp.end or (start + timedelta(days=opts.horizon_days or HORIZON_DAYS))
    if opts.as_of is not None:
        end = min(end, opts.as_of)
    if end <= start:
        raise HarnessError(f"nothing to analyse: the analysis ends ({end}) before the experiment starts ({start})")
    return start - timedelta(days=PRE_DAYS), start, end


def exposure_table(backend, exp: ExperimentConfig, opts: Options, propensities: list[float], by_day: bool = True):
    """One row per exposure of the experiment (pre-period included): user, variant, day
    (negative in the pre-period; with ``by_day`` False only -1 or 0) and the per-query
    quantities but ``abandoned`` (queries - clicked, derived per user), from the per-exposure
    outcomes (harness.ab.outcomes: the store's table, or the raw logs elsewhere).

    The experiment id and the variant names are bound as memtables (semi-joins); the
    window's timestamps, the dwell threshold and the propensities are typed literals
    (datetime, float and float-array objects, never text)."""
    import ibis

    from harness.ab import outcomes

    pre_ts, start, end = window(exp, opts)
    o = outcomes.source(backend, opts.use_stored_outcomes)
    ids = _mt({"experiment_id": [exp.experiment_id]})
    variants = _mt({"variant": list(exp.variants)})
    o = o.filter(
        o.experiment_id.isin(ids.experiment_id),
        o.variant.isin(variants.variant),
        o.ts >= ibis.literal(pre_ts, "timestamp"),
        o.ts < ibis.literal(end, "timestamp"),
    )
    props = ibis.literal([float(p) for p in propensities], "array<float64>")
    k = len(propensities)
    # clicks at positions without a propensity carry no weight; a single click (most
    # clicked pages) needs no per-element function over the list
    weight = lambda p: ibis.ifelse(p <= k, 1.0 / props[p - 1], 0.0)  # noqa: E731
    ipw = ibis.cases(
        (o.clicks == 0, 0.0),
        (o.clicks == 1, weight(o.first_click_pos)),
        else_=o.click_positions.filter(lambda p: p <= k).map(lambda p: 1.0 / props[p - 1]).sums(),
    )
    start_ts = ibis.literal(start, "timestamp")
    if by_day:
        day = ((o.ts.epoch_seconds() - start_ts.epoch_seconds()) // 86400).cast("int64")
    else:  # the pre-period (-1) or the experiment (0): no arithmetic per row
        day = ibis.ifelse(o.ts < start_ts, -1, 0).cast("int64")
    return o.select(
        "user_id",
        "variant",
        day=day,
        queries=ibis.literal(1, "int64"),
        ipw_clicks=ipw.fill_null(0.0).cast("float64"),
        **outcomes.query_values(o, opts.dwell_threshold),
    )


def stored_user_table(backend, exp: ExperimentConfig, opts: Options, propensities: list[float]):
    """The per-user table read from the store's ``user_outcomes`` (harness.ab.outcomes),
    where it answers this analysis: no per-day figures, the default window and dwell
    threshold, propensities for at most ``POSITIONS`` positions (IPW clicks are a weighted
    sum of the clicks per position). None otherwise."""
    import ibis

    from harness.ab import outcomes

    answers = (
        opts.use_stored_outcomes and not opts.daily and opts.as_of is None
        and opts.dwell_threshold == outcomes.DWELL and len(propensities) <= outcomes.POSITIONS
        and window(exp, opts) == window(exp, Options())
        and backend.name == "duckdb" and outcomes.is_current(backend.con)
    )
    if not answers:
        return None
    u = backend.table(outcomes.USERS_TABLE)
    u = u.filter(u.experiment_id.isin(_mt({"experiment_id": [exp.experiment_id]}).experiment_id))
    cols = {}
    for prefix in ("", "pre_"):
        cols |= {f"{prefix}{c}": u[f"{prefix}{c}"] for c in SUMMED if c != "ipw_clicks"}
        cols[f"{prefix}ipw_clicks"] = sum(
            (u[f"{prefix}clicks_at_{k}"] * (1.0 / float(p)) for k, p in enumerate(propensities, 1)), ibis.literal(0.0, "float64")
        )
        cols[f"{prefix}abandoned"] = u[f"{prefix}queries"] - u[f"{prefix}clicked"]
    return u.select("user_id", variant=u.variant_max, several_variants=u.variant_min != u.variant_max, **cols)


def user_day_table(per_exposure):
    """Per (user, variant, day) sums, for the per-day figures. ``queries`` is a count;
    ``abandoned`` = queries - clicked (every query is either clicked or abandoned) is
    derived after the hash aggregations that dominate the cost."""
    t = per_exposure
    sums = {b: t[b].sum() for b in SUMMED if b != "queries"}
    agg = t.group_by(["user_id", "variant", "day"]).aggregate(queries=t.count(), **sums)
    return agg.mutate(abandoned=agg.queries - agg.clicked)


def user_table(rows, cuped: bool):
    """One row per user from per-exposure or per-user-day rows: in-period sums and, for
    CUPED, the same sums over the pre-period; ``several_variants`` marks users seen in
    more than one variant (min and max differ: cheaper than counting distinct values)."""
    pre = rows.day < 0
    aggs = {name: rows[name].sum(where=~pre) for name in SUMMED}
    if cuped:
        aggs |= {f"pre_{name}": rows[name].sum(where=pre) for name in SUMMED}
    u = rows.group_by("user_id").aggregate(
        _variant_min=rows.variant.min(), variant=rows.variant.max(), **aggs
    )
    u = u.mutate(several_variants=u._variant_min != u.variant, **{c: u[c].fill_null(0) for c in aggs})
    derived = {"abandoned": u.queries - u.clicked}
    if cuped:
        derived["pre_abandoned"] = u.pre_queries - u.pre_clicked
    return u.drop("_variant_min").mutate(**derived)


def tt_metrics(cuped: bool, names: list[str], **kw):
    import tea_tasting as tt

    out = {}
    for name in names:
        num, den = METRIC_DEFS[name]
        cov_num = f"pre_{num}" if cuped else None
        cov_den = f"pre_{den}" if cuped and den else None
        if den is None:
            out[name] = tt.Mean(num, cov_num, **kw)
        else:
            out[name] = tt.RatioOfMeans(num, den, cov_num, cov_den, **kw)
    return out


def aggr_cols(metrics: dict) -> Any:
    import tea_tasting.metrics as ttm

    cols = ttm.AggrCols()
    for m in metrics.values():
        cols |= m.aggr_cols
    return cols


# --------------------------------------------------------------------------- moments


def _pairs(cols: Any) -> tuple[list[str], list[tuple[str, str]]]:
    cols_ = sorted(set(cols.mean_cols) | set(cols.var_cols) | {c for p in cols.cov_cols for c in p})
    pairs = sorted({(c, c) for c in cols.var_cols} | {tuple(sorted(p)) for p in cols.cov_cols})
    return cols_, pairs


def aggregates_from_moments(n: float, sums: dict, prods: dict, cols: list[str], pairs: list[tuple[str, str]]):
    """tea-tasting Aggregates (count, means, sample variances and covariances) from raw
    moments computed in the engine."""
    import tea_tasting.aggr as tta

    n = int(round(n))
    mean = {c: (sums[c] / n if n else math.nan) for c in cols}

    def comoment(a: str, b: str) -> float:
        if n < 2:
            return math.nan
        return (prods[(a, b)] - n * mean[a] * mean[b]) / (n - 1)

    var = {a: max(comoment(a, a), 0.0) for a, b in pairs if a == b}
    cov = {(a, b): comoment(a, b) for a, b in pairs if a != b}
    return tta.Aggregates(count_=n, mean_=mean, var_=var, cov_=cov)


def daily_moments(user_day, users, cols: list[str], pairs: list[tuple[str, str]], cuped: bool):
    """Per (variant, day), in one query: the moments of each day's own per-user values
    (``_n``, ``s__*``, ``p__*``) and the increments of the moments of the cumulative
    per-user values (``c_n``, ``cs__*``, ``cp__*``; summed over days they give the moments
    of everything up to that day: a difference array over each user's active days)."""
    import ibis

    ud = user_day.filter(user_day.day >= 0)
    keep = users.filter(~users.several_variants).select("user_id", *[c for c in users.columns if c.startswith("pre_")])
    ud = ud.join(keep, "user_id")
    base_cols = [c for c in cols if not c.startswith("pre_")]
    cov_cols = [c for c in cols if c.startswith("pre_")]
    own_pairs = [(a, b) for a, b in pairs if not a.startswith("pre_") and not b.startswith("pre_")]
    # cumulative values: cum_x at this row, prev_x at the user's previous active day
    w = ibis.cumulative_window(group_by="user_id", order_by="day")
    cum = ud.mutate(_rn=ibis.row_number().over(w), **{f"cum_{c}": ud[c].sum().over(w) for c in base_cols})
    first = cum._rn == 0
    cur = {c: cum[f"cum_{c}"].cast("float64") for c in base_cols}
    prev = {c: (cum[f"cum_{c}"] - cum[c]).cast("float64") for c in base_cols}
    for c in cov_cols:  # constant per user: enters the moments at the user's first day
        cur[c] = cum[c].cast("float64")
        prev[c] = ibis.ifelse(first, 0.0, cum[c].cast("float64"))
    agg = {"_n": cum.count()}  # the day's own values (no covariates)
    agg |= {f"s__{c}": cum[c].cast("float64").sum() for c in base_cols}
    agg |= {f"p__{a}__{b}": (cum[a].cast("float64") * cum[b].cast("float64")).sum() for a, b in own_pairs}
    agg |= {"c_n": first.cast("int64").sum()}
    agg |= {f"cs__{c}": (cur[c] - prev[c]).sum() for c in cols}
    agg |= {f"cp__{a}__{b}": (cur[a] * cur[b] - prev[a] * prev[b]).sum() for a, b in pairs}
    return cum.group_by(["variant", "day"]).aggregate(**agg)


def _rows_to_aggregates(rows: list[dict], cols, pairs, cumulative: bool) -> dict[int, dict[str, Any]]:
    """{day: {variant: Aggregates}}; cumulative rows (``c_n``, ``cs__*``, ``cp__*``) are
    summed over days first."""
    if cumulative:
        rows = [{"variant": r["variant"], "day": r["day"], "_n": r["c_n"]} | {k[1:]: v for k, v in r.items() if k.startswith(("cs__", "cp__"))} for r in rows]
    by_variant: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], {})[int(r["day"])] = r
    days = sorted({int(r["day"]) for r in rows})
    out: dict[int, dict[str, Any]] = {d: {} for d in days}
    for variant, per_day in by_variant.items():
        running = None
        for d in days:
            r = per_day.get(d)
            if cumulative:
                if r is not None:
                    vec = [r["_n"] or 0] + [r[f"s__{c}"] or 0 for c in cols] + [r[f"p__{a}__{b}"] or 0 for a, b in pairs]
                    running = vec if running is None else [x + y for x, y in zip(running, vec, strict=True)]
                vec = running
            else:
                vec = None if r is None else [r["_n"] or 0] + [r[f"s__{c}"] or 0 for c in cols] + [r[f"p__{a}__{b}"] or 0 for a, b in pairs]
            if vec is None or vec[0] < 2:
                continue
            sums = dict(zip(cols, vec[1 : 1 + len(cols)], strict=True))
            prods = dict(zip(pairs, vec[1 + len(cols) :], strict=True))
            out[d][variant] = aggregates_from_moments(vec[0], sums, prods, cols, pairs)
    return out


# --------------------------------------------------------------------------- analysis


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):
        return _clean(x.item())
    return x


def analyze(backend, exp: ExperimentConfig, opts: Options, *, duckdb_con=None) -> dict[str, Any]:
    """Run the whole analysis; returns the body of an ``ab-analysis`` result."""
    import scipy.stats
    import tea_tasting as tt
    import tea_tasting.aggr as tta

    from harness.ab.sequential import confidence_sequence

    names = [m for m in METRICS if m in opts.metrics]
    _, start, end = window(exp, opts)
    props = propensities.choose(opts.propensities, duckdb_con, exp.experiment_id, start, end, opts.propensity_sample)

    # the per-user table: the store's per-user sums where they answer the analysis, else one
    # pass over the per-exposure outcomes (per user, or per (user, variant, day) first when
    # per-day figures are wanted); everything after reads small tables
    users_all = stored_user_table(backend, exp, opts, props["values"])
    if users_all is not None:
        cuped = opts.cuped
    else:
        per_exposure = exposure_table(backend, exp, opts, props["values"], by_day=opts.daily)
        # the pre-period sums double the aggregates: only where a pre-period was logged
        cuped = opts.cuped and per_exposure.filter(per_exposure.day < 0).limit(1).count().to_pyarrow().as_py() > 0
        if opts.daily:  # read twice (per user, per day): computed once
            user_day = _materialize(backend, user_day_table(per_exposure))
            users_all = _materialize(backend, user_table(user_day, cuped=cuped))
        else:
            users_all = _materialize(backend, user_table(per_exposure, cuped=cuped))
    users = users_all.filter(~users_all.several_variants & (users_all.queries > 0))

    quality = users_all.aggregate(
        users=users_all.count(),
        users_in_several_variants=users_all.several_variants.cast("int64").sum(),
        pre_period_only_users=(users_all.queries == 0).cast("int64").sum(),
        users_with_pre_period=(users_all.pre_queries > 0).cast("int64").sum() if cuped else users_all.count() * 0,
    ).to_pyarrow().to_pylist()[0]
    has_pre = cuped and (quality["users_with_pre_period"] or 0) > 0
    metrics = tt_metrics(has_pre, names)
    cols = aggr_cols(metrics)
    aggregates = tta.read_aggregates(
        users, "variant", has_count=True, mean_cols=cols.mean_cols, var_cols=cols.var_cols, cov_cols=cols.cov_cols
    )
    missing = [v for v in exp.variants if v not in aggregates]
    if exp.control in missing:
        raise HarnessError(f"no users in the control variant {exp.control!r}: nothing to compare with")
    if len(aggregates) < 2:
        raise HarnessError(f"only variant(s) {', '.join(aggregates)} have users: nothing to compare")
    thin = [f"{v!r} ({aggregates[v].count()})" for v in exp.variants if v in aggregates and aggregates[v].count() < 2]
    if thin:  # a variance needs two users (tea-tasting would fail on the missing one)
        raise HarnessError(f"too few users to analyse: variant(s) {', '.join(thin)} have fewer than 2 users with queries in the window")

    # sample-ratio mismatch: chi-square over all variants against the traffic split
    counts = [aggregates[v].count() if v in aggregates else 0 for v in exp.variants]
    total = sum(counts)
    expected = [total * s for s in exp.traffic_split]
    chi2, srm_p = scipy.stats.chisquare(counts, expected)
    srm = {
        "users": dict(zip(exp.variants, counts, strict=True)),
        "expected_share": dict(zip(exp.variants, exp.traffic_split, strict=True)),
        "chi2": float(chi2),
        "pvalue": float(srm_p),
        "threshold": 0.001,
        "mismatch": bool(srm_p < 0.001),
    }

    variants_out = {}
    for v in exp.variants:
        if v not in aggregates:
            continue
        a = aggregates[v]
        values = {}
        for name in names:
            num, den = METRIC_DEFS[name]
            values[name] = _clean(a.mean(num) / (a.mean(den) if den else 1))
        variants_out[v] = {"users": a.count(), "queries": _clean(a.mean("queries") * a.count()), "metrics": values}

    experiment = tt.Experiment(metrics, variant="variant")
    results = experiment.analyze(aggregates, control=exp.control, all_variants=True)
    treatments = [v for v in exp.variants if v != exp.control and v in aggregates]
    horizon = opts.horizon_days or (exp.end - exp.start).days if exp.end else (opts.horizon_days or 14)

    effects: list[dict[str, Any]] = []
    for t in treatments:
        res = results[(exp.control, t)]
        rows = []
        for name in names:
            row = {"treatment": t, "metric": name, "direction": METRIC_DIRECTION[name]} | _values(res[name])
            # power: users needed (both arms together) to detect the relative lift opts.mde
            try:
                pm = tt_metrics(has_pre, [name], use_t=False, rel_effect_size=opts.mde, ratio=aggregates[t].count() / aggregates[exp.control].count())[name]
                need = pm.solve_power_from_aggregates(aggregates[exp.control] + aggregates[t], "n_obs")[0].n_obs
                row["power"] = {"rel_effect_size": opts.mde, "power": pm.power, "alpha": pm.alpha, "users_needed": int(need)}
            except Exception as exc:  # solve_power cannot bracket a solution (e.g. zero variance)
                row["power"] = {"rel_effect_size": opts.mde, "error": str(exc)}
            rows.append(row)
        pvals = [r["pvalue"] if r["pvalue"] is not None else 1.0 for r in rows]
        holm = holm_adjust(pvals)
        for r, p in zip(rows, holm, strict=True):
            r["pvalue_holm"] = float(p)
        effects.extend(rows)

    if opts.bootstrap:
        _bootstrap(users, exp, opts, effects, has_pre)

    daily_out: list[dict[str, Any]] = []
    cumulative_out: list[dict[str, Any]] = []
    sequential_meta: dict[str, Any] = {
        "method": "normal-mixture mSPRT confidence sequence (Johari et al. 2017; Howard et al. 2021)",
        "alpha": opts.alpha,
        "horizon_days": horizon,
        "tau2": {},
    }
    if opts.daily:
        cols_list, pairs = _pairs(cols)
        moment_rows = daily_moments(user_day, users_all, cols_list, pairs, has_pre).to_pyarrow().to_pylist()
        own_cols = [c for c in cols_list if not c.startswith("pre_")]
        own_pairs = [(a, b) for a, b in pairs if not a.startswith("pre_") and not b.startswith("pre_")]
        daily_aggr = _rows_to_aggregates(moment_rows, own_cols, own_pairs, cumulative=False)
        cum_aggr = _rows_to_aggregates(moment_rows, cols_list, pairs, cumulative=True)
        plain = tt_metrics(False, names)
        normal = tt_metrics(has_pre, names, use_t=False)
        z = scipy.stats.norm.ppf(1 - opts.alpha / 2)
        for t in treatments:
            for day, by_v in sorted(daily_aggr.items()):
                if exp.control not in by_v or t not in by_v:
                    continue
                for name in names:
                    r = plain[name].analyze_aggregates(by_v[exp.control], by_v[t])
                    daily_out.append(
                        {"treatment": t, "metric": name, "day": day, "users_control": by_v[exp.control].count(),
                         "users_treatment": by_v[t].count()} | _values(r)
                    )
            for name in names:
                series = []
                for day, by_v in sorted(cum_aggr.items()):
                    if exp.control not in by_v or t not in by_v:
                        continue
                    r = normal[name].analyze_aggregates(by_v[exp.control], by_v[t])
                    var = ((r.effect_size_ci_upper - r.effect_size_ci_lower) / (2 * z)) ** 2
                    series.append((day, by_v[exp.control].count() + by_v[t].count(), r, var))
                points, tau2 = confidence_sequence(
                    [s[0] for s in series], [s[2].effect_size for s in series], [s[3] for s in series],
                    alpha=opts.alpha, horizon_days=horizon,
                )
                sequential_meta["tau2"][f"{t}/{name}"] = _clean(tau2)
                for (day, n_users, r, _), point in zip(series, points, strict=True):
                    cumulative_out.append(
                        {"treatment": t, "metric": name, "day": day, "users": n_users,
                         "control_value": _clean(r.control), "treatment_value": _clean(r.treatment),
                         "effect_size": _clean(r.effect_size), "ci_lower": _clean(r.effect_size_ci_lower),
                         "ci_upper": _clean(r.effect_size_ci_upper), "pvalue": _clean(r.pvalue)}
                        | {k: _clean(v) for k, v in point.to_json().items() if k not in ("day", "effect_size")}
                    )
                # the sequential result at the last look, with the days still needed
                last = next((e for e in effects if e["treatment"] == t and e["metric"] == name), None)
                if last is not None and points:
                    p = points[-1]
                    last |= {"seq_ci_lower": _clean(p.ci_lower), "seq_ci_upper": _clean(p.ci_upper), "seq_pvalue": _clean(p.pvalue)}
                    users_by_day = [(s[0], s[1]) for s in series]
                    last["power"]["days_needed"] = _days_needed(users_by_day, last["power"].get("users_needed"))
        for t in treatments:
            rows = [e for e in effects if e["treatment"] == t and "seq_pvalue" in e]
            if rows:
                holm = holm_adjust([r["seq_pvalue"] for r in rows])
                for r, p in zip(rows, holm, strict=True):
                    r["seq_pvalue_holm"] = float(p)

    return {
        "experiment": exp.to_json(),
        "analysis_window": {"start": start.isoformat(), "end": end.isoformat()},
        "options": {
            "dwell_threshold": opts.dwell_threshold, "alpha": opts.alpha, "mde": opts.mde,
            "cuped": has_pre, "bootstrap": opts.bootstrap, "metrics": names,
        },
        "data_quality": {k: _clean(v) for k, v in quality.items()},
        "srm": srm,
        "propensities": props,
        "variants": variants_out,
        "effects": effects,
        "daily": daily_out,
        "cumulative": cumulative_out,
        "sequential": sequential_meta,
    }


def holm_adjust(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective
    multiple test procedure"), the operations of statsmodels' ``multipletests(method=
    "holm")`` in the same order (so the same floats: tested), without the full garbage
    collection that function runs on every call (0.2 s each on a loaded machine)."""
    import numpy as np

    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return [float(x) for x in out]


def _materialize(backend, expr):
    """Compute ``expr`` once into a temporary table of the engine (DuckDB, Spark, ...)."""
    import uuid

    name = f"_ab_{uuid.uuid4().hex[:12]}"
    try:
        return backend.create_table(name, expr, temp=True)
    except Exception:  # an engine without temporary tables: keep the expression
        return expr


def _values(result) -> dict[str, Any]:
    """A tea-tasting result as JSON numbers, ``control``/``treatment`` renamed to
    ``control_value``/``treatment_value``."""
    out = {}
    for k, v in result._asdict().items():
        out[{"control": "control_value", "treatment": "treatment_value"}.get(k, k)] = _clean(v)
    return out


def _days_needed(users_by_day: list[tuple[int, int]], users_needed: int | None) -> int | None:
    """Days still needed to reach ``users_needed`` at the recent rate of new users."""
    if users_needed is None or not users_by_day:
        return None
    now = users_by_day[-1][1]
    if now >= users_needed:
        return 0
    recent = users_by_day[-4:]
    if len(recent) < 2:
        rate = now / (users_by_day[-1][0] + 1)
    else:
        rate = (recent[-1][1] - recent[0][1]) / max(recent[-1][0] - recent[0][0], 1)
    if rate <= 0:
        return None
    return math.ceil((users_needed - now) / rate)


def _bootstrap(users, exp, opts, effects, has_pre) -> None:
    """tea-tasting's bootstrap of the primary metric's ratio over users (granular per-user
    rows are read, never raw events)."""
    import numpy as np
    import tea_tasting as tt

    name = exp.primary_metric
    num, den = METRIC_DEFS[name]
    cols = [num, den] if den else [num]

    def ratio(x, axis):
        if den:
            return np.mean(x[0], axis=axis) / np.mean(x[1], axis=axis)
        return np.mean(x, axis=axis)

    metric = tt.Bootstrap(cols if den else num, ratio if den else np.mean, n_resamples=opts.bootstrap, rng=opts.seed, method="percentile")
    res = tt.Experiment({name: metric}).analyze(users.select("variant", *cols), control=exp.control, all_variants=True)
    for (c, t), r in res.items():
        b = r[name]
        for e in effects:
            if e["treatment"] == t and e["metric"] == name:
                e["bootstrap"] = {
                    "resamples": opts.bootstrap,
                    "effect_size_ci_lower": _clean(b.effect_size_ci_lower),
                    "effect_size_ci_upper": _clean(b.effect_size_ci_upper),
                }
