"""``harness ab simulate``: realistic search logs of an experiment, synthetic or served
by real rankers of a dataset."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import OutputPath, cache_option, device_option, seed_option
from harness.errors import HarnessError


@click.command()
@click.option("--out", "out", type=OutputPath(), required=True, help="Output folder for experiment.json and the logs.")
@click.option("--data", "data", type=click.Path(path_type=Path), help="A BEIR dataset: serve its queries, judge with its qrels (default: synthetic).")
@click.option("--retriever", "retrievers", multiple=True, help="A retriever spec per variant (repeatable, with --data).")
@click.option("--run", "runs", multiple=True, help="VARIANT=FILE: a TREC run file per variant instead of a retriever (repeatable, with --data).")
@click.option("--split", default="test", show_default=True, help="The qrels split used as true relevance.")
@cache_option
@click.option("--variant", "variants", multiple=True, help="Variant names (repeatable; default control, treatment or the specs).")
@click.option("--experiment-id", default="exp-1", show_default=True)
@click.option("--users", type=int, default=10_000, show_default=True)
@click.option("--days", type=int, default=14, show_default=True)
@click.option("--queries-per-day", type=float, default=0.5, show_default=True, help="Mean queries per user and day.")
@click.option("--effect", type=float, default=0.0, show_default=True, help="True relative lift of attractiveness in non-control variants.")
@click.option("--novelty", type=float, default=0.0, show_default=True, help="Extra lift on day 0 fading over --novelty-days.")
@click.option("--novelty-days", type=float, default=3.0, show_default=True)
@click.option("--pre-days", type=int, default=7, show_default=True, help="Days of pre-period logs (CUPED).")
@click.option("--srm", type=float, default=0.0, help="Fault: share of treatment users whose logs are lost.")
@click.option("--duplicates", type=float, default=0.0, help="Fault: share of events written twice.")
@click.option("--malformed", type=float, default=0.0, help="Fault: share of lines corrupted (jsonl, csv).")
@click.option("--late", type=float, default=0.0, help="Fault: share of interactions delivered in a later file.")
@click.option("--interleave", is_flag=True, help="Emit team-draft interleaved logs of the first two variants.")
@click.option("--guardrail-margin", type=float, default=0.05, show_default=True, help="Relative non-inferiority margin of the guardrails.")
@click.option("--synthetic-queries", type=int, default=1000, show_default=True, help="Queries of the synthetic catalogue.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl", show_default=True)
@seed_option
@device_option
def simulate(out, data, retrievers, runs, split, cache_dir, variants, experiment_id, users, days, queries_per_day, effect,
             novelty, novelty_days, pre_days, srm, duplicates, malformed, late, interleave, guardrail_margin, synthetic_queries, fmt, seed) -> None:
    """Write realistic search logs of an experiment.

    With --data, the dataset's queries are served by real rankers (--retriever specs or
    --run files) and its qrels are the true relevance; without it, a synthetic
    catalogue is served by every variant (an A/A test unless --effect is set).

    \b
    Example:
      harness ab simulate --out logs --users 20000 --effect 0.03 --malformed 0.001
      harness ab simulate --out logs --data data/demo --retriever bm25 --retriever dense
    """
    from rich.console import Console

    from harness.ab import simulate as sim
    from harness.cli.ab_rankings import dataset_rankings

    if data is None:
        if retrievers or runs:
            raise HarnessError("--retriever and --run need --data")
        names = list(variants) or ["control", "treatment"]
        cat = sim.synthetic_rankings(synthetic_queries, seed=seed, variants=names)
    else:
        names, rankings, qrels, texts = dataset_rankings(data, retrievers, runs, split, cache_dir, variants)
        cat = sim.catalogue_from_runs(rankings, qrels, texts)
        specs = dict(zip(names[len(runs):], retrievers, strict=True)) if retrievers else None
    cfg = sim.SimConfig(
        experiment_id=experiment_id, variants=names, n_users=users, days=days, queries_per_user_day=queries_per_day,
        effect=effect, novelty=novelty, novelty_days=novelty_days, pre_days=pre_days, srm=srm, duplicates=duplicates,
        malformed=malformed, late=late, interleave=interleave, seed=seed, guardrail_margin=guardrail_margin,
        retrievers=specs if data is not None else None,
    )
    summary = sim.write(cat, cfg, out, fmt)
    console = Console()
    console.print(
        f"wrote {summary['exposures']} exposures and {summary['interactions'] + summary['late_interactions']} interactions "
        f"to {out} ({summary['duplicates']} duplicated, {summary['malformed_lines']} malformed, "
        f"{summary['late_interactions']} late)"
    )
    for metric, by_v in summary["true_effects"].items():
        console.print(f"  true {metric}: " + ", ".join(f"{v} {x:.4f}" for v, x in by_v.items()))
