"""``harness compare``: paired statistics of candidates against a baseline, and the decision table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.cli.options import OutputPath, cache_option, metric_option, seed_option


@click.command("compare")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@click.option("--baseline", required=True, help="The baseline retriever spec; every other arm is compared with it.")
@click.option("--candidate", "candidates", multiple=True, help="Compare only these arms (repeatable). Default: all others.")
@metric_option
@click.option("--suite", "suites", multiple=True, help="Compare only these suites (repeatable). Default: every suite.")
@click.option("--data", type=click.Path(path_type=Path), help="Evaluate this dataset first (with --retriever) instead of reading results.")
@click.option("--retriever", "retrievers", multiple=True, help="With --data: an arm to evaluate (repeatable); the baseline is added.")
@click.option("--split", default="test", show_default=True, help="With --data: the held-out split that suites read.")
@click.option("--out", type=OutputPath(), help="Write OUT/compare.json and OUT/compare.md (and OUT/eval with --data).")
@click.option("--correction", type=click.Choice(["holm", "bh", "none"]), default="holm", show_default=True,
              help="Multiplicity correction across all comparisons: Holm (family-wise) or Benjamini-Hochberg (FDR).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level.")
@click.option("--confidence", type=float, default=0.95, show_default=True, help="Confidence level of the bootstrap intervals.")
@click.option("--resamples", type=int, default=9999, show_default=True, help="Bootstrap and randomization resamples.")
@click.option("--margin", type=float, help="The smallest difference that matters; warns when the test set cannot detect it.")
@click.option("--max-queries", type=int, help="Compare on a seeded sample of at most this many queries per suite.")
@click.option("--moved", type=int, default=5, show_default=True, help="How many most-improved and most-worsened queries to list.")
@cache_option
@seed_option
def compare(results, baseline, candidates, metrics, suites, data, retrievers, split, out, correction, alpha,
            confidence, resamples, margin, max_queries, moved, cache_dir, seed):
    """Compare candidates with a baseline on every suite, paired on the same queries.

    For each candidate, suite and metric: the mean paired difference with a bootstrap
    confidence interval, a paired randomization test (Holm-corrected across all
    comparisons), Cohen's d_z, the minimum detectable effect at 80% power, win/tie/loss
    counts and the queries that moved most. Then the decision table: quality difference
    with its interval, p95 latency, build and encode cost, and the quality/latency
    Pareto front, per suite.

    \b
    Example:
      harness compare out/eval/result.json --baseline bm25 --metric ndcg@10 --out out/compare
      harness compare --data data/demo --baseline bm25 --retriever dense \\
        --retriever "hybrid(bm25,dense)" --suite heldout --margin 0.01 --out out/compare
    """
    from harness import provenance
    from harness.errors import HarnessError
    from harness.results import read_eval_result
    from harness.stats import compare_results, merge_results
    from harness.reports.markdown import compare_markdown, write_markdown

    if data is not None:
        if results:
            raise HarnessError("give result files or --data with --retriever, not both")
        if not retrievers:
            raise HarnessError("--data needs at least one --retriever to compare with the baseline")
        from harness.evaluate import evaluate

        arms = list(dict.fromkeys([baseline, *retrievers]))
        result = evaluate(
            data, arms, list(suites) or None, out=None if out is None else out / "eval", metrics=list(metrics) or None,
            cache_dir=cache_dir, split=split, seed=seed,
        )
        sources = [str(out / "eval" / "result.json")] if out is not None else []
    else:
        if not results:
            raise HarnessError("give one or more RESULT.json files, or --data with --retriever")
        if retrievers:
            raise HarnessError("--retriever needs --data; with result files use --candidate to pick arms")
        loaded = [read_eval_result(path) for path in results]
        result = merge_results(loaded, [str(p) for p in results])
        sources = [str(p) for p in results]
    body = compare_results(
        result, baseline, candidates=list(candidates) or None, metrics=list(metrics) or None,
        suites=list(suites) or None, correction=correction, alpha=alpha, confidence=confidence,
        n_resamples=resamples, seed=seed, margin=margin, max_queries=max_queries, moved=moved,
    )
    document = {"schema_version": 1, "kind": "compare", "provenance": provenance.collect(seed=seed), "sources": sources, **body}
    print_compare(document)
    if out is not None:
        from harness.files import staged, write_json

        with staged(out / "compare.json", out / "compare.md") as (json_file, markdown_file):
            write_json(json_file, document)
            write_markdown(compare_markdown(document), markdown_file)
        click.echo(f"wrote {out / 'compare.json'} and {out / 'compare.md'}")


def _f(value: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def print_compare(document: dict[str, Any], console=None) -> None:
    from rich.table import Table

    from harness.reports.terminal import make_console

    console = console or make_console()
    options = document["options"]
    table = Table(
        title=f"candidates vs {document['baseline']} ({options['correction']} correction across "
              f"{len(document['comparisons'])} comparisons, * p < {options['alpha']})",
        title_justify="left",
    )
    for name, justify in (("suite", "left"), ("metric", "left"), ("candidate", "left"), ("n", "right"),
                          ("diff", "right"), (f"{options['confidence']:.0%} CI", "right"), ("p adj.", "right"),
                          ("d_z", "right"), ("MDE", "right"), ("W/T/L", "right")):
        table.add_column(name, justify=justify, overflow="fold", max_width=40 if name == "candidate" else None)
    for c in document["comparisons"]:
        style = "green" if c["significant"] and c["difference"] > 0 else ("red" if c["significant"] else None)
        table.add_row(
            c["suite"], c["metric"], c["candidate"], str(c["n"]), _f(c["difference"], signed=True),
            f"[{_f(c['ci_low'], signed=True)}, {_f(c['ci_high'], signed=True)}]",
            _f(c["p_adjusted"]) + (" *" if c["significant"] else ""), _f(c["effect_size"], 2), _f(c["mde"], 3),
            f"{c['wins']}/{c['ties']}/{c['losses']}", style=style,
        )
    console.print(table)
    for decision in document["decision_table"]:
        grid = Table(title=f"decision table, {decision['suite']} ({decision['metric']}, {decision['n']} queries)",
                     title_justify="left")
        for name in ("arm", "quality", "diff [CI]", "p95 ms", "build s", "encode s", "dim", "Pareto"):
            grid.add_column(name, justify="left" if name == "arm" else "right", overflow="fold", max_width=40 if name == "arm" else None)
        for row in decision["rows"]:
            diff = "baseline" if row["difference"] is None else (
                f"{_f(row['difference'], signed=True)} [{_f(row['ci_low'], signed=True)}, {_f(row['ci_high'], signed=True)}]")
            grid.add_row(row["arm"], _f(row["quality"]), diff, _f(row["p95_ms"], 1), _f(row["build_seconds"], 1),
                         _f(row["encode_seconds"], 1), "-" if row["dimension"] is None else str(row["dimension"]),
                         "yes" if row["pareto"] else "")
        console.print(grid)
    shown = [c for c in document["comparisons"] if c.get("moved")]
    for c in shown[:6]:
        rows = [*c["moved"].get("gains", [])[:3], *c["moved"].get("losses", [])[:3]]
        if rows:
            console.print(f"moved most, {c['suite']} {c['metric']} {c['candidate']}:", style="bold")
            for q in rows:
                console.print(f"  {q['difference']:+.3f}  {q['query_id']}  {q['text']}", markup=False)
    for warning in document["warnings"]:
        console.print(f"warning: {warning}", style="yellow", markup=False)
