"""What the ``harness ab`` commands share: their options, the reading of the analysis
options, opening a store or a Parquet folder, and writing a result."""

from __future__ import annotations

import math
from pathlib import Path

import click

from harness.errors import HarnessError

db_option = click.option("--db", "db", type=click.Path(path_type=Path), help="The DuckDB log store (a file).")
parquet_option = click.option(
    "--parquet",
    "parquet",
    type=click.Path(path_type=Path),
    help="Analyse Parquet files where they are instead of a store: DIR/experiment*.json, DIR/**/exposures*.parquet, DIR/**/interactions*.parquet.",
)
experiment_option = click.option("--experiment", "experiment_id", help="Experiment id (default: the only one in the store).")


def analysis_options(f):
    options = [
        click.option("--dwell", "dwell", type=float, default=30.0, show_default=True, help="Seconds of dwell that make a click a success."),
        click.option("--propensity", "propensity",
                     help="Position propensities in (0, 1], comma-separated from rank 1 (default: estimated from the logs)."),
        click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level."),
        click.option("--mde", type=float, default=0.02, show_default=True, help="Relative lift the power analysis asks about."),
        click.option("--no-cuped", is_flag=True, help="Do not use the pre-period as a CUPED covariate."),
        click.option("--bootstrap", type=int, default=0, show_default=True, help="Bootstrap resamples for the primary metric (0: none)."),
        click.option("--as-of", "as_of", help="Analyse only the logs before this ISO time (replay a daily look)."),
        click.option("--horizon-days", type=int, help="Planned duration in days (default: the experiment's end - start)."),
        click.option("--no-daily", is_flag=True,
                     help="Skip the per-day effects and sequential intervals (then decide needs --method fixed); "
                          "the analysis then reads the per-user sums the ingest keeps: the fastest."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def parse_propensities(text: str) -> list[float]:
    """``--propensity p1,p2,...``: every value a number in (0, 1], none left out (an empty
    value would shift every later rank's propensity by one)."""
    values = []
    for rank, item in enumerate(text.split(","), 1):
        item = item.strip()
        if not item:
            raise HarnessError(f"--propensity {text!r}: the value for rank {rank} is empty")
        try:
            value = float(item)
        except ValueError as exc:
            raise HarnessError(f"--propensity {text!r}: the value for rank {rank}, {item!r}, is not a number") from exc
        if not 0 < value <= 1:  # also NaN
            raise HarnessError(f"--propensity {text!r}: the value for rank {rank}, {item}, is not in (0, 1]")
        values.append(value)
    return values


def make_options(dwell, propensity, alpha, mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed):
    from datetime import datetime

    from harness.ab.analysis import Options

    props = parse_propensities(propensity) if propensity is not None else None
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of.replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError as exc:
            raise HarnessError(f"--as-of {as_of!r} is not an ISO 8601 time") from exc
    if not 0 < alpha < 1:
        raise HarnessError("--alpha must be in (0, 1)")
    return Options(dwell_threshold=dwell, propensities=props, alpha=alpha, mde=mde, cuped=not no_cuped,
                   bootstrap=bootstrap, as_of=when, horizon_days=horizon_days, daily=not no_daily, seed=seed)


def open_logs(db, parquet):
    """The logs to analyse: an existing harness store (``--db``; never created here) or a
    Parquet folder."""
    from harness.ab import schema

    if db is None and parquet is None:
        raise HarnessError("give --db FILE or --parquet DIR")
    if parquet is not None:
        return schema.connect_parquet(parquet)
    return schema.connect(db, create=False)


def write_result(out: Path | None, kind: str, seed: int, body: dict) -> dict:
    from harness import provenance

    doc = {"schema_version": 1, "kind": kind, "provenance": provenance.collect(seed=seed)} | body
    if out is not None:
        from harness.files import write_json

        write_json(out, doc, default=str, allow_nan=False)
    return doc


def fmt(x, digits=4):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"
