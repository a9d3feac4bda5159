"""``harness ab pairs``: training pairs (query, positive, hard negatives) from the clicks
logged in an A/B store, debiased for position and kept apart from the offline held-out
queries."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.ab_options import db_option, experiment_option
from harness.cli.options import OutputPath


def _analysis_dwell() -> float:
    """The analysis's success threshold: read when the option is, not when the module loads."""
    from harness.ab.analysis import Options

    return Options.dwell_threshold


def _default_clip() -> float:
    from harness.ab.pairs import DEFAULT_CLIP

    return DEFAULT_CLIP


def _time(option: str, value: str | None):
    from harness.ab.schema import _parse_time

    return None if value is None else _parse_time(value, option)


@click.command()
@db_option
@experiment_option
@click.option("--variant", help="Only the exposures of this variant (default: every variant's).")
@click.option("--dwell", "dwell", type=float, default=_analysis_dwell, show_default="30, as the analysis",
              help="Seconds of dwell that make a click a positive (the analysis's success).")
@click.option("--since", help="First exposure time of the window, ISO 8601 (default: the experiment's start).")
@click.option("--until", help="End of the window, exclusive, ISO 8601 (default: the experiment's end).")
@click.option("--validation-days", type=int, default=0, show_default=True,
              help="The last N days of the window form the validation split (by time, marked per row).")
@click.option("--exclude-queries-of", "exclude", multiple=True, type=click.Path(path_type=Path),
              help="A BEIR dataset (repeatable): logged queries equal to one of its held-out (non-train) queries are excluded.")
@click.option("--debias", type=click.Choice(["ipw", "none"]), default="ipw", show_default=True,
              help="ipw: weigh each positive click by 1/propensity of its position (clipped); none: weight 1.")
@click.option("--clip", type=float, default=_default_clip, show_default="10",
              help="The largest inverse-propensity weight (propensities below 1/clip count as 1/clip).")
@click.option("--propensity", "propensity",
              help="Position propensities in (0, 1], comma-separated from rank 1 (default: estimated from the logs, as the analysis does).")
@click.option("--out", "out", type=OutputPath(folder=False), required=True, help="The pairs file to write (JSONL, a header record first).")
def pairs(db, experiment_id, variant, dwell, since, until, validation_days, exclude, debias, clip, propensity, out) -> None:
    """Turn logged exposures and clicks into training pairs for `harness finetune`.

    Positives are clicks with a successful dwell, hard negatives the documents shown
    above them and skipped; each positive click weighs 1/propensity of its position
    (clipped); the method, propensities and every count go in the file's header record.

    \b
    Example:
      harness ab pairs --db ab.duckdb --exclude-queries-of data/demo --validation-days 2 --out pairs.jsonl
      harness ab pairs --db ab.duckdb --experiment exp-1 --variant treatment --since 2025-01-06 --until 2025-01-13 --out pairs.jsonl
    """
    from rich.console import Console

    from harness.ab import pairs as logged
    from harness.ab import schema
    from harness.cli.ab_options import parse_propensities
    from harness.errors import HarnessError

    if db is None:
        raise HarnessError("give --db FILE: the A/B store the pairs come from")
    opts = logged.PairsOptions(
        experiment_id=experiment_id, variant=variant, dwell_threshold=dwell, since=_time("--since", since),
        until=_time("--until", until), validation_days=validation_days, exclude_queries_of=list(exclude), debias=debias,
        clip=clip, propensities=parse_propensities(propensity) if propensity is not None else None,
    )
    con = schema.connect(db, create=False)
    try:
        header, rows = logged.build_pairs(con, opts)
    finally:
        con.close()
    logged.write_pairs_file(out, header, rows)
    counts, leak, deb = header["counts"], header["leakage"], header["debias"]
    Console().print(
        f"wrote {header['rows']['train']} training and {header['rows']['validation']} validation pairs "
        f"({header['rows']['train_queries']} + {header['rows']['validation_queries']} queries) to {out}\n"
        f"  from {counts['successes']} positive clicks of {counts['exposures']} exposures in "
        f"[{header['window']['since']}, {header['window']['until']})\n"
        f"  held out: {leak['excluded_queries']} queries ({leak['excluded_successes']} positive clicks) equal to an offline "
        f"held-out query" + ("" if leak["exclude_queries_of"] else " (no --exclude-queries-of given: nothing checked)") + "\n"
        f"  debias {deb['method']}: propensities " + ", ".join(f"{p:.3g}" for p in deb["propensities"])
        + (f"; clip {deb['clip']:g} ({counts.get('successes_clipped', 0)} clicks clipped)" if deb["method"] == "ipw" else "")
    )
