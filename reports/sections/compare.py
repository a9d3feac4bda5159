"""Sections of a comparison (``harness compare``): every paired comparison, the decision
tables of quality against cost, the queries that moved most, the figures; and the forms
``harness compare`` writes itself (``compare.md``, its terminal tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.reports.document import Bullets, Cell, Collapsed, Figure, FinePrint, Heading, Paragraph, Quote, Section, Table
from harness.reports.formatting import difference, fixed, fmt, interval, literal, metric_label, ms, num, pvalue, signed, text
from harness.reports.sections.captions import STATS_LIBRARIES, dataset_line, known_models, provenance_line, versions
from harness.reports.sections.generic import generic_section

if TYPE_CHECKING:
    from harness.reports.sections import Context

KIND_NAMES = {"compare": "comparison"}
PARETO_FIGURES = 3


def sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    comparisons = _comparisons(data)
    baseline = data.get("baseline") or (comparisons[0].get("baseline") if comparisons else None)
    candidates = data.get("candidates") or sorted({str(c.get("candidate")) for c in comparisons})
    specs = [s for s in [baseline, *candidates] if s]
    section = Section(
        title=f"Comparison with the baseline {baseline}" if baseline else "Comparison",
        kind=str(data.get("kind")), source=source,
        provenance=provenance_line(data.get("provenance") or {}, STATS_LIBRARIES),
    )
    options = data.get("options") or {}
    if options:
        section.intro.append(
            f"Test: {options.get('test', '?')}; interval: {options.get('interval', '?')}; correction {options.get('correction', '?')}, "
            f"alpha {options.get('alpha', '?')}, {fmt(options.get('n_resamples'))} resamples, seed {options.get('seed', '?')}"
            + (f"; a seeded sample of at most {options['max_queries']} queries per suite" if options.get("max_queries") else "") + "."
        )
    figure_caption = caption(data, specs, context.retrievers)
    for c in comparisons:
        verdict = "significant" if c.get("significant") else ("not significant" if c.get("significant") is False else "")
        section.headline.append(
            f"{c.get('candidate')} vs {c.get('baseline')} on {c.get('suite')}, {metric_label(str(c.get('metric')))}: "
            f"{signed(c.get('difference'))} {interval(c.get('ci_low'), c.get('ci_high'), 4, sign=True)}"
            + (f", p adj. {pvalue(c.get('p_adjusted'))}, {verdict}" if verdict else f", p {pvalue(c.get('p_value'))}")
        )
    if comparisons:
        section.figures.append(
            Figure("", "Paired differences with their confidence intervals", "forest", {"rows": forest_rows(comparisons)},
                   figure_caption, alt="Mean paired difference of each candidate with its interval; zero means no difference")
        )
        diffs = per_query_differences(comparisons)
        if diffs:
            section.figures.append(
                Figure("", "Distribution of per-query differences", "difference_histograms", {"series": diffs}, figure_caption,
                       alt="Histogram of candidate minus baseline score per query")
            )
        else:
            section.notes.append("This compare result carries no per-query differences, so their distribution is not drawn.")
    section.figures.extend(pareto_figures(data, figure_caption))
    pareto = pareto_points(data)
    if pareto:
        section.figures.append(
            Figure("", f"{metric_label(pareto['metric'])} against p95 latency", "pareto", pareto, figure_caption,
                   alt="Quality against 95th-percentile latency with the Pareto front from the comparison")
        )
    if comparisons:
        section.tables.append(comparison_table(comparisons))
    section.tables.extend(decision_tables(data))
    if comparisons:
        moved = moved_table(comparisons)
        if moved:
            section.tables.append(moved)
    for warning in data.get("warnings") or []:
        section.notes.append(f"warning: {warning}")
    if not comparisons and not section.tables:
        return [generic_section(source, data, note="No comparisons found in this result; its fields are listed as they are.")]
    return [section]


def _comparisons(data: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("comparisons", "results"):
        value = data.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict) and "difference" in value[0]:
            return value
    return []


def caption(data: dict[str, Any], specs: list[str], known: dict[str, dict[str, Any]]) -> str:
    parts = []
    if specs:
        parts.append("Models: " + known_models(specs, known) + ".")
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and dataset:
        parts.append("Data: " + dataset_line(dataset) + ".")
    sources = data.get("sources")
    if isinstance(sources, list) and sources:
        parts.append("From: " + ", ".join(str(s) for s in sources) + ".")
    parts.append("Versions: " + versions(data.get("provenance") or {}, STATS_LIBRARIES) + ".")
    return " ".join(parts)


def comparison_table(comparisons: list[dict[str, Any]], title: str = "Paired comparisons") -> Table:
    rows = []
    for c in comparisons:
        significant = c.get("significant")
        diff = c.get("difference")
        tone = ""
        if significant:
            tone = "good" if (diff or 0) > 0 else "bad"
        rows.append(
            [
                text(c.get("suite")),
                text(c.get("metric")),
                text(c.get("baseline")),
                text(c.get("candidate")),
                num(c.get("n")),
                num(c.get("baseline_mean")),
                num(c.get("candidate_mean")),
                difference(diff, c.get("ci_low"), c.get("ci_high"), tone=tone),
                num(c.get("effect_size"), 3),
                Cell(pvalue(c.get("p_value")), c.get("p_value")),
                Cell(pvalue(c.get("p_adjusted")), c.get("p_adjusted")),
                Cell("yes" if significant else ("no" if significant is False else "-"), None if significant is None else int(bool(significant)), tone=tone),
                Cell(f"{c.get('wins', '-')}/{c.get('ties', '-')}/{c.get('losses', '-')}", c.get("wins")),
                num(c.get("mde")),
            ]
        )
    confidence = comparisons[0].get("confidence") if comparisons else None
    columns = ["suite", "metric", "baseline", "candidate", "n", "baseline mean", "candidate mean", "difference", "d_z", "p", "p adj.", "significant", "W/T/L", "MDE"]
    for name, label in (("baseline", "baseline"), ("metric", "metric")):  # a column with one value goes into the title
        values = {str(c.get(name)) for c in comparisons}
        if len(values) == 1 and comparisons:
            index = columns.index(name)
            columns.pop(index)
            rows = [row[:index] + row[index + 1:] for row in rows]
            title += f", {label} {metric_label(values.pop()) if name == 'metric' else values.pop()}"
    return Table(
        title,
        columns,
        rows,
        note=(f"Difference = candidate - baseline, paired on the same queries, with its {confidence:.0%} paired-bootstrap interval; " if confidence else "")
        + "p from the paired randomization test; p adj. after the multiplicity correction; W/T/L: queries won, tied, lost; MDE: minimum detectable effect at 80% power.",
    )


def moved_table(comparisons: list[dict[str, Any]]) -> Table | None:
    rows = []
    for c in comparisons:
        for direction in ("gains", "losses"):
            for m in (c.get("moved") or {}).get(direction) or []:
                d = m.get("difference")
                rows.append(
                    [
                        text(f"{c.get('candidate')} vs {c.get('baseline')}"),
                        text(f"{c.get('suite')} {c.get('metric')}"),
                        text(m.get("query_id")),
                        text(m.get("text")),
                        num(m.get("baseline")),
                        num(m.get("candidate")),
                        Cell(signed(d), d, tone="good" if (d or 0) > 0 else "bad"),
                    ]
                )
    if not rows:
        return None
    return Table("Queries that moved most", ["comparison", "suite, metric", "query", "text", "baseline", "candidate", "difference"], rows)


def forest_rows(comparisons: list[dict[str, Any]], thresholds: list[float | None] | None = None) -> list[dict[str, Any]]:
    """The rows of a forest plot: each difference with its interval, labelled by what differs
    between the rows (and, for a gate, the threshold each check is judged against)."""
    keys = ("suite", "metric", "baseline", "candidate", "difference", "ci_low", "ci_high", "significant", "mde", "label")
    rows = [{k: c.get(k) for k in keys} for c in comparisons]
    one_baseline = len({r["baseline"] for r in rows}) == 1
    one_metric = len({r["metric"] for r in rows}) == 1
    for row in rows:
        if not row.get("label"):
            row["label"] = " · ".join(
                [str(row["candidate"]) + ("" if one_baseline else f" vs {row['baseline']}"), str(row["suite"])]
                + ([] if one_metric else [metric_label(str(row["metric"]))])
            )
    for row, threshold in zip(rows, thresholds or []):
        row["threshold"] = threshold
    return rows


def decision_tables(data: dict[str, Any]) -> list[Table]:
    tables = []
    for block in data.get("decision_table") or []:
        rows = []
        for r in block.get("rows") or []:
            rows.append(
                [
                    Cell(r.get("arm", "-") + (" (baseline)" if r.get("arm") == data.get("baseline") else ""), r.get("arm")),
                    num(r.get("quality")),
                    difference(r.get("difference"), r.get("ci_low"), r.get("ci_high")),
                    Cell(pvalue(r.get("p_adjusted")), r.get("p_adjusted")),
                    ms(r.get("p50_ms")),
                    ms(r.get("p95_ms")),
                    ms(r.get("build_seconds")),
                    ms(r.get("encode_seconds")),
                    num(r.get("dimension")),
                    Cell("yes" if r.get("pareto") else "no", int(bool(r.get("pareto"))), tone="good" if r.get("pareto") else ""),
                ]
            )
        tables.append(
            Table(
                f"Decision table: {block.get('suite')}, {metric_label(str(block.get('metric')))} ({block.get('n', '?')} queries)",
                ["arm", "quality", "difference", "p adj.", "p50 ms", "p95 ms", "build s", "encode s", "dim", "Pareto front"],
                rows,
                note="Quality against p95 latency: an arm is on the Pareto front when no other arm is both better and faster.",
            )
        )
    return tables


def pareto_figures(data: dict[str, Any], figure_caption: str) -> list[Figure]:
    figures = []
    for block in (data.get("decision_table") or [])[:PARETO_FIGURES]:
        points, front, intervals = {}, [], {}
        for r in block.get("rows") or []:
            if r.get("quality") is None or r.get("p95_ms") is None:
                continue
            points[r["arm"]] = [r["quality"], r["p95_ms"]]
            if r.get("pareto"):
                front.append(r["arm"])
        if len(points) < 2:
            continue
        figures.append(
            Figure("", f"{metric_label(str(block.get('metric')))} against p95 latency ({block.get('suite')})", "pareto",
                   {"metric": block.get("metric"), "suite": block.get("suite"), "points": points, "front": front, "intervals": intervals,
                    "front_source": "Pareto flags of the comparison's decision table"},
                   figure_caption, alt="Quality against 95th-percentile latency with the Pareto front of the comparison")
        )
    return figures


def per_query_differences(comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-query differences where the result carries them (``differences`` per comparison)."""
    out = []
    for c in comparisons:
        values = c.get("differences") or c.get("per_query_differences")
        if isinstance(values, dict):
            values = list(values.values())
        if isinstance(values, list) and values and all(isinstance(v, (int, float)) for v in values):
            out.append({"label": f"{c.get('candidate')} vs {c.get('baseline')}: {c.get('suite')} {c.get('metric')}",
                        "values": values, "difference": c.get("difference")})
    return out


def pareto_points(data: dict[str, Any]) -> dict[str, Any] | None:
    """A ``pareto`` block (arms with quality, p95 latency and a front flag), where a result has one."""
    block = data.get("pareto")
    if not block:
        return None
    arms = block.get("arms") if isinstance(block, dict) else block
    if not isinstance(arms, list) or not arms:
        return None
    points, front = {}, []
    for arm in arms:
        name = arm.get("spec") or arm.get("name") or arm.get("arm")
        quality = arm.get("quality", arm.get("mean"))
        latency = arm.get("latency_p95_ms", arm.get("p95_ms"))
        if name is None or quality is None or latency is None:
            continue
        points[name] = [quality, latency]
        if arm.get("on_front", arm.get("pareto")):
            front.append(name)
    if not points:
        return None
    metric = (block.get("metric") if isinstance(block, dict) else None) or "quality"
    return {"metric": metric, "suite": (block.get("suite") if isinstance(block, dict) else "") or "",
            "points": points, "front": front, "intervals": {}, "front_source": "from the comparison result"}


# ------------------------------------------------------------------------------ what `harness compare` writes itself


def _pair_interval(low: Any, high: Any, missing: str) -> str:
    return f"[{fixed(low, sign=True, missing=missing)}, {fixed(high, sign=True, missing=missing)}]"


def comment(data: dict[str, Any]) -> list:
    """``compare.md``: every comparison, the decision tables, the queries that moved most."""
    options, comparisons = data["options"], data["comparisons"]
    blocks: list = [Heading(f"Comparison with `{data['baseline']}`", 2)]
    if data.get("warnings"):
        blocks.append(Quote([f"⚠️ {warning}" for warning in data["warnings"]]))
    rows = [
        [Cell(c["suite"]), Cell(c["metric"]), Cell(f"`{c['candidate']}`"), Cell(str(c["n"])), Cell(fixed(c["baseline_mean"], missing="–")),
         Cell(fixed(c["candidate_mean"], missing="–")), Cell(fixed(c["difference"], sign=True, missing="–")),
         Cell(_pair_interval(c["ci_low"], c["ci_high"], "–")), Cell(fixed(c["p_adjusted"], missing="–") + (" *" if c["significant"] else "")),
         Cell(fixed(c["effect_size"], 2, missing="–")), Cell(fixed(c["mde"], 3, missing="–")), Cell(f"{c['wins']}/{c['ties']}/{c['losses']}")]
        for c in comparisons
    ]
    blocks.append(Table("", ["suite", "metric", "candidate", "n", "baseline", "candidate", "diff", "95% CI", "p (adj.)", "d_z", "MDE", "W/T/L"],
                        rows, align=["left"] * 3 + ["right"] * 4 + ["left"] + ["right"] * 3 + ["left"]))
    blocks.append(FinePrint(f"{options['test']}; {options['correction']} correction across all {len(comparisons)} comparisons; "
                            f"* significant at {options['alpha']}. Intervals: {options['interval']}."))
    blocks.append(Heading("Decision table: quality vs cost"))
    for table in data["decision_table"]:
        blocks.append(Paragraph([f"**{literal(table['suite'])}** ({table['metric']}, {table['n']} queries)"]))
        rows = []
        for row in table["rows"]:
            diff = "baseline" if row["difference"] is None else (
                f"{fixed(row['difference'], sign=True, missing='–')} {_pair_interval(row['ci_low'], row['ci_high'], '–')}")
            rows.append([Cell(f"`{row['arm']}`"), Cell(fixed(row["quality"], missing="–")), Cell(diff), Cell(fixed(row["p95_ms"], 1, missing="–")),
                         Cell(fixed(row["build_seconds"], 1, missing="–")), Cell(fixed(row["encode_seconds"], 1, missing="–")),
                         Cell(fixed(row["dimension"], missing="–")), Cell("●" if row["pareto"] else "")])
        blocks.append(Table("", ["arm", "quality", "diff [95% CI]", "p95 ms", "build s", "encode s", "dim", "Pareto"], rows,
                            align=["left", "right", "left", "right", "right", "right", "right", "center"]))
    moved = [c for c in comparisons if c.get("moved", {}).get("gains") or c.get("moved", {}).get("losses")]
    if moved:
        inside: list = []
        for c in moved:
            inside.append(Paragraph([f"**{literal(c['suite'])}**, {c['metric']}, `{literal(c['candidate'])}`"]))
            inside.append(Bullets([
                f"{label} {q['difference']:+.3f} ({q['baseline']:.3f} → {q['candidate']:.3f}) `{q['query_id']}` {literal(q['text'])}"
                for label, key in (("gain", "gains"), ("loss", "losses")) for q in c["moved"].get(key, [])
            ]))
        blocks.append(Collapsed("Queries that moved most", inside))
    return blocks


def console(data: dict[str, Any]) -> list:
    """What ``harness compare`` prints: the comparisons, the decision tables, the queries that moved most, warnings."""
    options, comparisons = data["options"], data["comparisons"]
    rows = [
        [Cell(value) for value in (c["suite"], c["metric"], c["candidate"], str(c["n"]), fixed(c["difference"], sign=True),
                                   _pair_interval(c["ci_low"], c["ci_high"], "-"), fixed(c["p_adjusted"]) + (" *" if c["significant"] else ""),
                                   fixed(c["effect_size"], 2), fixed(c["mde"], 3), f"{c['wins']}/{c['ties']}/{c['losses']}")]
        for c in comparisons
    ]
    blocks: list = [Table(
        f"candidates vs {data['baseline']} ({options['correction']} correction across {len(comparisons)} comparisons, * p < {options['alpha']})",
        ["suite", "metric", "candidate", "n", "diff", f"{options['confidence']:.0%} CI", "p adj.", "d_z", "MDE", "W/T/L"], rows,
        numeric=[False] * 3 + [True] * 7, widths=[None, None, 40] + [None] * 7,
        row_tones=["good" if c["significant"] and c["difference"] > 0 else ("bad" if c["significant"] else "") for c in comparisons])]
    for decision in data["decision_table"]:
        rows = []
        for row in decision["rows"]:
            diff = "baseline" if row["difference"] is None else f"{fixed(row['difference'], sign=True)} {_pair_interval(row['ci_low'], row['ci_high'], '-')}"
            rows.append([Cell(value) for value in (
                row["arm"], fixed(row["quality"]), diff, fixed(row["p95_ms"], 1), fixed(row["build_seconds"], 1), fixed(row["encode_seconds"], 1),
                "-" if row["dimension"] is None else str(row["dimension"]), "yes" if row["pareto"] else "")])
        blocks.append(Table(f"decision table, {decision['suite']} ({decision['metric']}, {decision['n']} queries)",
                            ["arm", "quality", "diff [CI]", "p95 ms", "build s", "encode s", "dim", "Pareto"], rows,
                            numeric=[False] + [True] * 7, widths=[40] + [None] * 7))
    for c in [c for c in comparisons if c.get("moved")][:6]:
        moved = [*c["moved"].get("gains", [])[:3], *c["moved"].get("losses", [])[:3]]
        if moved:
            blocks.append(Paragraph([f"moved most, {c['suite']} {c['metric']} {c['candidate']}:"], tone="strong"))
            blocks.append(Paragraph([f"  {q['difference']:+.3f}  {q['query_id']}  {q['text']}" for q in moved]))
    blocks.extend(Paragraph([f"warning: {warning}"], tone="warn") for warning in data["warnings"])
    return blocks


BUILDERS = {"compare": sections, "comparison": sections}
FORMS = {"compare": lambda data: {"comment": comment(data), "console": console(data)}}
