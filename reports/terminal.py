"""The report document in the terminal (rich): the whole report (``harness report``), and a
section's console form, what ``harness eval``, ``compare`` and ``gate`` print."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from harness.reports.document import Paragraph, Report, Section, Table

TONE_STYLES = {"best": "bold", "strong": "bold", "good": "green", "bad": "red", "warn": "yellow", "muted": "dim"}
BADGE_STYLES = {"good": "bold green", "bad": "bold red", "warn": "bold yellow"}


def make_console() -> Console:
    """A console as wide as the terminal, or 160 columns when output goes to a file or CI log."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def rich_table(table: Table) -> RichTable:
    """A rich table of a document table: the same cells as the HTML and Markdown, intervals under the means."""
    out = RichTable(title=table.title, title_justify="left", caption=table.note or None, caption_justify="left", caption_style="dim")
    for name, align, width in zip(table.columns, table.align, table.widths):
        out.add_column(name, justify=align, overflow="fold", max_width=width)
    for number, row in enumerate(table.rows):
        cells = []
        for cell in row:
            value = Text(cell.text, style=TONE_STYLES.get(cell.tone, ""))
            if cell.detail:
                value.append("\n" + cell.detail, style="dim")
            cells.append(value)
        row_tone = table.row_tones[number] if table.row_tones else ""
        out.add_row(*cells, style=TONE_STYLES.get(row_tone) or None)
    return out


def print_console(section: Section, console: Console | None = None) -> None:
    """What the command that made the result prints (``Section.console``)."""
    if not section.console:
        raise ValueError(f"the {section.kind} section from {section.source} has no console form")
    console = console or make_console()
    for block in section.console:
        if isinstance(block, Table):
            console.print(rich_table(block))
        elif isinstance(block, Paragraph):
            for line in block.lines:
                console.print(line, style=TONE_STYLES.get(block.tone) or None, markup=False)
        else:
            raise TypeError(f"no terminal form for a {type(block).__name__} block")


def print_report(report: Report, console: Console | None = None) -> None:
    """The whole report document in the terminal: headlines, tables, notes, figure titles."""
    console = console or make_console()
    console.rule(Text(report.title, style="bold"))
    for section in report.sections:
        title = Text(section.title, style="bold")
        if section.badge:
            title.append("  " + section.badge, style=BADGE_STYLES.get(section.badge_tone, "bold"))
        console.rule(title, align="left")
        console.print(Text(f"{section.kind} result from {section.source}", style="dim"))
        for line in section.intro:
            console.print(Text(line))
        for line in section.headline:
            console.print(Text("• " + line))
        for table in section.tables:
            console.print(rich_table(table))
        if section.figures:
            console.print(Text("Figures (in the HTML report): " + "; ".join(f.title for f in section.figures), style="dim"))
        for note in section.notes:
            console.print(Text("note: " + note, style="yellow"))
        if section.provenance:
            console.print(Text("provenance: " + section.provenance, style="dim"))
