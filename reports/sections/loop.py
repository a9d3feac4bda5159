"""Sections of the demo's loop (``loop/loop.json``, kind ``loop``): each round's offline lift
over its champion with its interval, the gate and A/B verdicts and whether it was promoted;
the lineage of the model versions; the registry's history; what the logged pairs held out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.reports.document import Cell, Section, Table
from harness.reports.formatting import difference, fixed, num, pvalue, short, text
from harness.reports.sections.captions import STATS_LIBRARIES, provenance_line
from harness.reports.sections.generic import generic_section

if TYPE_CHECKING:
    from harness.reports.sections import Context

KIND_NAMES = {"loop": "loop"}


def sections(source: str, data: dict[str, Any], context: Context) -> list[Section]:
    rounds = [r for r in data.get("rounds") or [] if isinstance(r, dict)]
    if not rounds:
        return [generic_section(source, data, note="This loop result has no rounds this renderer knows; its fields are listed as they are.")]
    champion = data.get("champion_at_end")
    section = Section(
        title="The loop: rounds, versions and decisions", kind="loop", source=source,
        provenance=provenance_line(data.get("provenance") or {}, STATS_LIBRARIES),
        badge=f"champion v{champion}" if champion is not None else "", badge_tone="good",
    )
    for r in rounds:
        offline = r.get("offline") or {}
        section.headline.append(
            f"round {r.get('round')} ({r.get('trained_on')}): nDCG@10 {fixed(offline.get('candidate_mean'))} vs "
            f"{fixed(offline.get('baseline_mean'))} ({fixed(offline.get('difference'), sign=True)} "
            f"[{fixed(offline.get('ci_low'), sign=True)}, {fixed(offline.get('ci_high'), sign=True)}]); gate {r.get('gate')}, "
            f"A/B {r.get('ab')}: {'promoted' if r.get('promoted') else 'not promoted'}"
        )
    if data.get("rolled_back"):
        section.headline.append(f"rollback drill: champion restored to v{champion}")
    section.tables.append(Table(
        title="Rounds: held-out nDCG@10 of each round against the champion it was gated against",
        columns=["round", "trained on", "champion", "candidate", "champion nDCG@10", "candidate nDCG@10", "difference", "Holm p",
                 "gate", "A/B", "promoted"],
        rows=[_round_row(r) for r in rounds], key="rounds",
    ))
    versions = [v for v in data.get("versions") or [] if isinstance(v, dict)]
    if versions:
        section.tables.append(Table(
            title="Model versions (the registry's lineage)", columns=["version", "parent", "fingerprint", "aliases", "model"],
            rows=[[num(v.get("version"), 0), text(v.get("parent") if v.get("parent") is not None else "-"),
                   text(short(v.get("fingerprint"))), text(", ".join(v.get("aliases") or []) or "-"), text(v.get("path"))]
                  for v in versions], key="versions",
        ))
    history = [h for h in data.get("history") or [] if isinstance(h, dict)]
    if history:
        section.tables.append(Table(
            title="Registry history", columns=["at", "event", "version", "previous champion", "by", "via", "reason"],
            rows=[[text(h.get("at")), text(h.get("event")), num(h.get("version"), 0),
                   text(h.get("previous_champion") if h.get("previous_champion") is not None else "-"), text(h.get("by")),
                   text(h.get("via") or "-"), text(h.get("reason"))] for h in history], key="history",
        ))
    serving = data.get("serving") or {}
    if serving.get("indexes"):
        aliases = serving.get("aliases") or {}
        served_by = {}
        for alias, collection in aliases.items():
            served_by.setdefault(collection, []).append(alias)
        section.tables.append(Table(
            title=f"Serving indexes ({serving.get('db')}): each champion's own, the alias swapped by promotion and rollback",
            columns=["index", "model", "fingerprint", "registry version", "documents", "aliases"],
            rows=[[text(i.get("collection")), text(i.get("model")), text(short(i.get("fingerprint"))),
                   num((i.get("registry") or {}).get("version"), 0), num(i.get("documents"), 0),
                   text(", ".join(sorted(served_by.get(i.get("collection"), []))) or "-")] for i in serving["indexes"]],
            key="serving",
        ))
        figures = serving.get("ndcg@10") or {}
        section.notes.append(
            f"What the alias served after round 1's promotion, evaluated as {serving.get('served_arm')} on {serving.get('suite')}: "
            f"nDCG@10 {fixed(figures.get('served'))}, the in-memory {serving.get('in_memory_arm')} {fixed(figures.get('in_memory'))}."
        )
    pairs = data.get("pairs") or {}
    leakage, rows = pairs.get("leakage") or {}, pairs.get("rows") or {}
    if pairs:
        section.notes.append(
            f"Round 2's pairs ({pairs.get('file')}): {rows.get('train', '?')} train rows over {rows.get('train_queries', '?')} "
            f"logged queries, debiasing {pairs.get('debias')}; the leakage guard left out {leakage.get('excluded_queries', '?')} "
            f"queries of the offline held-out splits ({leakage.get('excluded_exposures', '?')} exposures)."
        )
    if data.get("registry"):
        section.notes.append(f"Registry: {data['registry']}")
    return [section]


def _round_row(r: dict[str, Any]) -> list[Cell]:
    offline = r.get("offline") or {}
    return [
        num(r.get("round"), 0), text(r.get("trained_on")), text(r.get("baseline")), text(r.get("candidate")),
        num(offline.get("baseline_mean")), num(offline.get("candidate_mean")),
        difference(offline.get("difference"), offline.get("ci_low"), offline.get("ci_high")),
        text(pvalue(offline.get("p_adjusted"))), text(r.get("gate")), text(r.get("ab")),
        text("yes" if r.get("promoted") else "no"),
    ]


BUILDERS = {"loop": sections}
