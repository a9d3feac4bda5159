"""The report document: what every renderer reads, and all it reads.

A :class:`Report` holds one or more :class:`Section` per result (built by the modules of
``harness.reports.sections``). A section has its full form, drawn by the HTML report, the
report's Markdown and ``harness report`` in the terminal: intro and headline sentences,
:class:`Table` s of :class:`Cell` s, :class:`Figure` specifications, notes, provenance.

Beside it, a section may carry the short forms the command that made the result writes
itself, in blocks (:class:`Heading`, :class:`Paragraph`, :class:`Table`, ...):

- ``comment``: the pull-request comment (``gate.md``, ``compare.md``); its text is inline
  Markdown (code spans, bold). The report's Markdown shows it in place of the full tables.
- ``console``: what ``harness eval``, ``compare`` and ``gate`` print in the terminal.
- ``tests``: the checks as a test suite, for JUnit XML (``junit.xml`` of ``harness gate``).

Renderers lay these out; they choose no content and compute no number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Union


@dataclass
class Cell:
    """One table cell: ``text`` to show, ``value`` to sort by, ``detail`` (an interval) and a
    ``tone`` (best, good, bad, warn, muted, strong) for emphasis."""

    text: str
    value: float | str | None = None
    detail: str = ""
    tone: str = ""

    @property
    def full(self) -> str:
        return f"{self.text} ({self.detail})" if self.detail else self.text


@dataclass
class Table:
    """Rows of cells. ``numeric`` (derived from the values unless given) right-aligns and
    sorts a column as numbers; ``align`` (left, right, center) overrides the alignment;
    ``widths`` are the most characters a column takes in the terminal before its text
    folds (``None``: no limit; empty: 48 for text columns, no limit for numbers);
    ``row_tones`` colour whole rows in the terminal (a check's row by its status)."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]
    numeric: list[bool] = field(default_factory=list)
    note: str = ""
    key: str = ""
    align: list[str] = field(default_factory=list)
    widths: list[int | None] = field(default_factory=list)
    row_tones: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.numeric:
            self.numeric = [
                all(isinstance(row[i].value, (int, float)) or row[i].value is None for row in self.rows) and any(
                    isinstance(row[i].value, (int, float)) for row in self.rows
                )
                for i in range(len(self.columns))
            ]
        if not self.align:
            self.align = ["right" if numeric else "left" for numeric in self.numeric]
        if not self.widths:
            self.widths = [None if numeric else 48 for numeric in self.numeric]


@dataclass
class Figure:
    """What to plot (``plot``: a function of ``reports.plots``) with the numbers it needs."""

    key: str
    title: str
    plot: str
    data: dict[str, Any]
    caption: str
    alt: str = ""


# ------------------------------------------------------------------------------ blocks of the short forms


@dataclass
class Heading:
    text: str
    level: int = 3


@dataclass
class Paragraph:
    """Lines shown together (one paragraph in Markdown, one printed line each in the terminal)."""

    lines: list[str]
    tone: str = ""


@dataclass
class Quote:
    lines: list[str]


@dataclass
class Bullets:
    items: list[str]


@dataclass
class FinePrint:
    """Small print under a table: options, hashes, what a star means."""

    text: str


@dataclass
class Code:
    """Preformatted text (an error message)."""

    text: str


@dataclass
class Collapsed:
    """Blocks hidden behind a summary line until opened (``<details>`` in Markdown)."""

    summary: str
    blocks: list["Block"]


Block = Union[Heading, Paragraph, Quote, Bullets, FinePrint, Code, Collapsed, Table]


# ------------------------------------------------------------------------------ checks as a test suite


@dataclass
class TestCase:
    """One check. ``outcome``: "" (passed), ``failure``, ``skipped`` or ``error``; ``kind``
    tells failures apart (fail, inconclusive); ``output`` is what the check read."""

    __test__ = False  # not a pytest class

    group: str
    name: str
    outcome: str = ""
    kind: str = ""
    message: str = ""
    detail: str = ""
    output: str = ""


@dataclass
class TestSuite:
    __test__ = False  # not a pytest class

    name: str
    cases: list[TestCase]
    properties: list[tuple[str, str]] = field(default_factory=list)
    timestamp: str = ""


# ------------------------------------------------------------------------------ sections and the report


@dataclass
class Section:
    title: str
    kind: str
    source: str
    intro: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    provenance: str = ""
    badge: str = ""
    badge_tone: str = ""
    key: str = ""
    comment: list[Block] = field(default_factory=list)
    console: list[Block] = field(default_factory=list)
    tests: TestSuite | None = None


# the short forms restate the result in its command's own formats, and the layout of a table
# is the renderers' business: the JSON document holds the report's content
COMMAND_FORMS = ("comment", "console", "tests")
TABLE_LAYOUT = ("align", "widths", "row_tones")


@dataclass
class Report:
    title: str
    sections: list[Section]
    sources: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for section in data["sections"]:
            for name in COMMAND_FORMS:
                section.pop(name)
            for table in section["tables"]:
                for name in TABLE_LAYOUT:
                    table.pop(name)
        return data

    def headline(self) -> list[str]:
        return [line for section in self.sections for line in section.headline]
