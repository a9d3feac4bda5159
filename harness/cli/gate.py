"""``harness gate``: decide from a TOML policy whether a candidate may be promoted."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.options import OutputPath, device_option


@click.command("gate")
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path), help="The gate policy (TOML).")
@click.option("--out", type=OutputPath(), help="Write OUT/gate.json, OUT/gate.md, OUT/junit.xml (and OUT/eval).")
@click.option("--baseline", help="Override the policy's baseline spec.")
@click.option("--candidate", help="Override the policy's candidate spec.")
@click.option("--data", type=click.Path(path_type=Path), help="Override the policy's dataset folder.")
@click.option("--results", "results", multiple=True, type=click.Path(path_type=Path),
              help="Read these evaluation results instead of evaluating (overrides the policy; repeatable).")
@click.option("--max-queries", type=int, help="Judge on a seeded sample of at most this many queries per suite.")
@click.option("--seed", type=int, help="Override the policy's seed.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), envvar="HARNESS_CACHE",
              help="Cache folder for embeddings and indexes (overrides the policy; or $HARNESS_CACHE).")
@device_option
def gate(policy_path, out, baseline, candidate, data, results, max_queries, seed, cache_dir):
    """Run (or read) the evaluations a policy names and decide: pass, fail or inconclusive.

    Exit code 0 when every check passes, 1 when any fails (do not promote), 2 when none
    fails but one is inconclusive (hold; 0 if the policy sets inconclusive_blocks = false),
    3 on any error, including a bad policy. Command-line overrides are recorded in the result.

    \b
    Example:
      harness datasets demo --out data/demo
      harness gate --policy examples/gate.toml --out out/gate
      harness gate --policy examples/gate.toml --candidate "dense(dim=16)" --out out/gate-degraded
      harness gate --policy examples/gate.toml --max-queries 20 --out out/gate-small
    """
    from harness import provenance
    from harness.errors import HarnessError
    from harness.gate import obtain_result, run_gate
    from harness.policy import load_policy
    from harness.reports import junit, markdown, terminal
    from harness.reports.sections import command_section

    overrides = {"baseline": baseline, "candidate": candidate, "data": data, "results": list(results) or None,
                 "max_queries": max_queries,
                 "seed": seed, "cache": cache_dir}
    policy = load_policy(policy_path, overrides)
    try:
        result = obtain_result(policy, out)
        body = run_gate(policy, result)
    except HarnessError as exc:
        if out is not None:
            _write_error(out, policy, str(exc))
        raise
    document = {"schema_version": 1, "kind": "gate", "provenance": provenance.collect(seed=policy.seed), **body}
    section = command_section("harness gate", document)
    terminal.print_console(section)
    if out is not None:
        _publish(out, document, markdown.comment(section), junit.render(section))
        click.echo(f"wrote {out / 'gate.json'}, {out / 'gate.md'} and {out / 'junit.xml'}")
    # sys.exit, not ctx.exit: the top-level group runs click in non-standalone mode, where
    # click would swallow ctx.exit's code; SystemExit reaches the shell (and CliRunner) as is
    sys.exit(document["exit_code"])


def _write_error(out: Path, policy, message: str) -> None:
    """Leave an error record where CI looks for the gate's outputs (the command still exits 3)."""
    from xml.sax.saxutils import quoteattr

    from harness import provenance

    document = {"schema_version": 1, "kind": "gate", "provenance": provenance.collect(seed=policy.seed),
                "status": "error", "exit_code": 3, "error": message, "policy": policy.describe()}
    markdown = f"## ❌ Promotion gate: error\n\n```\n{message}\n```\n\nAn error never passes.\n"
    junit = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="harness gate" tests="1" failures="0" errors="1">\n'
        f'  <testcase classname="gate" name="evaluation"><error type="error" message={quoteattr(message)}/></testcase>\n'
        "</testsuite>\n"
    )
    _publish(out, document, markdown, junit)


def _publish(out: Path, document: dict[str, Any], markdown: str, junit: str) -> None:
    """OUT/gate.json, OUT/gate.md and OUT/junit.xml, put in place together: an interrupt
    leaves the previous three as they were (``harness.files.staged``)."""
    from harness.files import staged, write_json

    with staged(out / "gate.json", out / "gate.md", out / "junit.xml") as (json_file, markdown_file, junit_file):
        write_json(json_file, document, default=str)
        markdown_file.write_text(markdown, encoding="utf-8")
        junit_file.write_text(junit, encoding="utf-8")

