"""Sections of the A/B side: an analysis (``harness ab analyze``: sample ratio, effects with
fixed-horizon and always-valid intervals, per-variant values, figures by day), a decision
(``harness ab decide``, with the analysis it read) and an interleaving test."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.reports.document import Cell, Figure, Section, Table
from harness.reports.formatting import difference, fmt, interval, num, pvalue, signed, text
from harness.reports.sections.captions import AB_LIBRARIES, provenance_line, versions

if TYPE_CHECKING:
    from harness.reports.sections import Context

KIND_NAMES = {"ab-analysis": "A/B analysis", "ab-decision": "A/B decision", "ab-interleaving": "interleaving"}


def analysis_key(data: dict[str, Any]) -> tuple:
    """Which analysis a result is: its experiment and when it was made."""
    return ((data.get("experiment") or {}).get("experiment_id"), (data.get("provenance") or {}).get("created_at"))



def versus(control: Any, treatment: Any, effect: Any, low: Any, high: Any, tone: str = "") -> list[Cell]:
    """A metric's value under control and under treatment, and the effect with its interval."""
    return [num(control), num(treatment), difference(effect, low, high, tone=tone)]


def caption(analysis: dict[str, Any], prov: dict[str, Any]) -> str:
    exp = analysis.get("experiment") or {}
    window = analysis.get("analysis_window") or {}
    source = analysis.get("source") or {}
    where = source.get("db") or source.get("parquet") or "?"
    description = f" ({exp['description']})" if exp.get("description") else ""
    return (
        f"Experiment {exp.get('experiment_id', '?')}{description}: variants {', '.join(exp.get('variants') or [])}, "
        f"control {exp.get('control', '?')}; logs {where}, window {window.get('start', '?')} to {window.get('end', '?')}. "
        f"Versions: {versions(prov, AB_LIBRARIES)}."
    )


def analysis_sections(source: str, data: dict[str, Any], context: Context | None = None, title: str | None = None) -> list[Section]:
    exp = data.get("experiment") or {}
    srm = data.get("srm") or {}
    prov = data.get("provenance") or {}
    primary = exp.get("primary_metric")
    guardrails = [g for g in exp.get("guardrails") or [] if g != primary]
    figure_caption = caption(data, prov)
    section = Section(
        title=title or f"A/B test {exp.get('experiment_id', '?')}: analysis",
        kind="ab-analysis",
        source=source,
        provenance=provenance_line(prov, AB_LIBRARIES),
    )
    if srm:
        section.headline.append(
            f"Sample ratio: users {', '.join(f'{k} {v:,}' for k, v in (srm.get('users') or {}).items())}; "
            f"chi-square p = {pvalue(srm.get('pvalue'))}" + (" -- MISMATCH: no decision is valid until the assignment is fixed" if srm.get("mismatch") else " (no mismatch)")
        )
    effects = data.get("effects") or []
    last_cumulative = {}
    for row in data.get("cumulative") or []:
        key = (row.get("treatment"), row.get("metric"))
        if key not in last_cumulative or row.get("day", 0) >= last_cumulative[key].get("day", 0):
            last_cumulative[key] = row
    for e in effects:
        if e.get("metric") == primary:
            seq = last_cumulative.get((e.get("treatment"), primary)) or {}
            section.headline.append(
                f"{e.get('treatment')} vs {exp.get('control', 'control')}, {primary} (primary): {signed(e.get('effect_size'))}"
                + (f" ({signed(e.get('rel_effect_size') * 100, 2)}%)" if e.get("rel_effect_size") is not None else "")
                + f", 95% interval {interval(e.get('effect_size_ci_lower'), e.get('effect_size_ci_upper'), 4, sign=True)}"
                + (f", always-valid interval {interval(e.get('seq_ci_lower', seq.get('seq_ci_lower')), e.get('seq_ci_upper', seq.get('seq_ci_upper')), 4, sign=True)}"
                   if (e.get("seq_ci_lower") is not None or seq.get("seq_ci_lower") is not None) else "")
            )
    if srm:
        users = srm.get("users") or {}
        shares = srm.get("expected_share") or {}
        total = sum(users.values()) or 1
        section.tables.append(
            Table(
                "Sample-ratio check",
                ["variant", "users", "observed share", "expected share"],
                [[text(v), num(users.get(v)), num(users.get(v, 0) / total), num(shares.get(v))] for v in users],
                note=f"Chi-square test: chi2 = {fmt(srm.get('chi2'))}, p = {pvalue(srm.get('pvalue'))}; a mismatch is p < {srm.get('threshold', 0.001)}.",
            )
        )
        section.figures.append(
            Figure("", "Sample-ratio check", "srm", {"users": users, "expected_share": shares, "pvalue": srm.get("pvalue"),
                                                      "mismatch": srm.get("mismatch"), "threshold": srm.get("threshold")},
                   figure_caption, alt="Observed share of users per variant against the planned share")
        )
    if effects:
        rows = []
        for e in effects:
            role = "primary" if e.get("metric") == primary else ("guardrail" if e.get("metric") in guardrails else "")
            p_holm = e.get("pvalue_holm")
            tone = ""
            if p_holm is not None and p_holm < (data.get("options") or {}).get("alpha", 0.05):
                tone = "good" if (e.get("effect_size") or 0) * (e.get("direction") or 1) > 0 else "bad"
            power = e.get("power") or {}
            rows.append(
                [
                    text(e.get("treatment")),
                    text(e.get("metric")),
                    text(role),
                    *versus(e.get("control_value"), e.get("treatment_value"), e.get("effect_size"), e.get("effect_size_ci_lower"),
                            e.get("effect_size_ci_upper"), tone),
                    Cell(signed(e["rel_effect_size"] * 100, 2) + "%" if e.get("rel_effect_size") is not None else "-", e.get("rel_effect_size")),
                    Cell(pvalue(e.get("pvalue")), e.get("pvalue")),
                    Cell(pvalue(p_holm), p_holm),
                    Cell(interval(e.get("seq_ci_lower"), e.get("seq_ci_upper"), 4, sign=True) or "-", e.get("seq_ci_lower")),
                    num(power.get("users_needed")),
                    num(power.get("days_needed")),
                ]
            )
        treatments = sorted({str(e.get("treatment")) for e in effects})
        if len(treatments) == 1:  # one treatment: say it in the title rather than on every row
            rows = [row[1:] for row in rows]
        section.tables.append(
            Table(
                f"Effects ({treatments[0]} - {exp.get('control', 'control')}), users as units" if len(treatments) == 1
                else "Effects (treatment - control), users as units",
                (["treatment"] if len(treatments) > 1 else []) + ["metric", "role", "control", "treatment", "effect", "relative", "p", "Holm p", "always-valid interval", "users needed", "days needed"],
                rows,
                note="Effect with its fixed-horizon 95% interval (delta method" + (", CUPED" if (data.get("options") or {}).get("cuped") else "")
                + "); the always-valid interval is the confidence sequence, valid on any day; users needed to detect a "
                + f"{fmt(((data.get('options') or {}).get('mde') or 0) * 100, 3)}% lift at 80% power.",
            )
        )
    variants = data.get("variants") or {}
    if variants:
        names = [m for m in (data.get("options") or {}).get("metrics") or [] if any(m in (v.get("metrics") or {}) for v in variants.values())]
        section.tables.append(
            Table(
                "Per-variant values",
                ["variant", "users", "queries", *names],
                [[text(v), num(x.get("users")), num(round(x["queries"]) if isinstance(x.get("queries"), (int, float)) else None), *[num((x.get("metrics") or {}).get(m)) for m in names]] for v, x in variants.items()],
            )
        )
    metrics_to_plot = [m for m in [primary, *guardrails] if m][:4]
    cumulative = [r for r in data.get("cumulative") or [] if r.get("metric") in metrics_to_plot]
    if cumulative:
        section.figures.append(
            Figure(
                "",
                "Cumulative effect over days with its always-valid interval",
                "ab_cumulative",
                {"rows": cumulative, "metrics": metrics_to_plot, "primary": primary, "start": (data.get("analysis_window") or {}).get("start"),
                 "horizon_days": (data.get("sequential") or {}).get("horizon_days")},
                figure_caption + " " + str((data.get("sequential") or {}).get("method", "")),
                alt="Cumulative treatment effect by day with the fixed-horizon interval and the confidence sequence",
            )
        )
    daily = [r for r in data.get("daily") or [] if r.get("metric") in metrics_to_plot[:2]]
    if daily:
        section.figures.append(
            Figure("", "Effect of each single day (novelty)", "ab_daily", {"rows": daily, "metrics": metrics_to_plot[:2], "primary": primary},
                   figure_caption, alt="Effect on the users of each day, with its 95% interval: a fading effect is novelty")
        )
    quality = data.get("data_quality") or {}
    if quality:
        section.notes.append("Data quality: " + ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in quality.items()) + ".")
    props = data.get("propensities") or {}
    if props.get("values"):
        section.notes.append(
            "Position propensities (" + ", ".join(sorted(set(map(str, props.get("sources") or [])))) + "): "
            + ", ".join(fmt(v, 3) for v in props["values"]) + "."
        )
    return [section]


def decision_sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    # the analysis a decision read is shown with it, unless the report holds that analysis already
    skip_analysis = analysis_key(data.get("analysis") or {}) in {
        analysis_key(other) for _, other in context.results if other.get("kind") == "ab-analysis"}
    result = data.get("decision") or {}
    analysis = data.get("analysis") or {}
    exp = data.get("experiment") or analysis.get("experiment") or {}
    decision = str(result.get("decision", "?"))
    section = Section(
        title=f"A/B test {exp.get('experiment_id', '?')}: decision",
        kind="ab-decision",
        source=source,
        provenance=provenance_line(data.get("provenance") or {}, AB_LIBRARIES),
        badge=decision.upper(),
        badge_tone={"promote": "good", "rollback": "bad"}.get(decision, "warn"),
    )
    section.headline.append(
        f"Decision: {decision.upper()}" + (f" {result['variant']}" if result.get("variant") else "")
        + f" (exit code {result.get('exit_code', '?')}; {result.get('method', '?')} intervals, alpha {result.get('alpha', '?')})"
    )
    rows = []
    for treatment in result.get("treatments") or []:
        for reason in treatment.get("reasons") or []:
            section.headline.append(f"{treatment.get('treatment')}: {reason}")
        for metric, m in (treatment.get("metrics") or {}).items():
            tone = "good" if m.get("significantly_better") else ("bad" if m.get("significantly_worse") else "")
            rows.append(
                [
                    text(treatment.get("treatment")),
                    text(treatment.get("decision")),
                    text(metric),
                    text(m.get("role")),
                    *versus(m.get("control"), m.get("treatment"), m.get("effect_size"), m.get("ci_lower"), m.get("ci_upper"), tone),
                    Cell(pvalue(m.get("pvalue_holm")), m.get("pvalue_holm")),
                    Cell("better" if m.get("significantly_better") else ("worse" if m.get("significantly_worse") else "-"), None, tone=tone),
                    Cell("yes" if m.get("non_inferior") else "no", int(bool(m.get("non_inferior"))), tone="" if m.get("non_inferior") else "warn"),
                    num(m.get("margin")),
                ]
            )
    if rows:
        section.tables.append(
            Table(
                "What the decision read",
                ["treatment", "decision", "metric", "role", "control", "treatment", "effect", "Holm p", "significantly", "non-inferior", "margin"],
                rows,
                note="Intervals are " + ("always-valid (confidence sequence)" if result.get("method") == "sequential" else "fixed-horizon")
                + "; p-values Holm-adjusted over the primary metric and the guardrails.",
            )
        )
    if data.get("audit_id"):
        section.notes.append(f"Recorded in the audit table as {data['audit_id']}.")
    out = [section]
    if analysis and not skip_analysis:
        out.extend(analysis_sections(source, analysis | {"provenance": analysis.get("provenance") or data.get("provenance") or {}},
                                     title=f"A/B test {exp.get('experiment_id', '?')}: the analysis behind the decision"))
    elif skip_analysis:
        section.notes.append("Its analysis is the ab-analysis result shown in this report.")
    return out


def interleaving_sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    a, b = data.get("a", "A"), data.get("b", "B")
    section = Section(title=f"Interleaving test {data.get('experiment_id', '')}: {a} vs {b}", kind="ab-interleaving", source=source,
                      provenance=provenance_line(data.get("provenance") or {}, AB_LIBRARIES))
    winner = data.get("winner")
    section.badge = f"WINNER {winner}" if winner else "NO WINNER YET"
    section.badge_tone = "good" if winner else "warn"
    section.headline.append(
        f"Preference for {b}: {signed(data.get('preference'))} (95% interval {interval(data.get('ci_lower'), data.get('ci_upper'), 4, sign=True)}), "
        f"p = {pvalue(data.get('pvalue'))}; winner: {winner or 'none yet'}"
    )
    power = data.get("power") or {}
    section.tables.append(
        Table(
            "Team-draft interleaving",
            ["users", "impressions", f"wins {a}", f"wins {b}", "ties", "preference", "p", "sign-test p", "users needed"],
            [[num(data.get("users")), num(data.get("impressions")), num(data.get("wins_a")), num(data.get("wins_b")), num(data.get("ties")),
              difference(data.get("preference"), data.get("ci_lower"), data.get("ci_upper")),
              Cell(pvalue(data.get("pvalue")), data.get("pvalue")), Cell(pvalue(data.get("sign_test_pvalue")), data.get("sign_test_pvalue")),
              num(power.get("users_needed"))]],
        )
    )
    return [section]


BUILDERS = {"ab-analysis": analysis_sections, "ab-decision": decision_sections, "ab-interleaving": interleaving_sections}
