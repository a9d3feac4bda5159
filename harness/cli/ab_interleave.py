"""``harness ab interleave``: team-draft interleaved rankings of two rankers, or the
analysis of interleaved logs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.ab_options import db_option, experiment_option, fmt, open_logs, parquet_option, write_result
from harness.cli.options import OutputPath, cache_option, device_option, seed_option
from harness.errors import HarnessError


@click.command()
@click.option("--data", "data", type=click.Path(path_type=Path), help="Build interleaved rankings for this dataset's queries.")
@click.option("--retriever", "retrievers", multiple=True, help="Two retriever specs (A then B), with --data.")
@click.option("--run", "runs", multiple=True, help="Two TREC run files (A then B) instead of retrievers.")
@click.option("--split", default="test", show_default=True)
@cache_option
@db_option
@parquet_option
@experiment_option
@click.option("--out", "out", type=OutputPath(folder=False), help="Interleaved rankings (JSONL) or the analysis (JSON).")
@click.option("--alpha", type=float, default=0.05, show_default=True)
@seed_option
@device_option
def interleave(data, retrievers, runs, split, cache_dir, db, parquet, experiment_id, out, alpha, seed) -> None:
    """Team-draft interleaving: build interleaved rankings of two rankers (--data), or
    analyse the credited clicks of interleaved logs (--db / --parquet).

    \b
    Example:
      harness ab interleave --data data/demo --retriever bm25 --retriever dense --out interleaved.jsonl
      harness ab simulate --out il --interleave --effect 0.05 && harness ab ingest --db il.duckdb --experiment il/experiment.json 'il/*.jsonl'
      harness ab interleave --db il.duckdb --out interleaving.json
    """
    from rich.console import Console

    from harness.ab import interleave as il
    from harness.ab import schema
    from harness.ab.analysis import Options
    from harness.cli.ab_rankings import dataset_rankings
    from harness.files import staged

    console = Console()
    if data is not None:
        if out is None:
            raise HarnessError("--out FILE is needed for the interleaved rankings")
        names, rankings, _, _ = dataset_rankings(data, retrievers, [f"{'AB'[i]}={r}" if "=" not in r else r for i, r in enumerate(runs)], split, cache_dir, ())
        if len(names) != 2:
            raise HarnessError("interleaving takes exactly two rankers")
        rows = il.interleave_runs(rankings[names[0]], rankings[names[1]], seed=seed, names=(names[0], names[1]))
        with staged(out) as (partial,):
            partial.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        console.print(f"wrote {len(rows)} interleaved rankings of {names[0]} and {names[1]} to {out}")
        return
    con = open_logs(db, parquet)
    try:
        import ibis

        exp = schema.get_experiment(con, experiment_id or schema.only_experiment(con))
        res = il.analyze_interleaving(ibis.duckdb.from_connection(con), exp, Options(alpha=alpha))
    finally:
        con.close()
    write_result(out, "ab-interleaving", seed, res)
    console.print(
        f"interleaving {res['a']} vs {res['b']}: {res['impressions']} impressions, {res['users']} users; "
        f"wins {res['a']} {res['wins_a']}, {res['b']} {res['wins_b']}, ties {res['ties']}"
    )
    console.print(
        f"preference for {res['b']}: {fmt(res['preference'])} [{fmt(res['ci_lower'])}, {fmt(res['ci_upper'])}], "
        f"p = {fmt(res['pvalue'], 3)}; winner: {res['winner'] or 'none yet'}"
    )
