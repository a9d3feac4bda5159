"""``harness ab analyze``: the effects of an experiment, with the sequential interval of
every day, and whether an offline evaluation predicted them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.ab_options import (
    analysis_options,
    db_option,
    experiment_option,
    fmt,
    make_options,
    open_logs,
    parquet_option,
    write_result,
)
from harness.cli.options import OutputPath, seed_option
from harness.errors import HarnessError


def run_analysis(con, experiment_id, opts):
    import ibis

    from harness.ab import schema
    from harness.ab.analysis import analyze as run

    exp = schema.get_experiment(con, experiment_id or schema.only_experiment(con))
    backend = ibis.duckdb.from_connection(con)
    return exp, run(backend, exp, opts, duckdb_con=con)



def print_analysis(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    exp = res["experiment"]
    srm = res["srm"]
    console.print(
        f"experiment [bold]{exp['experiment_id']}[/bold]: users {srm['users']}, SRM chi-square p = {srm['pvalue']:.3g}"
        + (" [red]MISMATCH[/red]" if srm["mismatch"] else "")
    )
    table = Table(title="effects (treatment - control), users as units")
    for col in ("treatment", "metric", "control", "treatment value", "effect", "95% CI", "Holm p", "sequential CI", "users needed"):
        table.add_column(col)
    for e in res["effects"]:
        seq = f"[{fmt(e.get('seq_ci_lower'))}, {fmt(e.get('seq_ci_upper'))}]" if "seq_ci_lower" in e else "-"
        table.add_row(
            e["treatment"], e["metric"] + (" *" if e["metric"] == exp["primary_metric"] else ""),
            fmt(e["control_value"]), fmt(e["treatment_value"]), fmt(e["effect_size"]),
            f"[{fmt(e['effect_size_ci_lower'])}, {fmt(e['effect_size_ci_upper'])}]", fmt(e["pvalue_holm"], 3), seq,
            str(e.get("power", {}).get("users_needed", "-")),
        )
    console.print(table)


@click.command()
@db_option
@parquet_option
@experiment_option
@click.option("--out", "out", type=OutputPath(folder=False), help="Write the ab-analysis result (JSON) here.")
@click.option("--offline", "offline", type=click.Path(path_type=Path),
              help="An offline eval result of the variants' retrievers: report whether it predicted the online effect.")
@click.option("--offline-map", "offline_map", multiple=True,
              help="VARIANT=SPEC (repeatable), or the experiment.json of `ab simulate --retriever` (default: variants named after specs).")
@click.option("--offline-suite", help="Suite of the offline result (default: the first with all the specs).")
@click.option("--offline-metric", help="Offline metric (default: ndcg@10 when present).")
@analysis_options
@seed_option
def analyze(db, parquet, experiment_id, out, offline, offline_map, offline_suite, offline_metric, dwell, propensity, alpha,
            mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed) -> None:
    """Analyse an experiment: per-variant ranking metrics, effects with intervals (delta
    method, CUPED), SRM, Holm, power, the per-day effect and the always-valid sequential
    interval of every day.

    \b
    Example:
      harness ab analyze --db ab.duckdb --experiment exp-1 --out analysis.json
      harness ab analyze --parquet logs/ --out analysis.json
    """
    from harness.ab import offline as off

    opts = make_options(dwell, propensity, alpha, mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed)
    offline_result = mapping = None
    if offline is not None:  # read before the analysis: a wrong file fails fast
        from harness.results import read_eval_result

        offline_result = read_eval_result(offline)
        mapping = off.parse_mapping(offline_map)
        if not offline_map and parquet is not None:
            recorded = sorted(Path(parquet).glob("experiment*.json"))
            try:
                has_specs = bool(recorded) and "retrievers" in json.loads(recorded[0].read_text(encoding="utf-8"))
            except (OSError, ValueError):
                has_specs = False  # the analysis reports an unreadable experiment file
            if has_specs:
                mapping = off.parse_mapping([str(recorded[0])])
    elif offline_map or offline_suite or offline_metric:
        raise HarnessError("--offline-map, --offline-suite and --offline-metric need --offline RESULT.json")
    con = open_logs(db, parquet)
    try:
        _, res = run_analysis(con, experiment_id, opts)
    finally:
        con.close()
    res["source"] = {"db": str(db) if db else None, "parquet": str(parquet) if parquet else None}
    if offline_result is not None:
        res["offline_online"] = off.agreement(res, offline_result, source=str(offline), mapping=mapping,
                                              suite=offline_suite, metric=offline_metric, seed=seed)
    write_result(out, "ab-analysis", seed, res)
    print_analysis(res)
    if offline_result is not None:
        off.print_agreement(res["offline_online"])
