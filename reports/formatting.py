"""How the report writes numbers: once here, for every section and every renderer.

The full form (``num``, ``fmt``: thousands separators, scientific notation for tiny or
huge values, "-" for missing) and the short forms' fixed decimals (``fixed``: the
figures ``harness compare`` and ``harness gate`` print and post).
"""

from __future__ import annotations

import math
from typing import Any

from harness.reports.document import Cell

METRIC_NAMES = {"ndcg": "nDCG", "mrr": "MRR", "map": "MAP", "recall": "Recall", "precision": "P", "hit": "Hit", "judged": "Judged"}


def num(value: Any, digits: int = 4) -> Cell:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Cell("-", None, tone="muted")
    if isinstance(value, bool):
        return Cell("yes" if value else "no", int(value))
    if isinstance(value, int):
        return Cell(f"{value:,}", value)
    if isinstance(value, (float,)):
        return Cell(fmt(value, digits), float(value))
    return Cell(str(value), str(value))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) < 1e-4 or abs(value) >= 10**7):
        return f"{value:.{max(1, digits - 2)}e}"
    return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:,.{max(0, digits - 3)}f}"


def fixed(value: Any, digits: int = 4, sign: bool = False, missing: str = "-") -> str:
    """A number with ``digits`` decimals (``sign``: always with its sign); text as it is,
    whole numbers whole, booleans yes/no, ``missing`` for none."""
    if value is None:
        return missing
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def signed(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:+.{digits}f}"


def difference(value: Any, low: Any = None, high: Any = None, tone: str = "") -> Cell:
    """A signed difference (an effect, a preference), sorted by its value, its interval below it."""
    return Cell(signed(value), value, detail=interval(low, high, 4, sign=True), tone=tone)


def pvalue(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def interval(low: Any, high: Any, digits: int = 4, sign: bool = False) -> str:
    if low is None or high is None:
        return ""
    f = (lambda x: signed(x, digits)) if sign else (lambda x: fmt(x, digits))
    return f"[{f(low)}, {f(high)}]"


def ms(value: Any) -> Cell:
    """A duration in milliseconds (or seconds): two decimals below 10, one above."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return Cell("-", None, tone="muted")
    return Cell(f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}", float(value))


def text(value: Any) -> Cell:
    return Cell("-" if value in (None, "") else str(value), None if value is None else str(value))


def short(fingerprint: Any, n: int = 12) -> str:
    return str(fingerprint)[:n] if fingerprint else "-"


def metric_label(metric: str) -> str:
    name, _, k = metric.partition("@")
    return f"{METRIC_NAMES.get(name, name)}@{k}" if k else METRIC_NAMES.get(name, name)


def literal(value: Any) -> str:
    """A value inside inline-Markdown text of a short form: a ``|`` would end a table cell and
    a newline the line, so the one is escaped and the other a space."""
    return str(value).replace("|", "\\|").replace("\n", " ")
