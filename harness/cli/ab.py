"""``harness ab``: online A/B tests of retrievers over a DuckDB log store. Each subcommand
lives in a module named for it (``harness/cli/ab_<name>.py``); they import only click at
load time, so ``harness ab --help`` stays fast."""

from __future__ import annotations

import click

from harness.cli.ab_analyze import analyze
from harness.cli.ab_decide import decide
from harness.cli.ab_ingest import ingest
from harness.cli.ab_interleave import interleave
from harness.cli.ab_pairs import pairs
from harness.cli.ab_simulate import simulate


@click.group()
def ab() -> None:
    """Online A/B tests: ingest logs, simulate, analyse, decide, interleave, training pairs.

    \b
    Example:
      harness ab simulate --out logs --users 20000 --days 14 --effect 0.03
      harness ab ingest --db ab.duckdb --experiment logs/experiment.json 'logs/*.jsonl'
      harness ab analyze --db ab.duckdb --out analysis.json
      harness ab decide --db ab.duckdb --out decision.json
    """


for command in (ingest, simulate, analyze, decide, interleave, pairs):
    ab.add_command(command)
