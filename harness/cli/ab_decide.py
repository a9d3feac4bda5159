"""``harness ab decide``: promote, hold or roll back, written to the store's audit table."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.ab_options import (
    analysis_options,
    db_option,
    experiment_option,
    make_options,
    open_logs,
    parquet_option,
    write_result,
)
from harness.cli.options import OutputPath, seed_option
from harness.errors import HarnessError


@click.command()
@db_option
@parquet_option
@experiment_option
@click.option("--analysis", "analysis_file", type=click.Path(path_type=Path), help="Decide from this ab-analysis file instead of analysing again.")
@click.option("--method", type=click.Choice(["sequential", "fixed"]), default="sequential", show_default=True,
              help="sequential: always-valid intervals, valid whenever you look; fixed: only at the planned end.")
@click.option("--who", help="Who decides (default: the login name), for the audit table.")
@click.option("--out", "out", type=OutputPath(folder=False), help="Write the ab-decision result (JSON) here.")
@analysis_options
@seed_option
def decide(db, parquet, experiment_id, analysis_file, method, who, out, dwell, propensity, alpha, mde, no_cuped,
           bootstrap, as_of, horizon_days, no_daily, seed) -> None:
    """Promote, hold or roll back; exit 0 promote, 1 roll back, 2 hold, 3 error.

    Promote when the primary metric is significantly better and every guardrail is
    non-inferior; roll back when any guardrail is significantly worse; hold otherwise.
    A sample-ratio mismatch blocks any decision. Each decision is written to the
    store's audit table (decisions).

    \b
    Example:
      harness ab decide --db ab.duckdb --out decision.json; echo $?
    """
    from rich.console import Console

    from harness.ab import decide as dec
    from harness.ab import schema
    from harness.cli.ab_analyze import print_analysis, run_analysis
    from harness.results import read_result

    opts = make_options(dwell, propensity, alpha, mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed)
    if analysis_file is not None:
        analysis = read_result(analysis_file)
        if analysis.get("kind") != "ab-analysis":
            raise HarnessError(f"{analysis_file}: not an ab-analysis result (kind {analysis.get('kind')!r})")
    elif db is None and parquet is None:
        raise HarnessError("give --db FILE, --parquet DIR or --analysis FILE")
    store = schema.connect(db, create=False) if db is not None else None  # the audit table, and the logs without --parquet
    try:
        if analysis_file is None:
            logs = open_logs(None, parquet) if parquet is not None else store
            try:
                _, analysis = run_analysis(logs, experiment_id, opts)
            finally:
                if logs is not store:
                    logs.close()
        result = dec.decide(analysis, method=method, alpha=alpha)
        inputs = {
            "db": str(db) if db else None, "parquet": str(parquet) if parquet else None,
            "analysis_file": str(analysis_file) if analysis_file else None, "method": method, "alpha": alpha,
            "analysis_window": analysis.get("analysis_window"), "srm": analysis["srm"],
        }
        audit_id = None
        if store is not None:
            audit_id = dec.record(store, analysis["experiment"]["experiment_id"], result, inputs, who)
    finally:
        if store is not None:
            store.close()
    write_result(out, "ab-decision", seed, {"experiment": analysis["experiment"], "analysis": analysis, "decision": result, "audit_id": audit_id})
    console = Console()
    print_analysis(analysis)
    colour = {"promote": "green", "rollback": "red", "hold": "yellow"}[result["decision"]]
    console.print(f"decision: [bold {colour}]{result['decision'].upper()}[/bold {colour}]" + (f" {result['variant']}" if result["variant"] else ""))
    for t in result["treatments"]:
        for reason in t["reasons"]:
            console.print(f"  {t['treatment']}: {reason}")
    if audit_id is None:
        console.print("  (no --db: the decision was not written to an audit table)")
    if result["exit_code"]:
        raise SystemExit(result["exit_code"])
