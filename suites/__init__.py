"""Suites: what is measured. Each suite is named by a string, the same on the CLI and in
policies: ``heldout[:SPLIT]``, ``slice:PREDICATES[@SPLIT]``, ``slice:doc-disjoint``,
``mteb:TASK[,TASK...]``."""

from __future__ import annotations

from harness.errors import HarnessError
from harness.suites.base import EvalContext, Suite

KINDS = ("heldout", "slice", "mteb")


def parse_suite(text: str, default_split: str = "test") -> Suite:
    kind, _, argument = text.strip().partition(":")
    if kind == "heldout":
        from harness.suites.heldout import HeldOutSuite

        return HeldOutSuite(argument or default_split)
    if kind == "slice":
        from harness.suites.slice import SliceSuite

        if not argument:
            raise HarnessError("slice needs a selector, e.g. slice:subdomain=billing or slice:doc-disjoint")
        selector, at, split = argument.rpartition("@") if "@" in argument else (argument, "", "")
        return SliceSuite(selector, split=split if at else default_split)
    if kind == "mteb":
        try:
            from harness.suites.mteb import MTEBSuite
        except ImportError:
            raise HarnessError("the mteb suite is not available in this build") from None
        return MTEBSuite.parse(argument)
    raise HarnessError(f"unknown suite {text!r} (known kinds: {', '.join(KINDS)})")


__all__ = ["EvalContext", "Suite", "parse_suite"]
