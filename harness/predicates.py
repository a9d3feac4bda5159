"""Metadata predicates: the one language of slices (``slice:date>=2025-01-01``) and of the
filter arm (``filter(first=dense,where=date>=2025-01-01)``).

Syntax: ``KEY OP VALUE`` with OP one of ``= != >= <= > <``, several joined with ``&``
(all must hold). :func:`parse` checks the syntax alone, so a bad spelling fails when the
command starts; :func:`bind` reads the data and types every predicate by its field:

* a field whose values are JSON numbers compares as numbers;
* a field whose values are all ISO 8601 dates or date-times (as the standard library's
  ``datetime.fromisoformat`` reads them: ``2025-01-01``, ``2025-01-01T09:30``) compares as
  dates; ``2025-1-1`` is not ISO 8601 and is refused with the accepted form;
* a field of JSON booleans takes ``true`` / ``false``, by equality;
* any other text field takes ``=`` and ``!=`` only: ``<`` on text is an error, since the
  order of two strings says nothing about the values they name.

A field that no record carries is an error, as is a field that mixes types (numbers in
some records, text in others). A record without the field (or with ``null``) neither
passes nor fails: ``holds`` returns None and the caller decides.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.errors import HarnessError

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
ORDERED = (">=", "<=", ">", "<")
ISO_FORMS = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
_PREDICATE = re.compile(r"^\s*(?P<key>[A-Za-z_][\w.\-]*)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>.+?)\s*$")


@dataclass(frozen=True)
class Predicate:
    """One ``KEY OP VALUE`` as written, before the data gives it a type."""

    key: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def parse(text: str, source: str) -> list[Predicate]:
    """The predicates of ``text``; ``source`` names where they were written (for errors)."""
    predicates = []
    for part in text.split("&"):
        match = _PREDICATE.match(part)
        if not match:
            raise HarnessError(
                f"{source}: bad predicate {part.strip()!r}: expected KEY OP VALUE with OP one of = != >= <= > <, "
                "several joined with &"
            )
        predicates.append(Predicate(match["key"], match["op"], match["value"]))
    return predicates


@dataclass(frozen=True)
class FieldType:
    """The type of one metadata field in the data, with what reads a value as it."""

    key: str
    kind: str  # "number", "date", "boolean" or "text"
    example: Any  # a value of this kind from the data, for messages
    timezone_aware: bool = False

    def read(self, value: Any) -> Any:
        """A data value as this type (the data was checked by :func:`field_type`)."""
        if self.kind == "date":
            return datetime.fromisoformat(value)
        if self.kind == "number":
            return float(value)
        return value

    def read_written(self, text: str, source: str) -> Any:
        """A value written in a predicate, as this type, or a one-line error."""
        if self.kind == "number":
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise HarnessError(f"{source}: {text!r} is not a number ({self.key!r} holds numbers in the data)")
            return number
        if self.kind == "date":
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise HarnessError(
                    f"{source}: {text!r} is not an ISO 8601 date ({self.key!r} holds dates in the data): write {ISO_FORMS}"
                ) from None
            if (moment.tzinfo is not None) != self.timezone_aware:
                with_zone = "with" if self.timezone_aware else "without"
                raise HarnessError(f"{source}: {text!r}: the dates of {self.key!r} in the data are {with_zone} a time zone; write the value so too")
            return moment
        if self.kind == "boolean":
            if text.lower() not in ("true", "false"):
                raise HarnessError(f"{source}: {text!r} is not true or false ({self.key!r} holds booleans in the data)")
            return text.lower() == "true"
        return text


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "text"
        return "date"
    return type(value).__name__


def field_type(key: str, records: Iterable[Mapping[str, Any]], source: str, where: str) -> FieldType:
    """The type ``key`` has across ``records`` (metadata dicts); ``where`` names them in the
    plural ("queries and documents of data/demo")."""
    examples: dict[str, Any] = {}
    zones: set[bool] = set()
    present: set[str] = set()
    for metadata in records:
        present.update(metadata)
        value = metadata.get(key)
        if value is None:
            continue
        kind = _kind_of(value)
        examples.setdefault(kind, value)
        if kind == "date":
            zones.add(datetime.fromisoformat(value).tzinfo is not None)
    if not examples:
        known = ", ".join(sorted(present)) or "none"
        raise HarnessError(f"{source}: none of the {where} has metadata {key!r} (keys present: {known})")
    kinds = set(examples)
    if kinds == {"date", "text"}:
        kinds = {"text"}  # strings, some of them not dates: the field is text
    if len(kinds) > 1:
        found = ", ".join(f"{kind} ({examples[kind]!r})" for kind in sorted(examples))
        raise HarnessError(f"{source}: metadata {key!r} mixes types among the {where}: {found}")
    kind = kinds.pop()
    if kind not in ("number", "date", "boolean", "text"):
        raise HarnessError(f"{source}: metadata {key!r} holds {kind} values ({examples[kind]!r}); predicates compare numbers, dates, booleans or text")
    if kind == "date" and len(zones) > 1:
        raise HarnessError(f"{source}: metadata {key!r} mixes dates with and without a time zone among the {where}")
    return FieldType(key, kind, examples[kind], timezone_aware=zones == {True})


@dataclass(frozen=True)
class TypedPredicate:
    """A predicate whose value is read as its field's type in the data."""

    predicate: Predicate
    field: FieldType
    value: Any

    def holds(self, metadata: Mapping[str, Any]) -> bool | None:
        """True or False, or None when the metadata lacks the key (or holds null)."""
        raw = metadata.get(self.predicate.key)
        if raw is None:
            return None
        return OPERATORS[self.predicate.op](self.field.read(raw), self.value)


def bind(predicates: Iterable[Predicate], records: Iterable[Mapping[str, Any]], source: str, where: str) -> list[TypedPredicate]:
    """Type every predicate by its field in ``records``, or fail with one line naming
    ``source`` (where the predicates were written) and ``where`` (the data)."""
    records = list(records)
    typed = []
    for predicate in predicates:
        field = field_type(predicate.key, records, source, where)
        if predicate.op in ORDERED and field.kind not in ("number", "date"):
            raise HarnessError(
                f"{source}: {predicate.op!r} needs numbers or ISO 8601 dates, but {predicate.key!r} holds {field.kind} "
                f"in the data (e.g. {field.example!r}); use = or !="
            )
        typed.append(TypedPredicate(predicate, field, field.read_written(predicate.value, source)))
    return typed
