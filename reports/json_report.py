"""Result files (JSON) -> one report document that every renderer reads.

``build_report(paths)`` reads any mix of result files (``harness.results.read_result``) and
turns each into a :class:`Section`: headline sentences, notes, tables of cells and figure
specifications. The HTML (``reports.html``), Markdown (``reports.markdown_eval``) and
terminal (``reports.terminal.print_report``) renderers all draw the same document, so the
three outputs carry the same numbers, formatted once here.

Nothing here computes a statistic: every number is read from a result. What is done here
is selection and display: which metric is the headline, the order of rows, the formatting,
the label of a figure, and which arm lies on the quality/latency Pareto front when a result
gives the points but not the front (``harness.stats.pareto_front``, a display marker).

Kinds: ``eval`` (with its ``heldout``, ``slice`` and ``mteb`` suites), ``compare``,
``gate``, ``ab-analysis``, ``ab-decision``, ``ab-interleaving`` and fine-tuning logs and
model cards (``finetune``, ``train``, ``training-log``, ``model-card``). Any other kind
becomes a generic section with a note, never an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.results import read_result

HEADLINE_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "judged@10")
KEY_LIBRARIES = ("sentence-transformers", "torch", "transformers", "ranx", "bm25s", "mteb")
AB_LIBRARIES = ("tea-tasting", "ibis-framework", "duckdb", "statsmodels", "scipy")


# ------------------------------------------------------------------------------ the document


@dataclass
class Cell:
    """One table cell: ``text`` to show, ``value`` to sort by, ``detail`` (an interval) and a
    ``tone`` (good, bad, warn, muted) for emphasis."""

    text: str
    value: float | str | None = None
    detail: str = ""
    tone: str = ""

    @property
    def full(self) -> str:
        return f"{self.text} ({self.detail})" if self.detail else self.text


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    numeric: list[bool] = field(default_factory=list)
    note: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        if not self.numeric:
            self.numeric = [
                all(isinstance(row[i].value, (int, float)) or row[i].value is None for row in self.rows) and any(
                    isinstance(row[i].value, (int, float)) for row in self.rows
                )
                for i in range(len(self.columns))
            ]


@dataclass
class Figure:
    """What to plot (``plot``: a function of ``reports.plots``) with the numbers it needs."""

    key: str
    title: str
    plot: str
    data: dict[str, Any]
    caption: str
    alt: str = ""


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
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass
class Report:
    title: str
    sections: list[Section]
    sources: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for section in data["sections"]:
            section.pop("raw", None)
        return data

    def headline(self) -> list[str]:
        return [line for section in self.sections for line in section.headline]


# ------------------------------------------------------------------------------ formatting


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


def signed(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:+.{digits}f}"


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
    pretty = {"ndcg": "nDCG", "mrr": "MRR", "map": "MAP", "recall": "Recall", "precision": "P", "hit": "Hit", "judged": "Judged"}
    return f"{pretty.get(name, name)}@{k}" if k else pretty.get(name, name)


def versions(prov: dict[str, Any], libraries: tuple[str, ...] = KEY_LIBRARIES) -> str:
    libs = prov.get("libraries") or {}
    parts = [f"harness {prov.get('harness_version', '?')}"]
    parts += [f"{name} {libs[name]}" for name in libraries if libs.get(name) and libs[name] != "not installed"]
    when = prov.get("created_at")
    tail = []
    if when:
        tail.append(f"created {when}")
    if prov.get("seed") is not None:
        tail.append(f"seed {prov['seed']}")
    return ", ".join(parts) + ("; " + ", ".join(tail) if tail else "")


def provenance_line(prov: dict[str, Any], libraries: tuple[str, ...] = KEY_LIBRARIES) -> str:
    machine = prov.get("machine") or {}
    command = prov.get("command")
    cmd = " ".join(str(c) for c in command) if isinstance(command, list) else (command or "")
    where = f"{machine.get('platform', '')} ({machine.get('cpus', '?')} CPUs)" if machine else ""
    out = versions(prov, libraries)
    if where:
        out += f"; on {where}"
    if cmd:
        out += f"; command: {_strip_venv(cmd)}"
    return out


def _strip_venv(cmd: str) -> str:
    head, _, rest = cmd.partition(" ")
    if head.endswith("/harness") or head.endswith("harness"):
        return "harness " + rest
    return cmd


KIND_NAMES = {
    "eval": "evaluation", "compare": "comparison", "gate": "promotion gate", "ab-analysis": "A/B analysis",
    "ab-decision": "A/B decision", "ab-interleaving": "interleaving", "model-card": "fine-tuning", "training-log": "fine-tuning",
}

# ------------------------------------------------------------------------------ reading


def load(paths: list[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """Result files; a fine-tuned model's folder or its training_card.json becomes a model-card."""
    loaded = []
    for path in map(Path, paths):
        if (path.is_dir() and (path / CARD_FILE).is_file()) or path.name == CARD_FILE:
            loaded.append((str(path), read_model_folder(path)))
        else:
            loaded.append((str(path), read_result(path)))
    return loaded


def build_report(paths: list[str | Path], title: str | None = None) -> Report:
    return build_report_from(load(paths), title=title)


def build_report_from(results: list[tuple[str, dict[str, Any]]], title: str | None = None) -> Report:
    sections: list[Section] = []
    known = known_retrievers(results)
    analyses = {_analysis_key(data) for _, data in results if data.get("kind") == "ab-analysis"}
    for index, (source, data) in enumerate(results):
        kind = str(data.get("kind"))
        builder = BUILDERS.get(kind)
        try:
            if builder is None:
                new = [generic_section(source, data, note=f"This harness has no renderer for result kind {kind!r}; its fields are listed as they are.")]
            elif kind == "ab-decision":
                new = builder(source, data, skip_analysis=_analysis_key(data.get("analysis") or {}) in analyses)
            elif kind in ("compare", "gate"):
                new = builder(source, data, known=known)
            else:
                new = builder(source, data)
        except Exception as exc:  # a malformed or newer result still gets a section
            new = [generic_section(source, data, note=f"Could not render this {kind!r} result ({type(exc).__name__}: {exc}); its fields are listed as they are.")]
        for number, section in enumerate(new):
            section.key = f"s{index}-{number}"
            section.raw = data if number == 0 else None
            for table_number, table in enumerate(section.tables):
                table.key = f"{section.key}-t{table_number}"
            for figure_number, figure in enumerate(section.figures):
                figure.key = f"{section.key}-f{figure_number}"
        sections.extend(new)
    sources = [
        {
            "path": source,
            "kind": data.get("kind"),
            "schema_version": data.get("schema_version"),
            "created_at": (data.get("provenance") or {}).get("created_at"),
            "harness_version": (data.get("provenance") or {}).get("harness_version"),
            "provenance": provenance_line(data.get("provenance") or {}, KEY_LIBRARIES + AB_LIBRARIES),
        }
        for source, data in results
    ]
    if title is None:
        names = []
        for _, d in results:
            name = KIND_NAMES.get(str(d.get("kind")), str(d.get("kind")))
            if name not in names:
                names.append(name)
        datasets = sorted({str((d.get("dataset") or {}).get("name")) for _, d in results if isinstance(d.get("dataset"), dict) and d["dataset"].get("name")})
        title = "Embedding harness report: " + ", ".join(names) + (f" on {', '.join(datasets)}" if datasets else "")
    return Report(title=title, sections=sections, sources=sources)


def known_retrievers(results: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """spec -> description of every retriever in the eval results given, or named as ``sources``
    of a compare or gate result (read where the file exists), to caption their figures."""
    known: dict[str, dict[str, Any]] = {}
    evals = [data for _, data in results if data.get("kind") == "eval"]
    for source, data in results:
        sources = data.get("sources") if isinstance(data.get("sources"), list) else []
        policy = data.get("policy") if isinstance(data.get("policy"), dict) else {}
        sources = sources + (policy.get("results") if isinstance(policy.get("results"), list) else [])
        for path in sources:
            for candidate in (Path(str(path)), Path(source).parent / str(path)):
                try:
                    if candidate.is_file():
                        loaded = read_result(candidate)
                        if loaded.get("kind") == "eval":
                            evals.append(loaded)
                        break
                except Exception:
                    continue
    for data in evals:
        for r in data.get("retrievers") or []:
            if isinstance(r, dict) and r.get("spec"):
                known.setdefault(r["spec"], r.get("description") or {})
    return known


def _analysis_key(data: dict[str, Any]) -> tuple:
    return ((data.get("experiment") or {}).get("experiment_id"), (data.get("provenance") or {}).get("created_at"))


# ------------------------------------------------------------------------------ eval


def model_rows(description: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, fingerprint) of every model inside a retriever description (hybrid, rerank)."""
    found: list[tuple[str, str]] = []
    if description.get("fingerprint"):
        found.append((str(description.get("model") or description.get("kind") or "model"), str(description["fingerprint"])))
    for part in description.get("components") or []:
        found.extend(model_rows(part))
    if isinstance(description.get("first"), dict):
        found.extend(model_rows(description["first"]))
    seen, unique = set(), []
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def retriever_identity(description: dict[str, Any]) -> str:
    models = model_rows(description)
    if models:
        return ", ".join(f"{name} @{short(fp)}" for name, fp in models)
    if description.get("kind") == "bm25":
        return f"{description.get('library', 'bm25')} (k1={description.get('k1')}, b={description.get('b')})"
    return str(description.get("kind") or "-")


def dataset_line(dataset: dict[str, Any]) -> str:
    splits = dataset.get("splits") or {}
    split_text = ", ".join(f"{name} {short((info or {}).get('hash'), 8)}" for name, info in splits.items())
    return f"{dataset.get('name', '?')} (hash {short(dataset.get('hash'))}" + (f"; splits {split_text})" if split_text else ")")


def eval_caption(data: dict[str, Any], specs: list[str] | None = None) -> str:
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


def headline_metrics(data: dict[str, Any]) -> list[str]:
    metrics = list((data.get("options") or {}).get("metrics") or [])
    chosen = [m for m in HEADLINE_METRICS if m in metrics]
    return chosen or metrics[:5]


def eval_sections(source: str, data: dict[str, Any]) -> list[Section]:
    dataset = data.get("dataset") or {}
    prov = data.get("provenance") or {}
    retrievers = data.get("retrievers") or []
    suites = data.get("suites") or []
    metrics = headline_metrics(data)
    primary = metrics[0] if metrics else None
    info = {r["spec"]: r for r in retrievers}
    section = Section(
        title=f"Offline evaluation on {dataset.get('name', '?')}",
        kind="eval",
        source=source,
        provenance=provenance_line(prov),
    )
    section.intro.append(
        f"Dataset {dataset_line(dataset)}: {fmt(dataset.get('documents'))} documents, {fmt(dataset.get('queries'))} queries. "
        f"Retrieval depth {data.get('options', {}).get('depth', '?')}; intervals are 95% bootstrap intervals of each mean over queries."
    )

    # headline: the primary metric of every retriever on every suite, best first
    for suite in suites:
        aggregates = suite.get("aggregates") or {}
        metric = primary if primary and any(primary in v for v in aggregates.values()) else _first_metric(aggregates)
        if not metric:
            section.headline.append(f"{suite['name']}: no scores ({_excluded_text(suite) or 'nothing evaluated'}).")
            continue
        ranked = sorted((spec for spec in aggregates if metric in aggregates[spec]), key=lambda s: -aggregates[s][metric])
        parts = []
        for spec in ranked:
            ci = (suite.get("intervals") or {}).get(spec, {}).get(metric)
            parts.append(f"{spec} {fmt(aggregates[spec][metric])}" + (f" {interval(ci[0], ci[1], 3)}" if ci else ""))
        section.headline.append(
            f"{suite['name']} ({len(suite.get('query_ids') or [])} queries), {metric_label(metric)}: " + "; ".join(parts)
        )


    # one table per suite
    for suite in suites:
        section.tables.append(suite_table(suite, metrics, info))
        if suite.get("kind") == "mteb":
            section.tables.extend(mteb_tables(suite))
            section.notes.extend(mteb_notes(suite))
        excluded = _excluded_text(suite)
        if excluded:
            section.notes.append(f"{suite['name']}: not evaluated: {excluded}.")

    # the retrievers
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
    section.tables.append(
        Table(
            "Retrievers",
            ["retriever", "kind", "model", "fingerprint", "dim", "build s", "p50 ms", "p95 ms", "mean ms"],
            rows,
            note="Latency is per query, measured over the first split each retriever searched.",
        )
    )

    section.figures.extend(eval_figures(data, metrics))
    return [section]


def _first_metric(aggregates: dict[str, dict[str, float]]) -> str | None:
    for values in aggregates.values():
        for metric in values:
            return metric
    return None


EXCLUDED = {
    "unjudged": "queries of the dataset without a judgement in this split",
    "outside_slice": "judged queries outside the slice",
    "mteb_tasks_skipped": "MTEB tasks skipped",
}


def _excluded_text(suite: dict[str, Any]) -> str:
    return ", ".join(
        f"{count:,} {EXCLUDED.get(reason, reason.replace('_', ' '))}" for reason, count in (suite.get("excluded") or {}).items() if count
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


def eval_figures(data: dict[str, Any], metrics: list[str]) -> list[Figure]:
    suites = data.get("suites") or []
    retrievers = data.get("retrievers") or []
    figures: list[Figure] = []
    specs = [r["spec"] for r in retrievers]

    # metric per retriever and suite with intervals
    panels = [m for m in metrics if m != "judged@10"][:2]
    ci_data: dict[str, Any] = {"metrics": [], "suites": [s["name"] for s in suites], "retrievers": specs, "values": {}}
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
            ci_data["metrics"].append(metric)
            ci_data["values"][metric] = values
    if ci_data["metrics"]:
        figures.append(
            Figure(
                "",
                " and ".join(metric_label(m) for m in ci_data["metrics"]) + " per retriever and suite",
                "metric_intervals",
                ci_data,
                eval_caption(data),
                alt="Mean metric with 95% bootstrap intervals for each retriever on each suite",
            )
        )

    # recall curves
    curves = {s["name"]: s.get("recall_curve") for s in suites if s.get("recall_curve")}
    if curves:
        figures.append(
            Figure("", "Recall@k curves", "recall_curves", {"suites": curves}, eval_caption(data),
                   alt="Mean recall at each cut-off k, one line per retriever")
        )

    # quality vs p95 latency
    primary = metrics[0] if metrics else None
    first = next((s for s in suites if s.get("kind") != "mteb" and primary and any(primary in v for v in (s.get("aggregates") or {}).values())), None)
    latency = {r["spec"]: (r.get("latency") or {}).get("p95_ms") for r in retrievers}
    if first is not None and sum(1 for v in latency.values() if v is not None) >= 1:
        points = {
            spec: [v[primary], latency[spec]]
            for spec, v in first["aggregates"].items()
            if primary in v and latency.get(spec) is not None
        }
        from harness.stats import pareto_front

        front = sorted(pareto_front({k: (q, lat) for k, (q, lat) in points.items()}))
        figures.append(
            Figure(
                "",
                f"{metric_label(primary)} against p95 latency ({first['name']})",
                "pareto",
                {"metric": primary, "suite": first["name"], "points": points, "front": front,
                 "intervals": {spec: (first.get("intervals") or {}).get(spec, {}).get(primary) for spec in points},
                 "front_source": "marked from this result's means and p95 latencies"},
                eval_caption(data),
                alt="Quality against 95th-percentile query latency; the Pareto front joins the arms no other arm beats on both",
            )
        )

    # quality vs embedding dimension (Matryoshka): dense retrievers of one model at several dims
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in retrievers:
        d = r.get("description") or {}
        if d.get("kind") == "dense" and d.get("fingerprint") and d.get("dimension"):
            groups.setdefault(f"{d.get('model', 'dense')} @{short(d['fingerprint'], 8)}", []).append(r)
    groups = {k: v for k, v in groups.items() if len({r["description"]["dimension"] for r in v}) > 1}
    if groups and primary:
        series: dict[str, dict[str, list]] = {}
        for label, members in groups.items():
            for s in suites:
                aggregates = s.get("aggregates") or {}
                points = []
                for r in sorted(members, key=lambda r: r["description"]["dimension"]):
                    if primary in aggregates.get(r["spec"], {}):
                        ci = (s.get("intervals") or {}).get(r["spec"], {}).get(primary) or [None, None]
                        points.append([r["description"]["dimension"], aggregates[r["spec"]][primary], *ci, r["spec"]])
                if len(points) > 1:
                    series.setdefault(label, {})[s["name"]] = points
        if series:
            members = [r["spec"] for v in groups.values() for r in v]
            figures.append(
                Figure(
                    "",
                    f"{metric_label(primary)} against embedding dimension (Matryoshka truncation)",
                    "dimension",
                    {"metric": primary, "series": series},
                    eval_caption(data, members),
                    alt="Quality of one model's embeddings truncated to fewer dimensions",
                )
            )
    return figures


# ------------------------------------------------------------------------------ compare and gate


def _comparisons(data: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("comparisons", "results"):
        value = data.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict) and "difference" in value[0]:
            return value
    return []


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
                Cell(signed(diff), diff, detail=interval(c.get("ci_low"), c.get("ci_high"), 4, sign=True), tone=tone),
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


def _known_models(specs: list[str], known: dict[str, dict[str, Any]]) -> str:
    parts = []
    for spec in specs:
        if spec in known:
            parts.append(f"{spec} = {retriever_identity(known[spec])}")
        else:
            parts.append(f"{spec} (fingerprint not recorded in this result)")
    return "; ".join(parts)


def compare_caption(data: dict[str, Any], specs: list[str], known: dict[str, dict[str, Any]]) -> str:
    parts = []
    if specs:
        parts.append("Models: " + _known_models(specs, known) + ".")
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and dataset:
        parts.append("Data: " + dataset_line(dataset) + ".")
    sources = data.get("sources")
    if isinstance(sources, list) and sources:
        parts.append("From: " + ", ".join(str(s) for s in sources) + ".")
    parts.append("Versions: " + versions(data.get("provenance") or {}, ("scipy", "statsmodels", "numpy")) + ".")
    return " ".join(parts)


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
            diff = r.get("difference")
            rows.append(
                [
                    Cell(r.get("arm", "-") + (" (baseline)" if r.get("arm") == data.get("baseline") else ""), r.get("arm")),
                    num(r.get("quality")),
                    Cell(signed(diff) if diff is not None else "-", diff, detail=interval(r.get("ci_low"), r.get("ci_high"), 4, sign=True)),
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


def pareto_figures(data: dict[str, Any], caption: str, limit: int = 3) -> list[Figure]:
    figures = []
    for block in (data.get("decision_table") or [])[:limit]:
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
                   caption, alt="Quality against 95th-percentile latency with the Pareto front of the comparison")
        )
    return figures


def compare_sections(source: str, data: dict[str, Any], known: dict[str, dict[str, Any]] | None = None) -> list[Section]:
    known = known or {}
    comparisons = _comparisons(data)
    baseline = data.get("baseline") or (comparisons[0].get("baseline") if comparisons else None)
    candidates = data.get("candidates") or sorted({str(c.get("candidate")) for c in comparisons})
    specs = [s for s in [baseline, *candidates] if s]
    section = Section(
        title=f"Comparison with the baseline {baseline}" if baseline else "Comparison",
        kind=str(data.get("kind")), source=source,
        provenance=provenance_line(data.get("provenance") or {}, ("scipy", "statsmodels", "numpy")),
    )
    options = data.get("options") or {}
    if options:
        section.intro.append(
            f"Test: {options.get('test', '?')}; interval: {options.get('interval', '?')}; correction {options.get('correction', '?')}, "
            f"alpha {options.get('alpha', '?')}, {fmt(options.get('n_resamples'))} resamples, seed {options.get('seed', '?')}"
            + (f"; a seeded sample of at most {options['max_queries']} queries per suite" if options.get("max_queries") else "") + "."
        )
    caption = compare_caption(data, specs, known)
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
                   caption, alt="Mean paired difference of each candidate with its interval; zero means no difference")
        )
        diffs = per_query_differences(data, comparisons)
        if diffs:
            section.figures.append(
                Figure("", "Distribution of per-query differences", "difference_histograms", {"series": diffs}, caption,
                       alt="Histogram of candidate minus baseline score per query")
            )
        else:
            section.notes.append("This compare result carries no per-query differences, so their distribution is not drawn.")
    section.figures.extend(pareto_figures(data, caption))
    pareto = pareto_points(data)
    if pareto:
        section.figures.append(
            Figure("", f"{metric_label(pareto['metric'])} against p95 latency", "pareto", pareto, caption,
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


def per_query_differences(data: dict[str, Any], comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


GATE_TONES = {"pass": "good", "fail": "bad", "inconclusive": "warn"}


def gate_sections(source: str, data: dict[str, Any], known: dict[str, dict[str, Any]] | None = None) -> list[Section]:
    known = known or {}
    status = str(data.get("status") or "?")
    baseline, candidate = data.get("baseline"), data.get("candidate")
    section = Section(
        title=f"Promotion gate: {candidate} vs {baseline}",
        kind="gate", source=source,
        provenance=provenance_line(data.get("provenance") or {}, ("scipy", "statsmodels", "numpy")),
        badge=status.upper(), badge_tone=GATE_TONES.get(status, "warn"),
    )
    summary = data.get("summary") or {}
    section.headline.append(
        f"Gate {status.upper()} (exit {data.get('exit_code', '?')}): "
        + ", ".join(f"{summary.get(s, 0)} {s}" for s in ("pass", "fail", "inconclusive") if s in summary or not summary)
    )
    checks = [c for c in data.get("checks") or [] if isinstance(c, dict)]
    for check in checks:
        section.headline.append(f"{str(check.get('status', '?')).upper()}: {check.get('name')} -- {check.get('reason', '')}")
    rows = []
    stats_checks, thresholds = [], []
    for check in checks:
        n = check.get("numbers") or {}
        tone = GATE_TONES.get(str(check.get("status")), "")
        is_stat = check.get("type") != "budget"
        if is_stat:
            stats_checks.append(n | {"label": check.get("name"), "significant": check.get("status") == "pass" and check.get("type") == "superiority"})
            thresholds.append(-n["margin"] if check.get("type") == "non-inferiority" and n.get("margin") is not None else n.get("min_lift"))
        rows.append(
            [
                Cell(str(check.get("status", "-")), str(check.get("status")), tone=tone),
                text(check.get("name")),
                text(check.get("type")),
                text(check.get("suite")),
                text(check.get("metric")),
                Cell(signed(n.get("difference")), n.get("difference"), detail=interval(n.get("ci_low"), n.get("ci_high"), 4, sign=True)) if is_stat else Cell(fmt(n.get("value"), 3), n.get("value")),
                Cell(pvalue(n.get("p_adjusted") if n.get("p_adjusted") is not None else n.get("p_value")), n.get("p_adjusted", n.get("p_value"))) if is_stat else Cell("-"),
                num(n.get("mde")) if is_stat else Cell("-"),
                Cell(fmt(-n["margin"] if n.get("margin") is not None else n.get("min_lift"), 4) if is_stat else f"limit {fmt(n.get('limit'), 3)}",
                     n.get("limit") if not is_stat else None),
            ]
        )
    if rows:
        section.tables.append(
            Table("Checks", ["status", "check", "type", "suite", "metric", "difference / value", "p (adj.)", "MDE", "threshold"], rows,
                  note="The reasons are listed above. Superiority: one-sided paired randomization test against min_lift; non-inferiority: the interval's lower bound against -margin; budgets: the candidate's cost against its limit.")
        )
    dataset = data.get("dataset") or {}
    caption = (
        "Models: " + _known_models([s for s in (baseline, candidate) if s], known) + ". "
        + (f"Data: {dataset_line(dataset)}. " if dataset else "")
        + "Versions: " + versions(data.get("provenance") or {}, ("scipy", "statsmodels", "numpy")) + "."
    )
    if stats_checks:
        section.figures.append(
            Figure("", "Gate checks: differences, intervals and thresholds", "forest", {"rows": forest_rows(stats_checks, thresholds)},
                   caption, alt="Each statistical check's paired difference with its interval and the threshold it is judged against")
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
    if not checks:
        return [generic_section(source, data, note="This gate result has no checks this renderer knows; its fields are listed as they are.")]
    return [section]


# ------------------------------------------------------------------------------ A/B


def ab_caption(analysis: dict[str, Any], prov: dict[str, Any]) -> str:
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


def ab_analysis_sections(source: str, data: dict[str, Any], title: str | None = None) -> list[Section]:
    exp = data.get("experiment") or {}
    srm = data.get("srm") or {}
    prov = data.get("provenance") or {}
    primary = exp.get("primary_metric")
    guardrails = [g for g in exp.get("guardrails") or [] if g != primary]
    caption = ab_caption(data, prov)
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
                   caption, alt="Observed share of users per variant against the planned share")
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
                    num(e.get("control_value")),
                    num(e.get("treatment_value")),
                    Cell(signed(e.get("effect_size")), e.get("effect_size"),
                         detail=interval(e.get("effect_size_ci_lower"), e.get("effect_size_ci_upper"), 4, sign=True), tone=tone),
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
                caption + " " + str((data.get("sequential") or {}).get("method", "")),
                alt="Cumulative treatment effect by day with the fixed-horizon interval and the confidence sequence",
            )
        )
    daily = [r for r in data.get("daily") or [] if r.get("metric") in metrics_to_plot[:2]]
    if daily:
        section.figures.append(
            Figure("", "Effect of each single day (novelty)", "ab_daily", {"rows": daily, "metrics": metrics_to_plot[:2], "primary": primary},
                   caption, alt="Effect on the users of each day, with its 95% interval: a fading effect is novelty")
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


def ab_decision_sections(source: str, data: dict[str, Any], skip_analysis: bool = False) -> list[Section]:
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
                    num(m.get("control")),
                    num(m.get("treatment")),
                    Cell(signed(m.get("effect_size")), m.get("effect_size"), detail=interval(m.get("ci_lower"), m.get("ci_upper"), 4, sign=True), tone=tone),
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
        out.extend(ab_analysis_sections(source, analysis | {"provenance": analysis.get("provenance") or data.get("provenance") or {}},
                                        title=f"A/B test {exp.get('experiment_id', '?')}: the analysis behind the decision"))
    elif skip_analysis:
        section.notes.append("Its analysis is the ab-analysis result shown in this report.")
    return out


def ab_interleaving_sections(source: str, data: dict[str, Any]) -> list[Section]:
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
              Cell(signed(data.get("preference")), data.get("preference"), detail=interval(data.get("ci_lower"), data.get("ci_upper"), 4, sign=True)),
              Cell(pvalue(data.get("pvalue")), data.get("pvalue")), Cell(pvalue(data.get("sign_test_pvalue")), data.get("sign_test_pvalue")),
              num(power.get("users_needed"))]],
        )
    )
    return [section]


# ------------------------------------------------------------------------------ fine-tuning

CARD_FILE = "training_card.json"
LOG_FILE = "training_log.json"


def read_model_folder(path: Path) -> dict[str, Any]:
    """A fine-tuned model's folder (or its ``training_card.json``) as one ``model-card`` document:
    the card (which has no ``schema_version``) with the training log beside it."""
    folder = path if path.is_dir() else path.parent
    from harness.errors import HarnessError

    try:
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{folder / CARD_FILE}: cannot read the training card ({exc})") from exc
    log = None
    if (folder / LOG_FILE).is_file():
        log = read_result(folder / LOG_FILE)
    return {"schema_version": 1, "kind": "model-card", "provenance": card.get("provenance") or {}, "card": card, "log": log,
            "folder": str(folder)}


def training_sections(source: str, data: dict[str, Any]) -> list[Section]:
    kind = str(data.get("kind"))
    if kind == "model-card":
        card, log = data.get("card") or {}, data.get("log") or {}
    elif kind == "training-log":
        card, log = {}, data
    else:  # a card written as a result of its own
        card, log = data, data.get("log") or {}
    prov = card.get("provenance") or data.get("provenance") or {}
    output = card.get("output") or data.get("folder") or source
    section = Section(
        title=f"Fine-tuning: {card.get('kind', 'model')} {Path(str(output)).name}" if card else f"Fine-tuning log {Path(source).parent.name}",
        kind=kind, source=source, provenance=provenance_line(prov) if prov else "",
    )
    dataset = card.get("dataset") or {}
    training = card.get("training_data") or {}
    if card:
        section.intro.append(
            f"Base model {card.get('base_model', '?')} -> {output} (fingerprint {short(card.get('fingerprint'))}); "
            f"data {dataset.get('name', '?')} (hash {short(dataset.get('hash'))}), pairs from {training.get('source', '?')}: "
            f"{fmt(training.get('pairs'))} pairs of {fmt(training.get('queries'))} queries (pairs hash {short(training.get('pairs_hash'))}); "
            f"validation {(training.get('validation') or {}).get('kind', '?')} {(training.get('validation') or {}).get('split', '')} "
            f"({fmt(training.get('validation_queries'))} queries); chosen: {card.get('chosen', '?')}; {fmt(card.get('seconds'), 3)} s."
        )
        validation = card.get("validation") or {}
        before, after = validation.get("before") or {}, validation.get("after") or {}
        if before or after:
            metrics = [m for m in after if m in before] or list(after)
            section.headline.append(
                "Validation " + "; ".join(f"{m.replace('val_', '')} {fmt(before.get(m))} before, {fmt(after.get(m))} after" for m in metrics)
                + f" ({card.get('chosen', 'final')} model, {fmt(validation.get('queries'))} validation queries)."
            )
            section.tables.append(
                Table("Validation before and after fine-tuning", ["metric", "before", "after"],
                      [[text(m.replace("val_", "")), num(before.get(m)), num(after.get(m))] for m in metrics],
                      note=f"Validation corpus: {validation.get('corpus', '?')}.")
            )
        for note in card.get("notes") or []:
            section.notes.append(str(note))
    else:
        section.notes.append("A training log alone records no model fingerprint or data hash; give the model folder "
                             "(with training_card.json) to caption its curves.")
    passes = card.get("passes") or {}
    if passes:
        val_names = sorted({k for p in passes.values() for k in (p.get("validation") or {})})
        section.tables.append(
            Table(
                "Training passes",
                ["pass", "loss", "rows", "epochs", "steps", "batch", "seconds", "pairs/s", "best metric", *[v.replace("val_", "val ") for v in val_names]],
                [[Cell(name + (" (chosen)" if name == card.get("chosen") else ""), name), text(p.get("loss")), num(p.get("rows")),
                  num(p.get("epochs_done")), num(p.get("steps")), num(p.get("batch_size")), num(p.get("seconds"), 3),
                  num(p.get("pairs_per_second"), 3), num(p.get("best_metric")), *[num((p.get("validation") or {}).get(v)) for v in val_names]]
                 for name, p in passes.items()],
            )
        )
    parameters = card.get("parameters") or {}
    if parameters:
        section.tables.append(Table("Parameters", ["parameter", "value"],
                                    [[text(k), num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else text(v)] for k, v in parameters.items()]))
    mining = card.get("mining") or {}
    scores = mining.get("scores") or {}
    if scores:
        section.tables.append(
            Table("Hard-negative mining: similarity scores", ["scores", "count", "mean", "std", "p25", "median", "p75"],
                  [[text(k), num(v.get("count")), num(v.get("mean")), num(v.get("std")), num(v.get("p25")), num(v.get("median")), num(v.get("p75"))]
                   for k, v in scores.items()],
                  note=f"{fmt(mining.get('pairs_with_negatives'))} of {fmt(mining.get('pairs'))} pairs got negatives; "
                       f"{fmt(mining.get('negatives'))} negatives from {fmt(mining.get('candidates_per_query'))} candidates per query.")
        )
    curves: dict[str, Any] = {}
    for name, p in (log.get("passes") or {}).items():
        loss = [[e.get("step"), e.get("loss")] for e in p.get("loss_curve") or [] if e.get("step") is not None and e.get("loss") is not None]
        validation: dict[str, list] = {}
        for e in p.get("validation") or []:
            for key, value in e.items():
                if key.startswith("eval_val_") and isinstance(value, (int, float)) and e.get("step") is not None:
                    validation.setdefault(key[len("eval_val_"):], []).append([e["step"], value])
        curves[name] = {"loss": loss, "validation": validation, "loss_name": p.get("loss")}
    if any(c["loss"] or c["validation"] for c in curves.values()):
        caption = (
            (f"Model: {output} @{short(card.get('fingerprint'))} from {card.get('base_model', '?')}; " if card else "Model: not recorded in the log; ")
            + (f"data {dataset.get('name', '?')} (hash {short(dataset.get('hash'))}, pairs {short(training.get('pairs_hash'))}). " if card else "")
            + ("Versions: " + versions(prov) + "." if prov else "Versions: not recorded in the log.")
        )
        section.figures.append(
            Figure("", "Training loss and validation curves", "training_curves", {"passes": curves}, caption,
                   alt="Training loss and validation metrics by step, one column per training pass")
        )
    if not section.tables and not section.figures:
        return [generic_section(source, data, note="No training log or card this renderer knows in this result; its fields are listed as they are.")]
    return [section]


# ------------------------------------------------------------------------------ anything else


def _flatten(data: Any, prefix: str = "", depth: int = 0, out: list | None = None) -> list[tuple[str, Any]]:
    out = [] if out is None else out
    if isinstance(data, dict) and depth < 3:
        for key, value in data.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), depth + 1, out)
    elif isinstance(data, list):
        if data and all(not isinstance(v, (dict, list)) for v in data) and len(data) <= 12:
            out.append((prefix, ", ".join(str(v) for v in data)))
        else:
            out.append((prefix, f"[{len(data)} items]"))
    elif isinstance(data, dict):
        out.append((prefix, f"{{{len(data)} fields}}"))
    else:
        out.append((prefix, data))
    return out


def generic_section(source: str, data: dict[str, Any], note: str) -> Section:
    kind = str(data.get("kind"))
    section = Section(title=f"Result of kind {kind!r}", kind=kind, source=source,
                      provenance=provenance_line(data.get("provenance") or {}), badge="NOT RENDERED", badge_tone="warn")
    section.notes.append(note)
    rows = [
        [text(key), num(value) if isinstance(value, (int, float)) else text(str(value)[:200])]
        for key, value in _flatten({k: v for k, v in data.items() if k != "provenance"})
    ][:80]
    section.tables.append(Table("Fields", ["field", "value"], rows))
    return section


BUILDERS: dict[str, Callable[..., list[Section]]] = {
    "eval": eval_sections,
    "compare": compare_sections,
    "comparison": compare_sections,
    "gate": gate_sections,
    "ab-analysis": ab_analysis_sections,
    "ab-decision": ab_decision_sections,
    "ab-interleaving": ab_interleaving_sections,
    "training-log": training_sections,
    "model-card": training_sections,
    "bi-encoder": training_sections,
    "cross-encoder": training_sections,
}
