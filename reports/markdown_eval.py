"""The report document as Markdown, for pull-request comments.

Renders every section of a :class:`reports.json_report.Report` (eval with its suites and
MTEB tasks, A/B analyses and decisions, training logs, unknown kinds) with the same
headline sentences and table cells as the HTML and terminal outputs. Figures are listed by
title (they live in the HTML report). Where ``reports.markdown`` offers a renderer for a
comparison or gate result, that renderer's text is used for those sections instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from harness.reports.json_report import Report, Section, Table

COLLAPSE_ROWS = 12


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_table(table: Table) -> str:
    lines = [f"**{cell(table.title)}**", ""]
    lines.append("| " + " | ".join(cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if numeric else "---" for numeric in table.numeric) + "|")
    for row in table.rows:
        texts = []
        for c in row:
            value = cell(c.full)
            texts.append(f"**{value}**" if c.tone == "best" else value)
        lines.append("| " + " | ".join(texts) + " |")
    if table.note:
        lines += ["", f"<sub>{cell(table.note)}</sub>"]
    body = "\n".join(lines)
    if len(table.rows) > COLLAPSE_ROWS:
        return f"<details><summary>{cell(table.title)} ({len(table.rows)} rows)</summary>\n\n{body}\n\n</details>"
    return body


def render_section(section: Section, external: Callable[[Section], str | None] | None = None) -> str:
    badge = f" — **{section.badge}**" if section.badge else ""
    parts = [f"## {section.title}{badge}", "", f"`{section.kind}` result from `{section.source}`", ""]
    replacement = external(section) if external else None
    if replacement:
        lines = replacement.strip().splitlines()
        if lines and lines[0].startswith("## "):  # the section's own heading says it already
            lines = lines[1:]
        parts += ["\n".join("#" + line if line.startswith("## ") else line for line in lines).strip(), ""]
    else:
        parts += [line for text in section.intro for line in (text, "")]
        if section.headline:
            parts += [f"- {line}" for line in section.headline] + [""]
        for table in section.tables:
            parts += [render_table(table), ""]
    if section.figures:
        parts.append("Figures in the HTML report: " + "; ".join(f"*{f.title}*" for f in section.figures) + ".")
        parts.append("")
    if section.notes:
        parts += [f"> {note}" for note in section.notes] + [""]
    if section.provenance:
        parts += [f"<details><summary>Provenance</summary>\n\n{section.provenance}\n\n</details>", ""]
    return "\n".join(parts)


def _external_renderer() -> Callable[[Section], str | None] | None:
    """``reports.markdown``'s compare/gate renderers, where they exist (they read the raw result)."""
    try:
        from harness.reports import markdown as owned
    except Exception:
        return None
    candidates: dict[str, list[str]] = {
        "compare": ["compare_markdown", "render_compare", "comparison_markdown"],
        "gate": ["gate_markdown", "render_gate"],
    }
    found: dict[str, Callable[[dict[str, Any]], str]] = {}
    for kind, names in candidates.items():
        for name in names:
            if callable(getattr(owned, name, None)):
                found[kind] = getattr(owned, name)
                break
    if not found:
        return None

    def external(section: Section) -> str | None:
        function = found.get(section.kind)
        if function is None or section.raw is None:
            return None
        try:
            return function(section.raw)
        except Exception:
            return None

    return external


def render(report: Report) -> str:
    external = _external_renderer()
    parts = [f"# {report.title}", "", f"_{len(report.sources)} result file(s); the figures are in the HTML report._", ""]
    parts += [line for section in report.sections for line in (render_section(section, external), "")]
    parts.append("<details><summary>Result files</summary>\n")
    parts.append("| file | kind | created |")
    parts.append("|---|---|---|")
    for source in report.sources:
        parts.append(f"| `{cell(source['path'])}` | {cell(source['kind'])} | {cell(source['created_at'] or '-')} |")
    parts.append("\n</details>\n")
    return "\n".join(parts)


def write(report: Report, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(report), encoding="utf-8")
    return target
