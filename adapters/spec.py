"""The retriever spec grammar: one short string names a retriever everywhere.

Grammar (whitespace around tokens is ignored)::

    spec   := kind [':' value] ['(' args ')']
    args   := arg (',' arg)*
    arg    := key '=' value | spec
    value  := spec | quoted | bare
    bare   := characters other than , ( ) = quotes and spaces; may contain ':' '/' '.' '-' '~'
              (an option's value may contain '=' too: where=date>=2025-01-01)
    quoted := '...' or "..."   (for paths holding commas, parentheses or spaces)

Argument lists nest at most ``MAX_NESTING`` (32) deep; deeper is an error, not a
crash of the recursive parser.

Examples::

    bm25
    bm25(stemmer=english,k1=1.2)
    dense                        (the default base model, all-MiniLM-L6-v2)
    dense:models/ft-minilm       (a folder or a hub name)
    dense:default(dim=64)
    hybrid(bm25,dense:default)   (reciprocal rank fusion)
    hybrid(bm25,dense,method=wsum,norm=min-max,weights=0.3;0.7)
    rerank(models/ce,top=100,first=dense:models/ft)
    filter(first=dense,field=subdomain,where=date>=2025-01-01)

``Spec.parse`` returns a tree; ``str(spec)`` renders it back in canonical form, so the
same retriever is written the same way in results, reports and policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import HarnessError

_SPECIAL = set(",()='\"")
# deeper than any real arm (rerank over a filter over a hybrid is 3), far within Python's recursion limit
MAX_NESTING = 32
# an option's value may hold '=' unquoted, so a predicate reads as written: where=date>=2025-01-01
OPTION_VALUE_ALLOWS = "="


@dataclass(frozen=True)
class Spec:
    kind: str
    value: str | None = None
    args: tuple["Spec", ...] = ()
    options: tuple[tuple[str, "Spec"], ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> "Spec":
        parser = _Parser(text)
        spec = parser.spec()
        parser.skip_space()
        if parser.pos != len(text):
            parser.fail("unexpected text after the spec")
        return spec

    def option(self, key: str, default: str | None = None) -> str | None:
        for name, value in self.options:
            if name == key:
                return value.as_text()
        return default

    def option_spec(self, key: str) -> "Spec | None":
        for name, value in self.options:
            if name == key:
                return value
        return None

    def check_options(self, known: set[str]) -> None:
        """Fail on any option the retriever kind does not take (a typo must not be ignored)."""
        unknown = {key for key, _ in self.options} - known
        if unknown:
            raise HarnessError(f"{self.kind}: unknown option(s) {', '.join(sorted(unknown))} in {self} (known: {', '.join(sorted(known))})")

    def first_stage(self, example: str) -> "Spec":
        """The ``first=SPEC`` option of a retriever built over another; ``example`` shows one in the error."""
        first = self.option_spec("first")
        if first is None:
            raise HarnessError(f"{self.kind} needs a first stage, e.g. first={example}: {self}")
        return first

    def as_text(self) -> str:
        """The spec as a plain value (an option such as ``top=100``): as written, without
        the quotes that kept its spaces or commas together."""
        if self.args or self.options:
            return str(self)
        return self.kind + (f":{self.value}" if self.value is not None else "")

    def __str__(self) -> str:
        return self._render(allow="")

    def _render(self, allow: str) -> str:
        head = _quote(self.kind, allow) + (f":{_quote(self.value, allow)}" if self.value is not None else "")
        parts = [str(arg) for arg in self.args] + [f"{key}={value._render(allow=OPTION_VALUE_ALLOWS)}" for key, value in self.options]
        return f"{head}({','.join(parts)})" if parts else head


def _quote(token: str, allow: str = "") -> str:
    if token and not any((c in _SPECIAL and c not in allow) or c.isspace() for c in token):
        return token
    return "'" + token + "'" if "'" not in token else '"' + token + '"'


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0  # argument lists open at the current position

    def fail(self, message: str) -> None:
        pointer = " " * self.pos + "^"
        raise HarnessError(f"bad retriever spec at column {self.pos + 1}: {message}\n  {self.text}\n  {pointer}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, stop: str, allow: str = "") -> str:
        """A bare or quoted token; a bare one ends at a special character not in ``allow``
        or at one in ``stop``."""
        self.skip_space()
        if self.peek() in ("'", '"'):
            quote = self.text[self.pos]
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                self.fail("unterminated quote")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return value
        start = self.pos
        while (
            self.pos < len(self.text)
            and (self.text[self.pos] not in _SPECIAL or self.text[self.pos] in allow)
            and self.text[self.pos] not in stop
            and not self.text[self.pos].isspace()
        ):
            self.pos += 1
        value = self.text[start : self.pos].strip()
        if not value:
            self.fail("expected a name")
        return value

    def spec(self, allow: str = "") -> Spec:
        kind = self.token(stop=":", allow=allow)
        value = None
        if self.peek() == ":":
            self.pos += 1
            value = self.token(stop="", allow=allow)
        args: list[Spec] = []
        options: list[tuple[str, Spec]] = []
        if self.peek() == "(":
            self.depth += 1
            if self.depth > MAX_NESTING:
                self.fail(f"argument lists nested deeper than {MAX_NESTING}")
            self.pos += 1
            if self.peek() == ")":
                self.fail("empty argument list")
            while True:
                start = self.pos
                item = self.spec()
                if self.peek() == "=":
                    if item.value is not None or item.args or item.options:
                        self.pos = start
                        self.fail("an option name must be a plain word")
                    self.pos += 1
                    options.append((item.kind, self.spec(allow=OPTION_VALUE_ALLOWS)))
                elif options:
                    self.pos = start
                    self.skip_space()
                    self.fail("positional argument after an option")
                else:
                    args.append(item)
                nxt = self.peek()
                if nxt == ",":
                    self.pos += 1
                    continue
                if nxt == ")":
                    self.pos += 1
                    break
                self.fail("expected ',' or ')'")
            self.depth -= 1
        return Spec(kind=kind, value=value, args=tuple(args), options=tuple(options))
