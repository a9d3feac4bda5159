"""Sections of an evaluation (``harness eval``): headline per suite, one table per suite
(``heldout``, ``slice``, ``mteb`` with its tasks), the dataset's checks, the retrievers, the
figures; and the tables ``harness eval`` prints in the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.reports.document import Cell, Figure, Paragraph, Section, Table
from harness.reports.formatting import fixed, fmt, interval, metric_label, ms, num, short, signed, text
from harness.reports.sections.captions import dataset_line, model_rows, provenance_line, retriever_identity, versions

if TYPE_CHECKING:
    from harness.reports.sections import Context

KIND_NAMES = {"eval": "evaluation"}
HEADLINE_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "judged@10")
# the terminal tables of `harness eval` leave MAP out: they fit a 160-column log
CONSOLE_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "judged@10")
# what the loader counts in a corpus and keeps (harness.data.beir), where a result records it
DATASET_COUNTS = {
    "duplicate_texts": "documents whose text repeats another document's",
    "empty_documents": "documents with neither title nor text",
}
EXCLUDED = {
    "unjudged": "queries of the dataset without a judgement in this split",
    "outside_slice": "judged queries outside the slice",
    "mteb_tasks_skipped": "MTEB tasks skipped",
}


def sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    dataset = data.get("dataset") or {}
    retrievers = data.get("retrievers") or []
    suites = data.get("suites") or []
    metrics = headline_metrics(data)
    info = {r["spec"]: r for r in retrievers}
    section = Section(
        title=f"Offline evaluation on {dataset.get('name', '?')}",
        kind="eval",
        source=source,
        provenance=provenance_line(data.get("provenance") or {}),
    )
    section.intro.append(
        f"Dataset {dataset_line(dataset)}: {fmt(dataset.get('documents'))} documents, {fmt(dataset.get('queries'))} queries. "
        f"Retrieval depth {data.get('options', {}).get('depth', '?')}; intervals are 95% bootstrap intervals of each mean over queries."
    )
    section.headline.extend(headline(suite, metrics[0] if metrics else None) for suite in suites)
    checks = dataset_checks(dataset)
    if checks:
        section.tables.append(checks)
    for suite in suites:
        section.tables.append(suite_table(suite, metrics, info))
        if suite.get("kind") == "mteb":
            section.tables.extend(mteb_tables(suite))
            section.notes.extend(mteb_notes(suite))
        excluded = _excluded_text(suite)
        if excluded:
            section.notes.append(f"{suite['name']}: not evaluated: {excluded}.")
    section.tables.append(retrievers_table(retrievers))
    section.figures.extend(figures(data, metrics))
    return [section]


def headline_metrics(data: dict[str, Any]) -> list[str]:
    metrics = list((data.get("options") or {}).get("metrics") or [])
    chosen = [m for m in HEADLINE_METRICS if m in metrics]
    return chosen or metrics[:5]


def headline(suite: dict[str, Any], primary: str | None) -> str:
    """The primary metric of every retriever on one suite, best first, with its interval."""
    aggregates = suite.get("aggregates") or {}
    metric = primary if primary and any(primary in v for v in aggregates.values()) else _first_metric(aggregates)
    if not metric:
        return f"{suite['name']}: no scores ({_excluded_text(suite) or 'nothing evaluated'})."
    ranked = sorted((spec for spec in aggregates if metric in aggregates[spec]), key=lambda s: -aggregates[s][metric])
    parts = []
    for spec in ranked:
        ci = (suite.get("intervals") or {}).get(spec, {}).get(metric)
        parts.append(f"{spec} {fmt(aggregates[spec][metric])}" + (f" {interval(ci[0], ci[1], 3)}" if ci else ""))
    return f"{suite['name']} ({len(suite.get('query_ids') or [])} queries), {metric_label(metric)}: " + "; ".join(parts)


def _first_metric(aggregates: dict[str, dict[str, float]]) -> str | None:
    for values in aggregates.values():
        for metric in values:
            return metric
    return None


def _excluded_text(suite: dict[str, Any]) -> str:
    return ", ".join(
        f"{count:,} {EXCLUDED.get(reason, reason.replace('_', ' '))}" for reason, count in (suite.get("excluded") or {}).items() if count
    )


def dataset_checks(dataset: dict[str, Any]) -> Table | None:
    """What the loader counted and kept where a dataset is unusual, when the result records it."""
    rows = [
        [text(f"judgements of documents not in the corpus, split {split}"), num(count)]
        for split, count in (dataset.get("unretrievable_judgements") or {}).items()
    ]
    rows += [[text(what), num(dataset[key])] for key, what in DATASET_COUNTS.items() if key in dataset]
    if not rows:
        return None
    return Table(
        f"Dataset {dataset.get('name', '?')}: counted, nothing dropped",
        ["what", "count"],
        rows,
        note="A judgement of a document missing from the corpus stays in the judgements (it counts in recall and in the ideal "
        "ranking of nDCG) but can never be retrieved; documents with the same text, or none, are all kept, each under its own id.",
    )


def suite_table(suite: dict[str, Any], metrics: list[str], info: dict[str, dict[str, Any]]) -> Table:
    aggregates = suite.get("aggregates") or {}
    intervals = suite.get("intervals") or {}
    present = [m for m in metrics if any(m in v for v in aggregates.values())]
    extra = [m for m in ("mteb_main_score",) if any(m in v for v in aggregates.values())]
    columns = ["retriever", *[metric_label(m) for m in present], *(["MTEB main score"] if extra else []), "p95 ms"]
    best = {}
    for m in present + extra:
        values = [v[m] for v in aggregates.values() if m in v]
        # mark the best mean only where the means differ, and not for judged@k (coverage, not quality)
        best[m] = max(values) if len(set(values)) > 1 and not m.startswith("judged") else None
    rows = []
    for spec, values in aggregates.items():
        row = [text(spec)]
        for metric in present + extra:
            cell = num(values.get(metric))
            ci = intervals.get(spec, {}).get(metric)
            if ci:
                cell.detail = interval(ci[0], ci[1], 3)
            if best[metric] is not None and values.get(metric) == best[metric]:
                cell.tone = "best"
            row.append(cell)
        row.append(ms((info.get(spec, {}).get("latency") or {}).get("p95_ms")))
        rows.append(row)
    kind = suite.get("kind", "")
    title = f"{suite['name']}: {len(suite.get('query_ids') or [])} queries" + (f" (split {suite['split']})" if suite.get("split") else "")
    note = {
        "heldout": "Every judged query of the held-out split.",
        "slice": "The held-out split restricted to this slice.",
        "mteb": f"MTEB: {(suite.get('details') or {}).get('aggregation', '')}.",
    }.get(kind, "")
    if intervals:
        note += " Below each mean: its 95% bootstrap interval; the best mean of each column in bold."
    return Table(title, columns, rows, note=note.strip())


def mteb_tables(suite: dict[str, Any]) -> list[Table]:
    details = suite.get("details") or {}
    rows = []
    for task, task_info in (details.get("tasks") or {}).items():
        base = (task_info.get("delta_vs_base") or {}).get("base")
        deltas = (task_info.get("delta_vs_base") or {}).get("main_score") or {}
        for spec, score in (task_info.get("main_score") or {}).items():
            delta = deltas.get(spec)
            rows.append(
                [
                    text(task),
                    text(spec),
                    text(short((task_info.get("fingerprints") or {}).get(spec))),
                    text(task_info.get("main_score_name")),
                    num(score),
                    Cell(signed(delta) if delta is not None else ("base" if spec == base else "-"), delta,
                         tone="" if delta is None else ("good" if delta > 0 else "bad" if delta < 0 else "")),
                    num((task_info.get("from_cache") or {}).get(spec)),
                ]
            )
    if not rows:
        return []
    return [
        Table(
            f"{suite['name']}: MTEB tasks",
            ["task", "retriever", "fingerprint", "main score", "score", "change vs base", "from cache"],
            rows,
            note=f"mteb {details.get('mteb_version', '?')}'s own scores; the change is against the first dense retriever.",
        )
    ]


def mteb_notes(suite: dict[str, Any]) -> list[str]:
    details = suite.get("details") or {}
    notes = []
    for task, message in (details.get("skipped_tasks") or {}).items():
        notes.append(f"{suite['name']}: task {task} skipped: {message}")
    for spec, message in (details.get("skipped_retrievers") or {}).items():
        notes.append(f"{suite['name']}: {spec} not evaluated: {message}")
    if details and details.get("complete") is False:
        notes.append(f"{suite['name']} is incomplete: read its scores with care.")
    return notes


def retrievers_table(retrievers: list[dict[str, Any]]) -> Table:
    rows = []
    for r in retrievers:
        description = r.get("description") or {}
        latency = r.get("latency") or {}
        models = model_rows(description)
        rows.append(
            [
                text(r["spec"]),
                text(description.get("kind")),
                text(", ".join(name for name, _ in models) or (description.get("library") or "-")),
                text(", ".join(short(fp) for _, fp in models) or "-"),
                num(description.get("dimension")),
                ms(r.get("build_seconds")),
                ms(latency.get("p50_ms")),
                ms(latency.get("p95_ms")),
                ms(latency.get("mean_ms")),
            ]
        )
    return Table(
        "Retrievers",
        ["retriever", "kind", "model", "fingerprint", "dim", "build s", "p50 ms", "p95 ms", "mean ms"],
        rows,
        note="Latency is per query, measured over the first split each retriever searched.",
    )


def caption(data: dict[str, Any], specs: list[str] | None = None) -> str:
    retrievers = {r["spec"]: r for r in data.get("retrievers", [])}
    chosen = specs if specs is not None else list(retrievers)
    models = []
    for spec in chosen:
        if spec in retrievers:
            models.append(f"{spec} = {retriever_identity(retrievers[spec].get('description') or {})}")
    return (
        "Models: " + "; ".join(models) + ". Data: " + dataset_line(data.get("dataset") or {}) + ". Versions: "
        + versions(data.get("provenance") or {}) + "."
    )


def figures(data: dict[str, Any], metrics: list[str]) -> list[Figure]:
    primary = metrics[0] if metrics else None
    found = [metric_intervals_figure(data, metrics), recall_figure(data), latency_figure(data, primary), dimension_figure(data, primary)]
    return [figure for figure in found if figure is not None]


def metric_intervals_figure(data: dict[str, Any], metrics: list[str]) -> Figure | None:
    """The first two quality metrics per retriever and suite, with their intervals."""
    suites = data.get("suites") or []
    panels = [m for m in metrics if m != "judged@10"][:2]
    values_of: dict[str, Any] = {"metrics": [], "suites": [s["name"] for s in suites],
                                 "retrievers": [r["spec"] for r in data.get("retrievers") or []], "values": {}}
    for metric in panels:
        values = {
            s["name"]: {
                spec: [v[metric], *((s.get("intervals") or {}).get(spec, {}).get(metric) or [None, None])]
                for spec, v in (s.get("aggregates") or {}).items()
                if metric in v
            }
            for s in suites
        }
        if any(values.values()):
            values_of["metrics"].append(metric)
            values_of["values"][metric] = values
    if not values_of["metrics"]:
        return None
    return Figure("", " and ".join(metric_label(m) for m in values_of["metrics"]) + " per retriever and suite", "metric_intervals",
                  values_of, caption(data), alt="Mean metric with 95% bootstrap intervals for each retriever on each suite")


def recall_figure(data: dict[str, Any]) -> Figure | None:
    curves = {s["name"]: s.get("recall_curve") for s in data.get("suites") or [] if s.get("recall_curve")}
    if not curves:
        return None
    return Figure("", "Recall@k curves", "recall_curves", {"suites": curves}, caption(data),
                  alt="Mean recall at each cut-off k, one line per retriever")


def latency_figure(data: dict[str, Any], primary: str | None) -> Figure | None:
    """Quality against p95 latency on the first suite with the primary metric, Pareto front marked."""
    suites = data.get("suites") or []
    retrievers = data.get("retrievers") or []
    first = next((s for s in suites if s.get("kind") != "mteb" and primary and any(primary in v for v in (s.get("aggregates") or {}).values())), None)
    latency = {r["spec"]: (r.get("latency") or {}).get("p95_ms") for r in retrievers}
    if first is None or not any(v is not None for v in latency.values()):
        return None
    points = {spec: [v[primary], latency[spec]] for spec, v in first["aggregates"].items() if primary in v and latency.get(spec) is not None}
    from harness.stats import pareto_front

    front = sorted(pareto_front({k: (q, lat) for k, (q, lat) in points.items()}))
    return Figure(
        "",
        f"{metric_label(primary)} against p95 latency ({first['name']})",
        "pareto",
        {"metric": primary, "suite": first["name"], "points": points, "front": front,
         "intervals": {spec: (first.get("intervals") or {}).get(spec, {}).get(primary) for spec in points},
         "front_source": "marked from this result's means and p95 latencies"},
        caption(data),
        alt="Quality against 95th-percentile query latency; the Pareto front joins the arms no other arm beats on both",
    )


def dimension_figure(data: dict[str, Any], primary: str | None) -> Figure | None:
    """Quality against embedding dimension (Matryoshka): dense retrievers of one model at several dims."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in data.get("retrievers") or []:
        d = r.get("description") or {}
        if d.get("kind") == "dense" and d.get("fingerprint") and d.get("dimension"):
            groups.setdefault(f"{d.get('model', 'dense')} @{short(d['fingerprint'], 8)}", []).append(r)
    groups = {k: v for k, v in groups.items() if len({r["description"]["dimension"] for r in v}) > 1}
    if not groups or not primary:
        return None
    series: dict[str, dict[str, list]] = {}
    for label, members in groups.items():
        for s in data.get("suites") or []:
            aggregates = s.get("aggregates") or {}
            points = []
            for r in sorted(members, key=lambda r: r["description"]["dimension"]):
                if primary in aggregates.get(r["spec"], {}):
                    ci = (s.get("intervals") or {}).get(r["spec"], {}).get(primary) or [None, None]
                    points.append([r["description"]["dimension"], aggregates[r["spec"]][primary], *ci, r["spec"]])
            if len(points) > 1:
                series.setdefault(label, {})[s["name"]] = points
    if not series:
        return None
    members = [r["spec"] for v in groups.values() for r in v]
    return Figure("", f"{metric_label(primary)} against embedding dimension (Matryoshka truncation)", "dimension",
                  {"metric": primary, "series": series}, caption(data, members),
                  alt="Quality of one model's embeddings truncated to fewer dimensions")


# ------------------------------------------------------------------------------ the terminal of `harness eval`


def console(data: dict[str, Any]) -> list:
    """One table per suite (headline metrics, p50/p95 latency, build time), then the dataset."""
    options_metrics = list((data.get("options") or {}).get("metrics") or [])
    metrics = [m for m in CONSOLE_METRICS if m in options_metrics] or options_metrics[:5]
    info = {r["spec"]: r for r in data.get("retrievers") or []}
    blocks: list = []
    for suite in data.get("suites") or []:
        excluded = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in (suite.get("excluded") or {}).items() if count)
        # latency and build time belong to the harness's own search, not to a benchmark's
        costs = suite.get("kind") != "mteb"
        rows = []
        for spec, values in (suite.get("aggregates") or {}).items():
            latency = (info.get(spec) or {}).get("latency") or {}
            cost_cells = [fixed(latency.get("p50_ms"), 1), fixed(latency.get("p95_ms"), 1), fixed((info.get(spec) or {}).get("build_seconds"), 1)]
            rows.append([Cell(spec), *(Cell(fixed(values.get(m))) for m in metrics), *(map(Cell, cost_cells) if costs else [])])
        columns = ["retriever", *metrics, *(["p50 ms", "p95 ms", "build s"] if costs else [])]
        blocks.append(Table(f"{suite['name']}: {len(suite.get('query_ids') or [])} queries" + (f" (excluded: {excluded})" if excluded else ""),
                            columns, rows, numeric=[False] + [True] * (len(columns) - 1)))
    dataset = data.get("dataset") or {}
    blocks.append(Paragraph([f"dataset {dataset.get('name')} ({str(dataset.get('hash'))[:12]})"], tone="muted"))
    return blocks


BUILDERS = {"eval": sections}
FORMS = {"eval": lambda data: {"console": console(data)}}
