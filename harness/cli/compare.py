"""``harness compare``: paired statistics of candidates against a baseline, and the decision table."""

from __future__ import annotations

from pathlib import Path

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
    from harness.comparison import compare_results, merge_results
    from harness.reports import markdown, terminal
    from harness.reports.sections import command_section

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
    section = command_section("harness compare", document)
    terminal.print_console(section)
    if out is not None:
        from harness.files import staged, write_json

        with staged(out / "compare.json", out / "compare.md") as (json_file, markdown_file):
            write_json(json_file, document)
            markdown.write(markdown.comment(section), markdown_file)
        click.echo(f"wrote {out / 'compare.json'} and {out / 'compare.md'}")

