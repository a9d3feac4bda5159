"""Sections of a promotion gate (``harness gate``): the verdict as a badge, each check with
its numbers, the figure of differences against thresholds; and the forms ``harness gate``
writes itself (``gate.md``, ``junit.xml``, its terminal table)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from harness.reports.document import Cell, Collapsed, Figure, FinePrint, Heading, Paragraph, Section, Table, TestCase, TestSuite
from harness.reports.formatting import difference, fixed, fmt, num, pvalue, short, text
from harness.reports.sections.captions import STATS_LIBRARIES, dataset_line, known_models, provenance_line, versions
from harness.reports.sections.compare import forest_rows
from harness.reports.sections.generic import generic_section

if TYPE_CHECKING:
    from harness.reports.sections import Context

KIND_NAMES = {"gate": "promotion gate"}
TONES = {"pass": "good", "fail": "bad", "inconclusive": "warn"}
ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
VERDICTS = {
    "pass": "**PASS**: every check passed; the candidate may be promoted.",
    "fail": "**FAIL**: at least one check failed; do not promote.",
    "inconclusive": "**INCONCLUSIVE**: nothing failed, but the evaluation cannot tell for at least one check.",
}


def sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    status = str(data.get("status") or "?")
    baseline, candidate = data.get("baseline"), data.get("candidate")
    section = Section(
        title=f"Promotion gate: {candidate} vs {baseline}",
        kind="gate", source=source,
        provenance=provenance_line(data.get("provenance") or {}, STATS_LIBRARIES),
        badge=status.upper(), badge_tone=TONES.get(status, "warn"),
    )
    summary = data.get("summary") or {}
    section.headline.append(
        f"Gate {status.upper()} (exit {data.get('exit_code', '?')}): "
        + ", ".join(f"{summary.get(s, 0)} {s}" for s in ("pass", "fail", "inconclusive") if s in summary or not summary)
    )
    checks = [c for c in data.get("checks") or [] if isinstance(c, dict)]
    if not checks:
        return [generic_section(source, data, note="This gate result has no checks this renderer knows; its fields are listed as they are.")]
    for check in checks:
        section.headline.append(f"{str(check.get('status', '?')).upper()}: {check.get('name')} -- {check.get('reason', '')}")
    section.tables.append(checks_table(checks))
    dataset = data.get("dataset") or {}
    figure_caption = (
        "Models: " + known_models([s for s in (baseline, candidate) if s], context.retrievers) + ". "
        + (f"Data: {dataset_line(dataset)}. " if dataset else "")
        + "Versions: " + versions(data.get("provenance") or {}, STATS_LIBRARIES) + "."
    )
    statistical = [c for c in checks if c.get("type") != "budget"]
    if statistical:
        rows = [(c.get("numbers") or {}) | {"label": c.get("name"), "significant": c.get("status") == "pass" and c.get("type") == "superiority"}
                for c in statistical]
        section.figures.append(
            Figure("", "Gate checks: differences, intervals and thresholds", "forest",
                   {"rows": forest_rows(rows, [threshold(c) for c in statistical])},
                   figure_caption, alt="Each statistical check's paired difference with its interval and the threshold it is judged against")
        )
    policy = data.get("policy")
    options = data.get("options") or {}
    if isinstance(policy, dict):
        section.intro.append(
            f"Policy {policy.get('path', '?')} (sha256 {short(policy.get('sha256'))})"
            + (f"; overrides: {policy['overrides']}" if policy.get("overrides") else "")
            + (f". Superiority: {options.get('superiority_test')}, {options.get('correction')} correction; intervals: {options.get('interval')}; "
               f"{fmt(options.get('n_resamples'))} resamples, seed {options.get('seed')}." if options else ".")
        )
    return [section]


def threshold(check: dict[str, Any]) -> float | None:
    """What a statistical check is judged against: -margin (non-inferiority) or min_lift."""
    n = check.get("numbers") or {}
    return -n["margin"] if check.get("type") == "non-inferiority" and n.get("margin") is not None else n.get("min_lift")


def checks_table(checks: list[dict[str, Any]]) -> Table:
    rows = []
    for check in checks:
        n = check.get("numbers") or {}
        is_stat = check.get("type") != "budget"
        rows.append(
            [
                Cell(str(check.get("status", "-")), str(check.get("status")), tone=TONES.get(str(check.get("status")), "")),
                text(check.get("name")),
                text(check.get("type")),
                text(check.get("suite")),
                text(check.get("metric")),
                difference(n.get("difference"), n.get("ci_low"), n.get("ci_high")) if is_stat else Cell(fmt(n.get("value"), 3), n.get("value")),
                Cell(pvalue(n.get("p_adjusted") if n.get("p_adjusted") is not None else n.get("p_value")), n.get("p_adjusted", n.get("p_value"))) if is_stat else Cell("-"),
                num(n.get("mde")) if is_stat else Cell("-"),
                Cell(fmt(-n["margin"] if n.get("margin") is not None else n.get("min_lift"), 4) if is_stat else f"limit {fmt(n.get('limit'), 3)}",
                     n.get("limit") if not is_stat else None),
            ]
        )
    return Table("Checks", ["status", "check", "type", "suite", "metric", "difference / value", "p (adj.)", "MDE", "threshold"], rows,
                 note="The reasons are listed above. Superiority: one-sided paired randomization test against min_lift; non-inferiority: the interval's lower bound against -margin; budgets: the candidate's cost against its limit.")


# ------------------------------------------------------------------------------ what `harness gate` writes itself


def comment(data: dict[str, Any]) -> list:
    """``gate.md``: the verdict, each check's reason, the numbers, the options and hashes."""
    status, summary, options, policy = data["status"], data["summary"], data["options"], data["policy"]
    verdict = [VERDICTS[status] + f" (exit {data['exit_code']})"]
    if status == "inconclusive" and not policy.get("inconclusive_blocks", True):
        verdict.append("The policy sets `inconclusive_blocks = false`, so the gate does not hold the candidate.")
    blocks: list = [
        Heading(f"{ICONS.get(status, '')} Promotion gate: `{data['candidate']}` vs `{data['baseline']}`", 2),
        Paragraph(verdict),
        Paragraph([f"{summary['pass']} passed, {summary['fail']} failed, {summary['inconclusive']} inconclusive."]),
        Table("", ["", "check", "reason"], [[Cell(f"{ICONS[c['status']]} {c['status']}"), Cell(c["name"]), Cell(c["reason"])] for c in data["checks"]],
              numeric=[False] * 3),
    ]
    statistical = [c for c in data["checks"] if c["type"] != "budget"]
    if statistical:
        rows = []
        for check in statistical:
            n = check["numbers"]
            p = n["p_adjusted"] if n.get("p_adjusted") is not None else n["p_value"]
            rows.append([Cell(value) for value in (
                check["name"], str(n["n"]), fixed(n["baseline_mean"], missing="–"), fixed(n["candidate_mean"], missing="–"),
                fixed(n["difference"], sign=True, missing="–"),
                f"[{fixed(n['ci_low'], sign=True, missing='–')}, {fixed(n['ci_high'], sign=True, missing='–')}]",
                fixed(p, missing="–"), fixed(n["mde"], 3, missing="–"), f"{n['wins']}/{n['ties']}/{n['losses']}")])
        blocks.append(Collapsed("Numbers", [Table("", ["check", "n", "baseline", "candidate", "diff", "CI", "p (adj.)", "MDE", "W/T/L"], rows,
                                                  align=["left"] + ["right"] * 4 + ["left"] + ["right"] * 2 + ["left"])]))
    sample = f", a seeded sample of at most {options['max_queries']} queries per suite" if options.get("max_queries") else ""
    dataset = data.get("dataset", {})
    blocks.append(FinePrint(
        f"Superiority: {options['superiority_test']}, {options['correction']} correction; intervals: "
        f"{options['interval']}; {options['n_resamples']} resamples, seed {options['seed']}{sample}. "
        f"Policy `{policy.get('path')}` (sha256 {str(policy.get('sha256', ''))[:12]}); dataset "
        f"`{dataset.get('name', '?')}` ({str(dataset.get('hash', ''))[:12]})."
    ))
    return blocks


def console(data: dict[str, Any]) -> list:
    """What ``harness gate`` prints: each check's status and reason, then the verdict."""
    rows = [[Cell(c["status"]), Cell(c["name"]), Cell(c["reason"])] for c in data["checks"]]
    counts = data["summary"]
    return [
        Table(f"gate: {data['candidate']} vs {data['baseline']}", ["status", "check", "reason"], rows, numeric=[False] * 3,
              widths=[None, 50, None], row_tones=[TONES[c["status"]] for c in data["checks"]]),
        Paragraph([f"{data['status'].upper()} (exit {data['exit_code']}): {counts['pass']} passed, {counts['fail']} failed, "
                   f"{counts['inconclusive']} inconclusive"], tone=TONES[data["status"]]),
    ]


def tests(data: dict[str, Any]) -> TestSuite:
    """One test case per check. An inconclusive check is a failure where the policy lets it
    block the candidate (exit 2), and skipped where it does not."""
    blocks = bool(data["policy"].get("inconclusive_blocks", True))
    cases = []
    for check in data["checks"]:
        status, reason = check["status"], check["reason"]
        case = TestCase(f"gate.{check['type']}", check["name"],
                        output=f"{status}: {reason}\n" + json.dumps(check["numbers"], indent=1, default=str))
        if status == "fail" or (status == "inconclusive" and blocks):
            case.outcome, case.kind, case.message, case.detail = "failure", status, reason, reason
        elif status == "inconclusive":
            case.outcome, case.message = "skipped", f"inconclusive: {reason}"
        cases.append(case)
    properties = [
        ("status", data["status"]), ("exit_code", data["exit_code"]), ("baseline", data["baseline"]), ("candidate", data["candidate"]),
        ("policy", data["policy"].get("path")), ("policy_sha256", data["policy"].get("sha256")),
        ("dataset_hash", data.get("dataset", {}).get("hash")), ("max_queries", data["options"].get("max_queries")),
    ]
    return TestSuite(f"harness gate: {data['candidate']} vs {data['baseline']}", cases,
                     [(name, "" if value is None else str(value)) for name, value in properties],
                     timestamp=str(data.get("provenance", {}).get("created_at", "")))


BUILDERS = {"gate": sections}
FORMS = {"gate": lambda data: {"comment": comment(data), "console": console(data), "tests": tests(data)}}
