"""Rich tables for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.results import EvalResult

HEADLINE_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "judged@10")


def eval_tables(result: EvalResult) -> list[Table]:
    metrics = [m for m in HEADLINE_METRICS if m in result.options["metrics"]] or result.options["metrics"][:5]
    info = {r.spec: r for r in result.retrievers}
    tables = []
    for suite in result.suites:
        excluded = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in suite.excluded.items() if count)
        title = f"{suite.name}: {len(suite.query_ids)} queries" + (f" (excluded: {excluded})" if excluded else "")
        table = Table(title=title, title_justify="left")
        table.add_column("retriever", overflow="fold", max_width=48)
        for metric in metrics:
            table.add_column(metric, justify="right")
        # latency and build time belong to the harness's own search, not to a benchmark's
        costs = suite.kind != "mteb"
        if costs:
            table.add_column("p50 ms", justify="right")
            table.add_column("p95 ms", justify="right")
            table.add_column("build s", justify="right")
        for spec, values in suite.aggregates.items():
            latency = info[spec].latency if spec in info else {}
            build = info[spec].build_seconds if spec in info else None
            cost_cells = [
                f"{latency['p50_ms']:.1f}" if latency else "-",
                f"{latency['p95_ms']:.1f}" if latency else "-",
                f"{build:.1f}" if build is not None else "-",
            ]
            table.add_row(spec, *(f"{values[m]:.4f}" if m in values else "-" for m in metrics), *(cost_cells if costs else []))
        tables.append(table)
    return tables


def make_console() -> Console:
    """A console as wide as the terminal, or 160 columns when output goes to a file or CI log."""
    import sys

    return Console() if sys.stdout.isatty() else Console(width=160)


def print_eval(result: EvalResult, console: Console | None = None) -> None:
    console = console or make_console()
    for table in eval_tables(result):
        console.print(table)
    console.print(f"dataset {result.dataset['name']} ({result.dataset['hash'][:12]})", style="dim")


# ---------------------------------------------------------------------------- report documents

TONE_STYLES = {"best": "bold", "good": "green", "bad": "red", "warn": "yellow", "muted": "dim"}


def report_table(table) -> Table:
    """A rich table of a ``reports.json_report.Table`` (same cells as the HTML and Markdown)."""
    from rich.text import Text

    out = Table(title=table.title, title_justify="left", caption=table.note or None, caption_justify="left", caption_style="dim")
    for name, numeric in zip(table.columns, table.numeric):
        out.add_column(name, justify="right" if numeric else "left", overflow="fold", max_width=None if numeric else 48)
    for row in table.rows:
        cells = []
        for cell in row:
            value = Text(cell.text, style=TONE_STYLES.get(cell.tone, ""))
            if cell.detail:
                value.append("\n" + cell.detail, style="dim")
            cells.append(value)
        out.add_row(*cells)
    return out


def print_report(report, console: Console | None = None) -> None:
    """The whole report document in the terminal: headlines, tables, notes, figure titles."""
    from rich.text import Text

    console = console or make_console()
    console.rule(Text(report.title, style="bold"))
    for section in report.sections:
        title = Text(section.title, style="bold")
        if section.badge:
            title.append("  " + section.badge, style={"good": "bold green", "bad": "bold red", "warn": "bold yellow"}.get(section.badge_tone, "bold"))
        console.rule(title, align="left")
        console.print(Text(f"{section.kind} result from {section.source}", style="dim"))
        for line in section.intro:
            console.print(Text(line))
        for line in section.headline:
            console.print(Text("• " + line))
        for table in section.tables:
            console.print(report_table(table))
        if section.figures:
            console.print(Text("Figures (in the HTML report): " + "; ".join(f.title for f in section.figures), style="dim"))
        for note in section.notes:
            console.print(Text("note: " + note, style="yellow"))
        if section.provenance:
            console.print(Text("provenance: " + section.provenance, style="dim"))
