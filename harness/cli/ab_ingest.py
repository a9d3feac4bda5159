"""``harness ab ingest``: validated log files into the store, quarantined rows retried."""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import HarnessError


@click.command()
@click.option("--db", "db", type=click.Path(path_type=Path), required=True, help="The DuckDB log store (created if missing).")
@click.option("--experiment", "experiments", multiple=True, type=click.Path(path_type=Path), help="An experiment definition (JSON) to register first (repeatable).")
@click.option("--retry-quarantined", is_flag=True,
              help="Validate again the quarantined rows of files already ingested (the given ones, or all the store's): "
                   "rows whose experiment was registered since then load.")
@click.argument("files", nargs=-1)
def ingest(db, experiments, retry_quarantined, files) -> None:
    """Load JSONL, CSV or Parquet logs (files or globs) into the store.

    Every row is validated; a bad row goes to the quarantine table with its file, line
    and reason. For each file ingested + quarantined = read is checked. A file already
    loaded (same content) is skipped; each file is one transaction. Logs ingested before
    their experiment was registered are quarantined as of an unknown experiment:
    register it and ingest with --retry-quarantined to load them. A new store appears
    only when the ingest succeeds.

    \b
    Example:
      harness ab ingest --db ab.duckdb --experiment logs/experiment.json 'logs/*.jsonl'
      harness ab ingest --db ab.duckdb --experiment late/experiment.json --retry-quarantined
    """
    from harness.ab import ingest as ing
    from harness.ab import schema

    if not files and not experiments and not retry_quarantined:
        raise HarnessError("nothing to ingest: give log files, --experiment FILE or --retry-quarantined")
    if not files and not experiments and not db.exists():
        raise HarnessError(f"{db}: database does not exist: no quarantined rows to retry")
    definitions = [schema.load_experiment_file(path) for path in experiments]  # checked before the store opens
    with schema.writing(db) as con:
        registered = [exp.experiment_id for exp in definitions if schema.register_experiment(con, exp)]
        patterns = list(files) or (ing.quarantined_files(con) if retry_quarantined else [])
        reports = ing.ingest(con, patterns, retry_quarantined=retry_quarantined) if patterns else []
        print_ingest(con, db, reports, registered, retry_quarantined)
        if any(r.ingested + r.quarantined != r.read for r in reports):
            raise HarnessError("ingested + quarantined != read for some file")


def print_ingest(con, db, reports, registered: list[str], retried: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"ingest into {db}")
    for col in ("file", "read", "ingested", "quarantined", "check"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in reports:
        if r.ingested + r.quarantined != r.read:
            check = "MISMATCH"
        elif r.retried:
            check = f"retried {r.retried}: {r.exposures + r.interactions} loaded"
        else:
            check = "already ingested" if r.skipped else "ok"
        table.add_row(r.file, str(r.read), str(r.ingested), str(r.quarantined), check)
    console.print(table)
    validated = [r.sha256 for r in reports if not r.skipped]
    reasons = con.execute(
        "SELECT reason, count(*) FROM quarantine WHERE sha256 IN (SELECT unnest(?)) GROUP BY ALL ORDER BY 2 DESC LIMIT 8",
        [validated],
    ).fetchall() if validated else []
    for reason, n in reasons:
        console.print(f"  quarantined {n:>8}  {reason}")
    if retried:
        return
    waiting = con.execute(
        "SELECT count(*) FROM quarantine WHERE reason IN (SELECT 'unknown experiment ' || to_json(unnest(?::VARCHAR[]))::VARCHAR)",
        [registered],
    ).fetchall()[0][0] if registered else 0
    held = sum(r.quarantined for r in reports if r.skipped)
    if waiting:
        console.print(f"  {waiting} rows were quarantined as of experiment {', '.join(registered)} before it was registered: "
                      f"harness ab ingest --db {db} --retry-quarantined loads them")
    elif held:
        console.print(f"  the files already ingested hold {held} quarantined rows: --retry-quarantined validates them again")
