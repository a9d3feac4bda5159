"""Result files -> one report document (``harness.reports.document``), one module per kind.

Each module here turns the results of its kinds into sections: its ``BUILDERS`` map a
kind to a function ``(source, data, context) -> list[Section]``, and its ``FORMS`` (where
the command that makes the result writes forms of its own) map a kind to a function
``data -> {"comment": ..., "console": ..., "tests": ...}``, the first section's short
forms. A kind no module names becomes a generic section with a note, never an error, and
so does a result its module cannot read. Adding a result kind means adding one module and
naming it in ``MODULES``.

Nothing here computes a statistic: every number is read from a result. What is done here
is selection and display: which metric is the headline, the order of rows, the
formatting, the label of a figure, and which arm lies on the quality/latency Pareto front
when a result gives the points but not the front (``harness.stats.pareto_front``, a
display marker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.reports.document import Report, Section
from harness.reports.sections import ab, compare, eval, gate, loop, training
from harness.reports.sections.captions import AB_LIBRARIES, KEY_LIBRARIES, provenance_line
from harness.reports.sections.generic import generic_section
from harness.results import read_result

MODULES = (eval, compare, gate, ab, training, loop)
BUILDERS: dict[str, Callable[..., list[Section]]] = {kind: build for module in MODULES for kind, build in module.BUILDERS.items()}
FORMS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    kind: forms for module in MODULES for kind, forms in getattr(module, "FORMS", {}).items()
}
KIND_NAMES = {kind: name for module in MODULES for kind, name in module.KIND_NAMES.items()}


@dataclass
class Context:
    """What a section may read besides its own result: the other results of the report, and
    the retrievers their evaluations describe (spec -> description, to caption figures)."""

    results: list[tuple[str, dict[str, Any]]]
    retrievers: dict[str, dict[str, Any]] = field(default_factory=dict)


def load(paths: list[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """Result files; a fine-tuned model's folder or its training_card.json becomes a model-card."""
    loaded = []
    for path in map(Path, paths):
        if training.is_model_folder(path):
            loaded.append((str(path), training.read_model_folder(path)))
        else:
            loaded.append((str(path), read_result(path)))
    return loaded


def build_report(paths: list[str | Path], title: str | None = None) -> Report:
    return build_report_from(load(paths), title=title)


def build_report_from(results: list[tuple[str, dict[str, Any]]], title: str | None = None) -> Report:
    context = Context(results, known_retrievers(results))
    sections: list[Section] = []
    for index, (source, data) in enumerate(results):
        new = result_sections(source, data, context)
        for number, section in enumerate(new):
            section.key = f"s{index}-{number}"
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
    return Report(title=report_title(results) if title is None else title, sections=sections, sources=sources)


def result_sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    kind = str(data.get("kind"))
    builder = BUILDERS.get(kind)
    if builder is None:
        return [generic_section(source, data, note=f"This harness has no renderer for result kind {kind!r}; its fields are listed as they are.")]
    try:
        built = builder(source, data, context)
    except Exception as exc:  # a malformed or newer result still gets a section
        built = [generic_section(source, data, note=f"Could not render this {kind!r} result ({type(exc).__name__}: {exc}); its fields are listed as they are.")]
    try:
        _add_forms(built[0], data)
    except Exception:  # a malformed result or one of another version: its section shows the full tables instead
        pass
    return built


def command_section(source: str, data: dict[str, Any]) -> Section:
    """The section of a result the running command has just made, with the forms it writes
    itself (``comment``, ``console``, ``tests``); what cannot be built is an error here, and
    no other result is read to caption it."""
    section = BUILDERS[str(data["kind"])](source, data, Context([(source, data)]))[0]
    _add_forms(section, data)
    return section


def _add_forms(section: Section, data: dict[str, Any]) -> None:
    forms = FORMS.get(str(data.get("kind")))
    if forms is not None:
        for name, value in forms(data).items():
            setattr(section, name, value)


def report_title(results: list[tuple[str, dict[str, Any]]]) -> str:
    names = []
    for _, d in results:
        name = KIND_NAMES.get(str(d.get("kind")), str(d.get("kind")))
        if name not in names:
            names.append(name)
    datasets = sorted({str((d.get("dataset") or {}).get("name")) for _, d in results if isinstance(d.get("dataset"), dict) and d["dataset"].get("name")})
    return "Embedding harness report: " + ", ".join(names) + (f" on {', '.join(datasets)}" if datasets else "")


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
