"""``harness eval``."""

from __future__ import annotations

import click

from harness.cli.options import (
    cache_option, data_option, device_option, metric_option, out_option, retriever_option, seed_option, suite_option,
    unknown_docs_option,
)


@click.command("eval")
@data_option
@retriever_option
@suite_option
@out_option
@metric_option
@click.option("--split", default="test", show_default=True, help="The held-out split that suites read.")
@click.option(
    "--ignore-identical-ids",
    is_flag=True,
    help="Drop hits whose doc id equals the query id (BEIR/MTEB convention for datasets like Quora).",
)
@unknown_docs_option
@cache_option
@seed_option
@device_option
def eval_command(data, retrievers, suites, out, metrics, split, ignore_identical_ids, unknown_docs, cache_dir, seed):
    """Evaluate retrievers on a dataset and write OUT/result.json plus TREC run files.

    \b
    Example:
      harness eval --data data/demo --retriever bm25 --retriever dense \\
        --retriever "hybrid(bm25,dense)" --suite heldout \\
        --suite slice:subdomain=identity --suite slice:doc-disjoint --out out/eval
    """
    from harness.evaluate import evaluate
    from harness.reports import terminal
    from harness.reports.sections import command_section

    result = evaluate(
        data,
        list(retrievers),
        list(suites) or None,
        out=out,
        metrics=list(metrics) or None,
        cache_dir=cache_dir,
        split=split,
        ignore_identical_ids=ignore_identical_ids,
        unknown_docs=unknown_docs,
        seed=seed,
    )
    terminal.print_console(command_section("harness eval", result.to_dict()))
    click.echo(f"wrote {out / 'result.json'}")
