"""Any result no module renders (a newer kind, or one that is malformed): its fields, with a
note that says why. A report never crashes on a result it cannot read."""

from __future__ import annotations

from typing import Any

from harness.reports.document import Section, Table
from harness.reports.formatting import num, text
from harness.reports.sections.captions import provenance_line

MAX_ROWS = 80


def _flatten(data: Any, prefix: str = "", depth: int = 0, out: list | None = None) -> list[tuple[str, Any]]:
    out = [] if out is None else out
    if isinstance(data, dict) and depth < 3:
        for key, value in data.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), depth + 1, out)
    elif isinstance(data, list):
        if data and all(not isinstance(v, (dict, list)) for v in data) and len(data) <= 12:
            out.append((prefix, ", ".join(str(v) for v in data)))
        else:
            out.append((prefix, f"[{len(data)} items]"))
    elif isinstance(data, dict):
        out.append((prefix, f"{{{len(data)} fields}}"))
    else:
        out.append((prefix, data))
    return out


def generic_section(source: str, data: dict[str, Any], note: str) -> Section:
    kind = str(data.get("kind"))
    section = Section(title=f"Result of kind {kind!r}", kind=kind, source=source,
                      provenance=provenance_line(data.get("provenance") or {}), badge="NOT RENDERED", badge_tone="warn")
    section.notes.append(note)
    rows = [
        [text(key), num(value) if isinstance(value, (int, float)) else text(str(value)[:200])]
        for key, value in _flatten({k: v for k, v in data.items() if k != "provenance"})
    ][:MAX_ROWS]
    section.tables.append(Table("Fields", ["field", "value"], rows))
    return section
