"""Offline-online agreement: did the offline evaluation of the variants' retrievers
predict the direction and the size of the online effect?

For every treatment: the offline difference (treatment spec - control spec) of one
metric of one suite of an ``eval`` result, with the paired bootstrap interval over the
suite's queries when per-query scores are present (``harness.stats.bootstrap_ci``, the
same interval ``harness compare`` reports), set against the online effect of the
experiment's primary metric (effect, interval, relative effect). Reported: whether both
point the same way (online direction taken from the metric: abandonment improves when it
falls), whether each is significant, and the ratio of the relative online effect to the
relative offline difference (1 means the offline lift carried over in full).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

PREFERRED_METRICS = ("ndcg@10", "ndcg_cut_10", "mrr@10", "recall@10", "map@10")


def variant_specs(exp_variants: list[str], result, mapping: dict[str, str] | None) -> dict[str, str]:
    """variant -> retriever spec as the result spells it: the mapping given (or recorded
    by ``ab simulate`` in experiment.json), else variants named after the specs."""
    from harness.comparison import find_spec

    out = {}
    for v in exp_variants:
        if mapping and v in mapping:  # asked for: a spec missing from the result is an error
            try:
                out[v] = find_spec(result, mapping[v])
            except HarnessError as exc:
                raise HarnessError(f"--offline-map {v}={mapping[v]}: {str(exc).splitlines()[0]}") from exc
            continue
        try:
            out[v] = find_spec(result, v)
        except HarnessError:  # a variant not named after a spec (or not one at all)
            continue
    return out


def parse_mapping(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``VARIANT=SPEC`` items, or experiment.json files whose ``retrievers`` object maps
    variants to specs (written by ``ab simulate --data ... --retriever ...``)."""
    mapping: dict[str, str] = {}
    for item in items:
        path = Path(item)
        if "=" not in item or path.is_file():
            if not path.is_file():
                raise HarnessError(f"--offline-map {item!r}: expected VARIANT=SPEC or an experiment.json file")
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise HarnessError(f"{path}: not valid JSON ({exc.msg})") from exc
            recorded = data.get("retrievers") if isinstance(data, dict) else None
            if not isinstance(recorded, dict) or not recorded:
                raise HarnessError(f"{path}: no 'retrievers' object (variant -> retriever spec) recorded")
            mapping |= {str(k): str(v) for k, v in recorded.items()}
        else:
            variant, spec = item.split("=", 1)
            if not variant or not spec:
                raise HarnessError(f"--offline-map {item!r}: expected VARIANT=SPEC")
            mapping[variant] = spec
    return mapping


def _pick_suite(result, name: str | None, specs: list[str]):
    if name is not None:
        return result.suite(name)
    for suite in result.suites:
        if all(s in suite.aggregates for s in specs):
            return suite
    raise HarnessError(f"no suite of the offline result has aggregates for all of {', '.join(specs)}")


def _pick_metric(suite, name: str | None, specs: list[str]) -> str:
    common = set.intersection(*(set(suite.aggregates[s]) for s in specs))
    if name is not None:
        if name not in common:
            raise HarnessError(f"offline metric {name!r} is not in suite {suite.name!r} (has: {', '.join(sorted(common))})")
        return name
    for m in PREFERRED_METRICS:
        if m in common:
            return m
    if not common:
        raise HarnessError(f"suite {suite.name!r} has no metric common to {', '.join(specs)}")
    return sorted(common)[0]


def _sign(x: float | None, eps: float = 1e-12) -> int:
    if x is None or not math.isfinite(x) or abs(x) <= eps:
        return 0
    return 1 if x > 0 else -1


def agreement(analysis: dict[str, Any], result, *, source: str = "", mapping: dict[str, str] | None = None,
              suite: str | None = None, metric: str | None = None, resamples: int = 9999, seed: int = 0) -> dict[str, Any]:
    """The ``offline_online`` section of an ab-analysis result."""
    from harness.ab.schema import METRIC_DIRECTION
    from harness.stats import align, bootstrap_ci

    exp = analysis["experiment"]
    control = exp["control"]
    primary = exp["primary_metric"]
    specs = variant_specs(exp["variants"], result, mapping)
    if control not in specs:
        raise HarnessError(
            f"the control variant {control!r} has no retriever in the offline result {source}: "
            "give --offline-map VARIANT=SPEC (or the experiment.json written by ab simulate)"
        )
    treatments = [v for v in exp["variants"] if v != control and v in specs]
    if not treatments:
        raise HarnessError(f"no treatment variant has a retriever in the offline result {source}: give --offline-map VARIANT=SPEC")
    used = [specs[control]] + [specs[t] for t in treatments]
    s = _pick_suite(result, suite, used)
    m = _pick_metric(s, metric, used)
    direction = METRIC_DIRECTION[primary]
    rows = []
    for t in treatments:
        base, cand = s.aggregates[specs[control]][m], s.aggregates[specs[t]][m]
        diff = cand - base
        lo = hi = None
        n_queries = None
        scores = s.per_query
        if specs[control] in scores and specs[t] in scores and m in scores[specs[control]] and m in scores[specs[t]]:
            ids, b, c = align(scores[specs[control]][m], scores[specs[t]][m], s.query_ids or None)
            n_queries = len(ids)
            if len(ids) >= 2:
                lo, hi = (float(x) for x in bootstrap_ci(b, c, n_resamples=resamples, seed=seed))
                diff = float((c - b).mean())  # paired on the queries both scored
                base = float(b.mean())
        rel_off = diff / base if base else None
        online = next((e for e in analysis["effects"] if e["treatment"] == t and e["metric"] == primary), None)
        if online is None:
            continue
        eff, rel_on = online.get("effect_size"), online.get("rel_effect_size")
        off_sign, on_sign = _sign(diff), _sign(eff) * direction
        row = {
            "treatment": t,
            "control_spec": specs[control],
            "treatment_spec": specs[t],
            "offline": {
                "suite": s.name, "metric": m, "control": base, "treatment": base + diff, "difference": diff,
                "ci_lower": lo, "ci_upper": hi, "relative": rel_off, "queries": n_queries,
                "significant": None if lo is None else bool(lo > 0 or hi < 0),
            },
            "online": {
                "metric": primary, "direction": direction, "effect_size": eff,
                "ci_lower": online.get("effect_size_ci_lower"), "ci_upper": online.get("effect_size_ci_upper"),
                "relative": rel_on, "rel_ci_lower": online.get("rel_effect_size_ci_lower"),
                "rel_ci_upper": online.get("rel_effect_size_ci_upper"), "pvalue": online.get("pvalue"),
                "significant": None if online.get("pvalue") is None else bool(online["pvalue"] < analysis["options"]["alpha"]),
            },
            "same_direction": bool(off_sign != 0 and off_sign == on_sign),
            # online relative improvement per unit of offline relative improvement
            "ratio": (rel_on * direction / rel_off) if rel_on is not None and rel_off else None,
        }
        lo_r, hi_r = row["online"]["rel_ci_lower"], row["online"]["rel_ci_upper"]
        row["offline_relative_within_online_interval"] = (
            None if rel_off is None or lo_r is None or hi_r is None else bool(min(lo_r, hi_r) <= rel_off * direction <= max(lo_r, hi_r))
        )
        rows.append(row)
    return {"source": source, "suite": s.name, "metric": m, "online_metric": primary, "variants": specs, "treatments": rows}


def print_agreement(section: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def f(x, d=4):
        return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}g}"

    table = Table(title=f"offline ({section['suite']} {section['metric']}) vs online ({section['online_metric']})")
    for col in ("treatment", "offline diff", "offline 95% CI", "offline rel.", "online effect", "online 95% CI",
                "online rel.", "same direction", "ratio online/offline"):
        table.add_column(col)
    for r in section["treatments"]:
        off, on = r["offline"], r["online"]
        table.add_row(
            f"{r['treatment']} ({r['treatment_spec']} vs {r['control_spec']})", f(off["difference"]),
            f"[{f(off['ci_lower'])}, {f(off['ci_upper'])}]", f(off["relative"]), f(on["effect_size"]),
            f"[{f(on['ci_lower'])}, {f(on['ci_upper'])}]", f(on["relative"]), "yes" if r["same_direction"] else "no",
            f(r["ratio"], 3),
        )
    Console().print(table)
