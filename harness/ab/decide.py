"""Promote, hold or roll back, from an analysis, with the reasons; and the audit trail.

For each treatment, with the primary metric and the guardrails of the experiment:

* a sample-ratio mismatch (chi-square p < 0.001) blocks any decision: hold;
* roll back when any guardrail (or the primary metric) is significantly worse;
* promote when the primary metric is significantly better and every guardrail is
  non-inferior (its interval excludes a loss larger than the relative margin);
* hold otherwise, with the days still needed to detect the chosen lift.

"Significant" uses the always-valid (sequential) p-values and intervals by default, so
deciding on any day is valid; ``method="fixed"`` uses the fixed-horizon ones (valid once,
at the planned end). P-values are Holm-adjusted across the primary metric and the
guardrails (statsmodels).
"""

from __future__ import annotations

import getpass
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from harness.errors import HarnessError

PROMOTE, ROLLBACK, HOLD = "promote", "rollback", "hold"
EXIT = {PROMOTE: 0, ROLLBACK: 1, HOLD: 2}


def _interval(row: dict, method: str) -> tuple[float | None, float | None, float | None]:
    if method == "sequential":
        if row.get("seq_pvalue") is None:
            raise HarnessError("the analysis has no sequential intervals (it ran without the daily part); use --method fixed")
        return row.get("seq_ci_lower"), row.get("seq_ci_upper"), row.get("seq_pvalue")
    return row.get("effect_size_ci_lower"), row.get("effect_size_ci_upper"), row.get("pvalue")


def decide(analysis: dict[str, Any], *, method: str = "sequential", alpha: float | None = None) -> dict[str, Any]:
    from statsmodels.stats.multitest import multipletests

    if method not in ("sequential", "fixed"):
        raise HarnessError(f"unknown method {method!r} (sequential or fixed)")
    exp = analysis["experiment"]
    alpha = alpha if alpha is not None else analysis["options"]["alpha"]
    primary = exp["primary_metric"]
    guardrails = [g for g in exp["guardrails"] if g != primary]
    margin = exp["guardrail_margin"]
    srm = analysis["srm"]
    per_treatment = []
    for t in [v for v in exp["variants"] if v != exp["control"]]:
        rows = {e["metric"]: e for e in analysis["effects"] if e["treatment"] == t}
        reasons: list[str] = []
        if not rows:
            per_treatment.append({"treatment": t, "decision": HOLD, "reasons": [f"no users in {t!r}"], "metrics": {}})
            continue
        names = [primary, *[g for g in guardrails if g in rows]]
        missing = [n for n in [primary, *guardrails] if n not in rows]
        if missing:
            raise HarnessError(f"the analysis lacks metric(s) {', '.join(missing)}")
        intervals = {n: _interval(rows[n], method) for n in names}
        raw_p = [intervals[n][2] if intervals[n][2] is not None else 1.0 for n in names]
        holm = dict(zip(names, multipletests(raw_p, alpha=alpha, method="holm")[1], strict=True))
        numbers = {}
        for n in names:
            r = rows[n]
            lo, hi, p = intervals[n]
            d = r["direction"]
            effect = r["effect_size"]
            lo = float("-inf") if lo is None else lo
            hi = float("inf") if hi is None else hi
            better = holm[n] < alpha and ((d > 0 and lo > 0) or (d < 0 and hi < 0))
            worse = holm[n] < alpha and ((d > 0 and hi < 0) or (d < 0 and lo > 0))
            bound = margin * abs(r["control_value"] or 0.0)
            non_inferior = (d > 0 and lo > -bound) or (d < 0 and hi < bound)
            numbers[n] = {
                "role": "primary" if n == primary else "guardrail",
                "control": r["control_value"],
                "treatment": r["treatment_value"],
                "effect_size": effect,
                "ci_lower": None if lo == float("-inf") else lo,
                "ci_upper": None if hi == float("inf") else hi,
                "pvalue": p,
                "pvalue_holm": float(holm[n]),
                "significantly_better": bool(better),
                "significantly_worse": bool(worse),
                "non_inferior": bool(non_inferior),
                "margin": bound,
            }
        if srm["mismatch"]:
            decision = HOLD
            reasons.append(
                f"sample-ratio mismatch: users {srm['users']} vs expected shares {srm['expected_share']} "
                f"(chi-square p = {srm['pvalue']:.2g} < 0.001) blocks any decision; fix the assignment first"
            )
        else:
            worse = [n for n in names if numbers[n]["significantly_worse"]]
            if worse:
                decision = ROLLBACK
                for n in worse:
                    reasons.append(
                        f"{n} ({numbers[n]['role']}) is significantly worse: effect {numbers[n]['effect_size']:+.4g}, "
                        f"interval [{_fmt(numbers[n]['ci_lower'])}, {_fmt(numbers[n]['ci_upper'])}], Holm p = {numbers[n]['pvalue_holm']:.2g}"
                    )
            elif numbers[primary]["significantly_better"] and all(numbers[g]["non_inferior"] for g in names[1:]):
                decision = PROMOTE
                reasons.append(
                    f"{primary} is significantly better: effect {numbers[primary]['effect_size']:+.4g}, interval "
                    f"[{_fmt(numbers[primary]['ci_lower'])}, {_fmt(numbers[primary]['ci_upper'])}], Holm p = {numbers[primary]['pvalue_holm']:.2g}"
                )
                for g in names[1:]:
                    reasons.append(f"guardrail {g} is non-inferior (margin {numbers[g]['margin']:.3g})")
            else:
                decision = HOLD
                if not numbers[primary]["significantly_better"]:
                    days = (rows[primary].get("power") or {}).get("days_needed")
                    needed = (rows[primary].get("power") or {}).get("users_needed")
                    reasons.append(
                        f"{primary} is not significantly better yet (Holm p = {numbers[primary]['pvalue_holm']:.2g})"
                        + (f"; about {days} more day(s) to reach the {needed} users needed to detect a "
                           f"{analysis['options']['mde']:.1%} lift" if days is not None else "")
                    )
                for g in names[1:]:
                    if not numbers[g]["non_inferior"]:
                        reasons.append(f"guardrail {g} is not yet shown non-inferior (margin {numbers[g]['margin']:.3g})")
        per_treatment.append({"treatment": t, "decision": decision, "reasons": reasons, "metrics": numbers})

    decisions = [p["decision"] for p in per_treatment]
    if PROMOTE in decisions:
        overall = PROMOTE
        best = max(
            (p for p in per_treatment if p["decision"] == PROMOTE),
            key=lambda p: p["metrics"][primary]["effect_size"] * _direction(analysis, primary),
        )
        chosen = best["treatment"]
    elif ROLLBACK in decisions:
        overall, chosen = ROLLBACK, next(p["treatment"] for p in per_treatment if p["decision"] == ROLLBACK)
    else:
        overall, chosen = HOLD, None
    return {
        "decision": overall,
        "variant": chosen,
        "exit_code": EXIT[overall],
        "method": method,
        "alpha": alpha,
        "treatments": per_treatment,
    }


def _direction(analysis, metric) -> int:
    for e in analysis["effects"]:
        if e["metric"] == metric:
            return e["direction"]
    return 1


def _fmt(x: float | None) -> str:
    return "-inf" if x is None else f"{x:+.4g}"


def record(con, experiment_id: str, result: dict[str, Any], inputs: dict[str, Any], who: str | None = None) -> str:
    """Write the decision to the ``decisions`` audit table; returns its id."""
    decision_id = uuid.uuid4().hex
    reasons = [f"{t['treatment']}: {r}" for t in result["treatments"] for r in t["reasons"]]
    con.execute(
        "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            decision_id,
            experiment_id,
            datetime.now(timezone.utc).replace(tzinfo=None),
            who or getpass.getuser(),
            result["decision"],
            result["exit_code"],
            reasons,
            json.dumps(inputs, default=str),
            json.dumps({t["treatment"]: t["metrics"] for t in result["treatments"]}, default=str),
        ],
    )
    return decision_id
