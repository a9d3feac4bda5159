"""``harness report``: render any mix of result files as HTML, Markdown and terminal text."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import OutputPath
from harness.errors import HarnessError


def resolve(paths: tuple[Path, ...]) -> list[Path]:
    """Result files; a folder stands for its ``result.json`` (``harness eval --out``), its
    ``compare.json`` or ``gate.json``, or is a fine-tuned model's folder (``training_card.json``)."""
    resolved = []
    for path in paths:
        if path.is_dir():
            if (path / "training_card.json").is_file():
                resolved.append(path)
                continue
            found = [path / name for name in ("result.json", "compare.json", "gate.json") if (path / name).is_file()]
            if not found:
                raise HarnessError(f"{path}: a folder without result.json, compare.json, gate.json or training_card.json; give the result file itself")
            resolved.extend(found)
        else:
            resolved.append(path)
    return resolved


def check_results(paths: list[Path]) -> None:
    """Evaluation results get the per-query checks ``harness compare`` and ``harness gate``
    make (``harness.results.read_eval_result``), so a NaN, missing or out-of-range score is
    an error naming the file, suite, retriever, metric and query, not a figure in a report."""
    from harness.reports.sections.training import is_model_folder
    from harness.results import read_eval_result, read_result

    for path in paths:
        if not is_model_folder(path) and read_result(path)["kind"] == "eval":
            read_eval_result(path)


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--html", "html_path", type=OutputPath(folder=False), help="Write one self-contained HTML file here.")
@click.option("--markdown", "markdown_path", type=OutputPath(folder=False), help="Write Markdown (for a pull-request comment) here.")
@click.option("--json", "json_path", type=OutputPath(folder=False), help="Write the report document (sections, tables, figure data) as JSON here.")
@click.option("--title", help="Title of the report (default: from the kinds of results).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the report in the terminal.")
def report(results, html_path, markdown_path, json_path, title, quiet) -> None:
    """Render evaluation, comparison, gate, fine-tuning and A/B results.

    RESULTS are result files (JSON with schema_version, kind and provenance), folders
    holding one (result.json, compare.json, gate.json) or a fine-tuned model's folder
    (training_card.json and training_log.json), in any mix of kinds; each becomes a section. The terminal gets
    the same headlines and tables as the HTML and Markdown; an unknown kind is shown as
    its raw fields with a note.

    \b
    Example:
      harness report out/eval/result.json --html report.html
      harness report out/eval out/compare out/gate models/ft analysis.json decision.json \\
        --html report.html --markdown report.md
    """
    from harness.files import staged, write_json
    from harness.reports.sections import build_report

    paths = resolve(results)
    check_results(paths)  # before any rendering
    document = build_report(paths, title=title)
    if not quiet:
        from harness.reports.terminal import print_report

        print_report(document)
    outputs = [path for path in (markdown_path, json_path, html_path) if path is not None]
    # all the files appear together, or (an error or Ctrl-C on the way) none of them changes
    with staged(*outputs) as staging:
        where = dict(zip(outputs, staging))
        if markdown_path is not None:
            from harness.reports import markdown

            markdown.write(markdown.render(document), where[markdown_path])
        if json_path is not None:
            write_json(where[json_path], document.to_dict(), default=str)
        if html_path is not None:
            from harness.reports import html

            html.write(document, where[html_path])
    for path in outputs:
        click.echo(f"wrote {path}")
