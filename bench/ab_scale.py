"""Scale benchmark of `harness ab` on simulated exposures (default 10 million).

    python bench/ab_scale.py [--exposures 10000000] [--repeat 3] [--keep DIR [--reuse]]

Phases, each in its own process so that its peak memory is its own:

1. simulate: synthetic logs written as Parquet, one file per ~1M exposures;
2. ingest: every file through the validated, transactional ingest into a DuckDB store
   (rows per second);
3. analyze: the per-variant metrics and effects of ``harness ab analyze`` (tea-tasting over
   Ibis on DuckDB, propensities given), without and with the per-day/sequential part; it
   reads the per-exposure outcomes that the ingest keeps (harness.ab.outcomes), and is
   also timed reducing the raw logs itself, as it does over Parquet folders or Spark;
4. pandas: the same per-variant numbers (per-user ratio metrics and their delta-method
   variances) in plain pandas, reading the same logs from the store's Parquet export;
5. floor: DuckDB's bare ``SELECT variant, count(*) ... GROUP BY variant`` scan of the
   exposures, and a hand-written single SQL query of the same per-variant numbers.

The last line printed is the ratio pandas time / analysis time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROPS = [1.0 / k for k in range(1, 11)]
MEMORY_LIMIT = "600MB"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_simulate(work: Path, exposures: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.ab import simulate as S

    days = 14
    cfg = S.SimConfig(experiment_id="scale", n_users=max(1000, int(exposures / (days * 0.5))), days=days,
                      queries_per_user_day=0.5, pre_days=0, effect=0.02, seed=1, chunk=1_000_000)
    cat = S.synthetic_rankings(2000, seed=1)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (work / "logs" / "experiment.json").write_text(json.dumps(S.experiment_definition(cat, cfg), default=str))
    t = time.perf_counter()
    n_exp = n_int = files = 0
    pending: list[tuple] = []

    def flush() -> None:
        nonlocal files
        pq.write_table(pa.concat_tables([e for e, _ in pending]), work / "logs" / f"exposures-{files:03d}.parquet")
        pq.write_table(pa.concat_tables([i for _, i in pending]), work / "logs" / f"interactions-{files:03d}.parquet")
        files += 1
        pending.clear()

    # the simulator yields a chunk per day and block of users (~70 k exposures at this
    # scale); a log file holds about a million exposures, as a day's logs of a busy service
    for e, it in S.generate(cat, cfg):
        pending.append((e, it))
        n_exp += e.num_rows
        n_int += it.num_rows
        if sum(x.num_rows for x, _ in pending) >= 1_000_000:
            flush()
    if pending:
        flush()
    return {"exposures": n_exp, "interactions": n_int, "files": files, "seconds": time.perf_counter() - t, "peak_mb": peak_mb()}


def phase_ingest(work: Path) -> dict:
    from harness.ab import ingest, schema

    db = work / "ab.duckdb"
    if db.exists():
        db.unlink()
    con = schema.connect(db)  # DuckDB's own memory limit: the event-id indexes of 18 M rows outgrow 600 MB
    schema.register_experiment(con, schema.load_experiment_file(work / "logs" / "experiment.json"))
    t = time.perf_counter()
    files = sorted(str(p) for p in (work / "logs").glob("exposures-*.parquet")) + sorted(
        str(p) for p in (work / "logs").glob("interactions-*.parquet"))
    reports = ingest.ingest(con, files, progress=False)
    seconds = time.perf_counter() - t
    rows = sum(r.read for r in reports)
    assert all(r.read == r.ingested + r.quarantined for r in reports)
    con.execute("CHECKPOINT")
    con.close()
    return {"rows": rows, "quarantined": sum(r.quarantined for r in reports), "seconds": seconds,
            "rows_per_second": rows / seconds, "peak_mb": peak_mb()}


def phase_analyze(work: Path, daily: bool, raw: bool = False) -> dict:
    # the libraries are imported before the clock starts, as the pandas phase imports
    # pandas and numpy before its clock; their import time is reported on its own
    t = time.perf_counter()
    import ibis
    import scipy.stats  # noqa: F401
    import statsmodels.stats.multitest  # noqa: F401
    import tea_tasting  # noqa: F401

    from harness.ab import analysis, schema

    imports = time.perf_counter() - t
    con = schema.connect(work / "ab.duckdb")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    exp = schema.get_experiment(con, "scale")
    t = time.perf_counter()
    res = analysis.analyze(ibis.duckdb.from_connection(con), exp, analysis.Options(propensities=PROPS, daily=daily, use_stored_outcomes=not raw))
    seconds = time.perf_counter() - t
    con.close()
    ctr = next(e for e in res["effects"] if e["metric"] == "ctr")
    return {"seconds": seconds, "imports_seconds": imports, "peak_mb": peak_mb(),
            "ctr": {v: res["variants"][v]["metrics"]["ctr"] for v in res["variants"]},
            "ctr_effect": ctr["effect_size"], "ctr_ci": [ctr["effect_size_ci_lower"], ctr["effect_size_ci_upper"]],
            "users": res["srm"]["users"]}


def phase_export(work: Path) -> dict:
    """The store's tables as Parquet, for pandas (not timed in the comparison)."""
    import duckdb

    con = duckdb.connect(str(work / "ab.duckdb"), read_only=True)
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET TimeZone = 'UTC'")
    con.sql("SELECT event_id, user_id, variant, len(doc_ids) AS n_docs, ts FROM exposures").write_parquet(str(work / "pd_exposures.parquet"))
    con.sql("SELECT exposure_id, position, kind, dwell_s FROM interactions").write_parquet(str(work / "pd_interactions.parquet"))
    con.close()
    return {}


def phase_pandas(work: Path) -> dict:
    import numpy as np
    import pandas as pd

    t = time.perf_counter()
    e = pd.read_parquet(work / "pd_exposures.parquet")
    i = pd.read_parquet(work / "pd_interactions.parquet")
    prop = pd.Series(PROPS, index=range(1, len(PROPS) + 1))
    i = i[i.position >= 1]
    click = i.kind == "click"
    i = i.assign(
        click=click.astype("int64"),
        click_pos=i.position.where(click),
        click_dwell=i.dwell_s.where(click),
        conv=(i.kind == "conversion").astype("int64"),
        ipw=(1.0 / i.position.map(prop)).where(click, 0.0).fillna(0.0),
    )
    per = i.groupby("exposure_id").agg(n_clicks=("click", "sum"), first_pos=("click_pos", "min"), last_pos=("position", "max"),
                                       dwell_max=("click_dwell", "max"), converted=("conv", "max"), ipw=("ipw", "sum"))
    j = e.join(per, on="event_id")
    valid = j.n_clicks.notna() & (j.last_pos <= j.n_docs)
    n_clicks = j.n_clicks.where(valid, 0)
    q = pd.DataFrame({
        "user_id": j.user_id, "variant": j.variant, "queries": 1, "clicked": (n_clicks > 0).astype("int64"), "clicks": n_clicks,
        "successes": (valid & (j.dwell_max >= 30)).astype("int64"), "rr": (1.0 / j.first_pos).where(valid, 0.0).fillna(0.0),
        "abandoned": (n_clicks == 0).astype("int64"), "ipw_clicks": j.ipw.where(valid, 0.0).fillna(0.0),
        "conversions": j.converted.where(valid, 0).fillna(0),
    })
    u = q.groupby(["user_id"]).agg(n_variants=("variant", "nunique"), variant=("variant", "max"),
                                   **{c: (c, "sum") for c in ["queries", "clicked", "clicks", "successes", "rr", "abandoned", "ipw_clicks", "conversions"]})
    u = u[u.n_variants == 1]
    out = {}
    for v, g in u.groupby("variant"):
        n = len(g)
        res = {}
        for num in ["clicked", "successes", "rr", "abandoned", "clicks", "ipw_clicks", "conversions"]:
            mx, my = g[num].mean(), g["queries"].mean()
            cov = np.cov(g[num], g["queries"], ddof=1)
            var = (cov[0, 0] / my**2 - 2 * mx * cov[0, 1] / my**3 + mx**2 * cov[1, 1] / my**4) / n  # delta method
            res[num] = (mx / my, var)
        res["queries"] = (g["queries"].mean(), g["queries"].var(ddof=1) / n)
        out[v] = res
    seconds = time.perf_counter() - t
    ctr = {v: out[v]["clicked"][0] for v in out}
    return {"seconds": seconds, "peak_mb": peak_mb(), "ctr": ctr}


def phase_floor(work: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(work / "ab.duckdb"), read_only=True)
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    t = time.perf_counter()
    con.execute("SELECT variant, count(*), count(DISTINCT user_id) FROM exposures WHERE experiment_id = ? GROUP BY variant", ["scale"]).fetchall()
    bare = time.perf_counter() - t
    t = time.perf_counter()
    con.execute(
        """
        WITH per AS (SELECT exposure_id, count(*) FILTER (WHERE kind = 'click') AS n, min(position) FILTER (WHERE kind = 'click') AS fp
                     FROM interactions GROUP BY exposure_id),
        u AS (SELECT e.user_id, any_value(e.variant) AS variant, count(*) AS q, sum((coalesce(n, 0) > 0)::INT) AS c,
                     sum(coalesce(n, 0)) AS k, sum(coalesce(1.0 / fp, 0)) AS rr
              FROM exposures e LEFT JOIN per ON per.exposure_id = e.event_id WHERE e.experiment_id = ? GROUP BY e.user_id)
        SELECT variant, count(*), avg(q), avg(c), avg(k), avg(rr), var_samp(q), var_samp(c), covar_samp(c, q) FROM u GROUP BY variant
        """, ["scale"]).fetchall()
    hand = time.perf_counter() - t
    con.close()
    return {"bare_group_by_seconds": bare, "hand_sql_seconds": hand, "peak_mb": peak_mb()}


PHASES = {"simulate": None, "ingest": phase_ingest, "analyze": None, "export": phase_export, "pandas": phase_pandas, "floor": phase_floor}


def run_phase(name: str, work: Path, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--work", str(work), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"HARNESS_QUIET": "1"})
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"phase {name} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exposures", type=int, default=10_000_000)
    parser.add_argument("--keep", help="Work folder to keep (default: a temporary one).")
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each timed phase, interleaved; the fastest counts.")
    parser.add_argument("--reuse", action="store_true", help="With --keep: reuse the store already there (skip simulate and ingest).")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--daily", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        work = Path(args.work)
        if args.phase == "simulate":
            out = phase_simulate(work, args.exposures)
        elif args.phase == "analyze":
            out = phase_analyze(work, args.daily, args.raw)
        else:
            out = PHASES[args.phase](work)
        print(json.dumps(out, default=str))
        return
    tmp = None
    if args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="ab_scale_")
        work = Path(tmp.name)
    report = {}
    if args.reuse and args.keep and (work / "ab.duckdb").is_file():
        print(f"reusing the store in {work} (no simulate, no ingest)", flush=True)
    else:
        report["simulate"] = run_phase("simulate", work, "--exposures", str(args.exposures))
        print(f"simulate: {report['simulate']['exposures']:,} exposures, {report['simulate']['interactions']:,} interactions "
              f"in {report['simulate']['seconds']:.1f} s, {report['simulate']['files']} files of each", flush=True)
        report["ingest"] = run_phase("ingest", work)
        r = report["ingest"]
        print(f"ingest: {r['rows']:,} rows in {r['seconds']:.1f} s = {r['rows_per_second']:,.0f} rows/s, peak {r['peak_mb']:.0f} MB", flush=True)
    run_phase("export", work)
    # each timed phase runs --repeat times, interleaved (a fresh process each time, so that
    # a burst of load on a shared machine hits every side alike); the fastest run counts
    runs: dict[str, list[dict]] = {"analyze": [], "analyze_daily": [], "analyze_raw": [], "pandas": [], "floor": []}
    for _ in range(args.repeat):
        runs["analyze"].append(run_phase("analyze", work))
        runs["analyze_daily"].append(run_phase("analyze", work, "--daily"))
        runs["analyze_raw"].append(run_phase("analyze", work, "--raw"))
        runs["pandas"].append(run_phase("pandas", work))
        runs["floor"].append(run_phase("floor", work))
    for name, rs in runs.items():
        key = "bare_group_by_seconds" if name == "floor" else "seconds"
        report[name] = min(rs, key=lambda r: r[key]) | {"all_seconds": [r[key] for r in rs]}
    report["floor"]["hand_sql_seconds"] = min(r["hand_sql_seconds"] for r in runs["floor"])
    a, ad, ar, p, f = report["analyze"], report["analyze_daily"], report["analyze_raw"], report["pandas"], report["floor"]
    for v in a["ctr"]:
        assert abs(a["ctr"][v] - p["ctr"][v]) < 1e-9 and abs(ar["ctr"][v] - p["ctr"][v]) < 1e-9, (a["ctr"], ar["ctr"], p["ctr"])
    print(f"analyze (metrics, effects, SRM, power): {a['seconds']:.2f} s, peak {a['peak_mb']:.0f} MB "
          f"(+ {a['imports_seconds']:.1f} s importing ibis, scipy, statsmodels, tea-tasting once per process)")
    print(f"analyze with per-day and sequential intervals: {ad['seconds']:.2f} s, peak {ad['peak_mb']:.0f} MB")
    print(f"analyze reducing the raw logs itself (as over Parquet or Spark): {ar['seconds']:.2f} s, peak {ar['peak_mb']:.0f} MB")
    print(f"pandas, same per-variant numbers: {p['seconds']:.2f} s, peak {p['peak_mb']:.0f} MB")
    print(f"DuckDB bare GROUP BY variant scan: {f['bare_group_by_seconds']:.2f} s; hand-written SQL of the same numbers: {f['hand_sql_seconds']:.2f} s")
    if args.repeat > 1:
        print("all runs (s): " + "; ".join(f"{k} " + ", ".join(f"{x:.2f}" for x in report[k]["all_seconds"]) for k in runs))
    print(f"analysis / bare scan: {a['seconds'] / f['bare_group_by_seconds']:.1f}x (with per-day: {ad['seconds'] / f['bare_group_by_seconds']:.1f}x); "
          f"analysis / hand SQL: {a['seconds'] / f['hand_sql_seconds']:.1f}x")
    print(f"pandas / analysis with per-day and sequential intervals: {p['seconds'] / ad['seconds']:.1f}x; "
          f"pandas / analysis of the raw logs: {p['seconds'] / ar['seconds']:.1f}x")
    if args.keep:
        (work / "ab_scale.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"pandas / analysis: {p['seconds'] / a['seconds']:.1f}x")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
