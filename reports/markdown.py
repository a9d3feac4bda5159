"""The report document as Markdown: the whole report (``harness report --markdown``) and a
section's pull-request comment (``gate.md``, ``compare.md``: ``Section.comment``).

Headline sentences and table cells are the document's, so the Markdown carries the same
numbers as the HTML and the terminal. Figures are listed by title (they live in the HTML
report). A section with a comment form shows it in the report in place of its full tables:
what a pull request is shown is what the report shows.
"""

from __future__ import annotations

from pathlib import Path

from harness.reports.document import (
    Block, Bullets, Cell, Code, Collapsed, FinePrint, Heading, Paragraph, Quote, Report, Section, Table,
)
from harness.reports.formatting import literal

COLLAPSE_ROWS = 12
RULES = {"left": "---", "right": "---:", "center": ":-:"}


def render_table(table: Table, collapse_rows: int | None = COLLAPSE_ROWS) -> str:
    """A table with its bold title and its note; longer than ``collapse_rows`` rows, folded away."""
    # an unnamed column's header cell is one space, `| |`
    header = "|" + "|".join(f" {literal(name)} " if name else " " for name in table.columns) + "|"
    lines = [f"**{literal(table.title)}**", ""] if table.title else []
    lines += [header, "|" + "|".join(RULES[align] for align in table.align) + "|"]
    for row in table.rows:
        texts = [f"**{literal(c.full)}**" if c.tone == "best" else literal(c.full) for c in row]
        lines.append("| " + " | ".join(texts) + " |")
    if table.note:
        lines += ["", f"<sub>{literal(table.note)}</sub>"]
    body = "\n".join(lines)
    if collapse_rows is not None and len(table.rows) > collapse_rows:
        return render_block(Collapsed(f"{literal(table.title)} ({len(table.rows)} rows)", [Paragraph([body])]))
    return body


def render_block(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return "\n".join(block.lines)
    if isinstance(block, Quote):
        return "\n".join(f"> {line}" for line in block.lines)
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, FinePrint):
        return f"<sub>{block.text}</sub>"
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    if isinstance(block, Collapsed):
        return f"<details><summary>{block.summary}</summary>\n\n{render_blocks(block.blocks)}\n\n</details>"
    if isinstance(block, Table):
        return render_table(block, collapse_rows=None)
    raise TypeError(f"no Markdown for a {type(block).__name__} block")


def render_blocks(blocks: list[Block]) -> str:
    return "\n\n".join(render_block(block) for block in blocks)


def comment(section: Section) -> str:
    """The section's pull-request comment (``gate.md``, ``compare.md``)."""
    if not section.comment:
        raise ValueError(f"the {section.kind} section from {section.source} has no comment form")
    return render_blocks(section.comment) + "\n"


def render_section(section: Section) -> str:
    badge = f" — **{section.badge}**" if section.badge else ""
    parts = [f"## {section.title}{badge}", "", f"`{section.kind}` result from `{section.source}`", ""]
    if section.comment:
        # the comment's own heading says what this section's heading says
        body = section.comment[1:] if isinstance(section.comment[0], Heading) else section.comment
        parts += [render_blocks(body), ""]
    else:
        parts += [line for text in section.intro for line in (text, "")]
        if section.headline:
            parts += [render_block(Bullets(section.headline)), ""]
        for table in section.tables:
            parts += [render_table(table), ""]
    if section.figures:
        parts += ["Figures in the HTML report: " + "; ".join(f"*{f.title}*" for f in section.figures) + ".", ""]
    if section.notes:
        parts += [render_block(Quote(section.notes)), ""]
    if section.provenance:
        parts += [render_block(Collapsed("Provenance", [Paragraph([section.provenance])])), ""]
    return "\n".join(parts)


def render(report: Report) -> str:
    parts = [f"# {report.title}", "", f"_{len(report.sources)} result file(s); the figures are in the HTML report._", ""]
    parts += [line for section in report.sections for line in (render_section(section), "")]
    files = Table("", ["file", "kind", "created"],
                  [[Cell(f"`{source['path']}`"), Cell(str(source["kind"])), Cell(str(source["created_at"] or "-"))] for source in report.sources],
                  numeric=[False] * 3)
    parts.append(render_block(Collapsed("Result files", [files])) + "\n")
    return "\n".join(parts)


def write(text: str, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
