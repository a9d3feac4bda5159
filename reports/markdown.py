"""Markdown for gate and compare results, fit to post as a pull-request comment.

Renderers compute nothing: every number comes from the result dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
VERDICTS = {
    "pass": "**PASS**: every check passed; the candidate may be promoted.",
    "fail": "**FAIL**: at least one check failed; do not promote.",
    "inconclusive": "**INCONCLUSIVE**: nothing failed, but the evaluation cannot tell for at least one check.",
}


def _num(value: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def gate_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"## {ICONS.get(result['status'], '')} Promotion gate: `{result['candidate']}` vs `{result['baseline']}`",
        "",
        VERDICTS[result["status"]] + f" (exit {result['exit_code']})",
    ]
    if result["status"] == "inconclusive" and not result["policy"].get("inconclusive_blocks", True):
        lines.append("The policy sets `inconclusive_blocks = false`, so the gate does not hold the candidate.")
    summary = result["summary"]
    lines += [
        "",
        f"{summary['pass']} passed, {summary['fail']} failed, {summary['inconclusive']} inconclusive.",
        "",
        "| | check | reason |",
        "|---|---|---|",
    ]
    for check in result["checks"]:
        lines.append(f"| {ICONS[check['status']]} {check['status']} | {_cell(check['name'])} | {_cell(check['reason'])} |")
    stats_checks = [c for c in result["checks"] if c["type"] != "budget"]
    if stats_checks:
        lines += [
            "",
            "<details><summary>Numbers</summary>",
            "",
            "| check | n | baseline | candidate | diff | CI | p (adj.) | MDE | W/T/L |",
            "|---|---:|---:|---:|---:|---|---:|---:|---|",
        ]
        for check in stats_checks:
            n = check["numbers"]
            lines.append(
                f"| {_cell(check['name'])} | {n['n']} | {_num(n['baseline_mean'])} | {_num(n['candidate_mean'])} | "
                f"{_num(n['difference'], signed=True)} | [{_num(n['ci_low'], signed=True)}, {_num(n['ci_high'], signed=True)}] | "
                f"{_num(n['p_adjusted'] if n.get('p_adjusted') is not None else n['p_value'], 4)} | {_num(n['mde'], 3)} | "
                f"{n['wins']}/{n['ties']}/{n['losses']} |"
            )
        lines += ["", "</details>"]
    options = result["options"]
    policy = result["policy"]
    sample = f", a seeded sample of at most {options['max_queries']} queries per suite" if options.get("max_queries") else ""
    lines += [
        "",
        f"<sub>Superiority: {options['superiority_test']}, {options['correction']} correction; intervals: "
        f"{options['interval']}; {options['n_resamples']} resamples, seed {options['seed']}{sample}. "
        f"Policy `{policy.get('path')}` (sha256 {str(policy.get('sha256', ''))[:12]}); dataset "
        f"`{result.get('dataset', {}).get('name', '?')}` ({str(result.get('dataset', {}).get('hash', ''))[:12]}).</sub>",
        "",
    ]
    return "\n".join(lines)


def compare_markdown(result: dict[str, Any]) -> str:
    options = result["options"]
    lines = [f"## Comparison with `{result['baseline']}`", ""]
    for warning in result.get("warnings", []):
        lines.append(f"> ⚠️ {warning}")
    if result.get("warnings"):
        lines.append("")
    lines += [
        "| suite | metric | candidate | n | baseline | candidate | diff | 95% CI | p (adj.) | d_z | MDE | W/T/L |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for c in result["comparisons"]:
        lines.append(
            f"| {_cell(c['suite'])} | {c['metric']} | `{_cell(c['candidate'])}` | {c['n']} | {_num(c['baseline_mean'])} | "
            f"{_num(c['candidate_mean'])} | {_num(c['difference'], signed=True)} | "
            f"[{_num(c['ci_low'], signed=True)}, {_num(c['ci_high'], signed=True)}] | {_num(c['p_adjusted'])}"
            f"{' *' if c['significant'] else ''} | {_num(c['effect_size'], 2)} | {_num(c['mde'], 3)} | "
            f"{c['wins']}/{c['ties']}/{c['losses']} |"
        )
    lines += [
        "",
        f"<sub>{options['test']}; {options['correction']} correction across all {len(result['comparisons'])} comparisons; "
        f"* significant at {options['alpha']}. Intervals: {options['interval']}.</sub>",
        "",
        "### Decision table: quality vs cost",
        "",
    ]
    for table in result["decision_table"]:
        lines += [
            f"**{_cell(table['suite'])}** ({table['metric']}, {table['n']} queries)",
            "",
            "| arm | quality | diff [95% CI] | p95 ms | build s | encode s | dim | Pareto |",
            "|---|---:|---|---:|---:|---:|---:|:-:|",
        ]
        for row in table["rows"]:
            diff = "baseline" if row["difference"] is None else (
                f"{_num(row['difference'], signed=True)} [{_num(row['ci_low'], signed=True)}, {_num(row['ci_high'], signed=True)}]")
            lines.append(
                f"| `{_cell(row['arm'])}` | {_num(row['quality'])} | {diff} | {_num(row['p95_ms'], 1)} | "
                f"{_num(row['build_seconds'], 1)} | {_num(row['encode_seconds'], 1)} | {_num(row['dimension'])} | "
                f"{'●' if row['pareto'] else ''} |"
            )
        lines.append("")
    moved = [c for c in result["comparisons"] if c.get("moved", {}).get("gains") or c.get("moved", {}).get("losses")]
    if moved:
        lines += ["<details><summary>Queries that moved most</summary>", ""]
        for c in moved:
            lines.append(f"**{_cell(c['suite'])}**, {c['metric']}, `{_cell(c['candidate'])}`")
            lines.append("")
            for label, key in (("gain", "gains"), ("loss", "losses")):
                for q in c["moved"].get(key, []):
                    lines.append(f"- {label} {q['difference']:+.3f} ({q['baseline']:.3f} → {q['candidate']:.3f}) "
                                 f"`{q['query_id']}` {_cell(q['text'])}")
            lines.append("")
        lines += ["</details>", ""]
    return "\n".join(lines)


def write_markdown(text: str, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
