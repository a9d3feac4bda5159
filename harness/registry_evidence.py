"""What judged a model version: the result files attached to it in the registry.

An evaluation, comparison or gate names the models it judged only through the
evaluation results behind it, whose retriever descriptions carry each model's
fingerprint (``harness.adapters.models.fingerprint``); so a file is attached to a
version only when one of its arms is that version's weights, and a gate lets a version
be promoted only when its candidate is that version and its baseline the champion.
An A/B decision names variants, not models: it is recorded as attached, with its
experiment, decision and audit id.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

JUDGING_KINDS = ("eval", "compare", "gate", "ab-decision")


@dataclass
class Evidence:
    """One judging file: what the version's tags, metrics and artifacts keep of it."""

    kind: str
    path: Path
    sha256: str
    summary: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "sha256": self.sha256, **self.summary}


@dataclass
class GateVerdict:
    """A gate.json and the models its candidate and baseline were (by fingerprint)."""

    path: Path
    sha256: str
    status: str
    exit_code: int
    candidate: str | None
    baseline: str | None
    candidate_fingerprints: set[str]
    baseline_fingerprints: set[str]
    failed: list[str]

    @property
    def passed(self) -> bool:
        # the gate's own verdict: exit 0 is "promote" (every check passed, or an
        # inconclusive check under a policy with inconclusive_blocks = false)
        return self.exit_code == 0 and self.status != "error"

    def evidence(self) -> Evidence:
        summary = {"status": self.status, "exit_code": self.exit_code, "candidate": self.candidate,
                   "baseline": self.baseline, "failed_checks": self.failed}
        return Evidence("gate", self.path, self.sha256, summary)


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fingerprints(description: Any) -> set[str]:
    """Every model fingerprint in a retriever description (hybrid parts, rerank stages)."""
    found: set[str] = set()
    if isinstance(description, dict):
        if isinstance(description.get("fingerprint"), str):
            found.add(description["fingerprint"])
        for value in description.values():
            found |= fingerprints(value)
    elif isinstance(description, list):
        for value in description:
            found |= fingerprints(value)
    return found


def metric_key(*parts: str) -> str:
    """An MLflow metric name (letters, digits, ``_ - . / : space``) for harness names
    such as ``slice:subdomain=storage`` and ``ndcg@10``."""
    return "/".join(re.sub(r"[^\w.\- :]", "_", part.replace("@", "_at_")) for part in parts)


def read_evidence(path: Path, fingerprint: str) -> Evidence:
    """Read a judging file and check that it judged the model ``fingerprint``."""
    from harness.results import read_result

    path = Path(path)
    document = read_result(path)
    kind = document["kind"]
    if kind == "eval":
        return _eval_evidence(path, fingerprint)
    if kind == "compare":
        return _compare_evidence(path, document, fingerprint)
    if kind == "gate":
        verdict = read_gate(path)
        if fingerprint not in verdict.candidate_fingerprints:
            raise HarnessError(f"{path}: this gate's candidate {verdict.candidate} is not model {fingerprint}")
        evidence = verdict.evidence()
        evidence.metrics = _gate_metrics(document)
        return evidence
    if kind == "ab-decision":
        decision = document["decision"]
        summary = {"experiment": document["experiment"]["experiment_id"], "decision": decision["decision"],
                   "variant": decision["variant"], "audit_id": document.get("audit_id")}
        return Evidence(kind, path, file_sha256(path), summary)
    raise HarnessError(f"{path}: a {kind!r} result does not judge a model (attach one of: {', '.join(JUDGING_KINDS)})")


def read_gate(path: Path) -> GateVerdict:
    """The gate's verdict, with the fingerprints of its candidate and baseline read from the
    evaluation it judged (``OUT/eval/result.json`` beside gate.json, or the policy's results)."""
    from harness.results import read_result

    path = Path(path)
    document = read_result(path)
    if document["kind"] != "gate":
        raise HarnessError(f"{path}: not a gate result (kind {document['kind']!r})")
    sha = file_sha256(path)
    if document.get("status") == "error":
        return GateVerdict(path, sha, "error", 3, None, None, set(), set(), [f"the gate ended in an error: {document.get('error')}"])
    sources = [Path(p) for p in document["policy"].get("results") or []] or [path.parent / "eval" / "result.json"]
    result = _judged_evaluation(path, sources, document)
    specs = {r.spec: r for r in result.retrievers}
    failed = [f"{c['name']}: {c['reason']}" for c in document["checks"] if c["status"] != "pass"]
    return GateVerdict(
        path, sha, document["status"], document["exit_code"], document["candidate"], document["baseline"],
        fingerprints(specs[document["candidate"]].description), fingerprints(specs[document["baseline"]].description), failed,
    )


def _judged_evaluation(gate: Path, sources: list[Path], document: dict[str, Any]):
    from harness.results import read_eval_result
    from harness.comparison import merge_results

    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise HarnessError(f"{gate}: the evaluation this gate judged ({', '.join(missing)}) is not there, so the models "
                           "it judged cannot be told; keep the gate's --out folder whole")
    result = merge_results([read_eval_result(p) for p in sources], [str(p) for p in sources])
    if document["dataset"].get("hash") != result.dataset.get("hash"):
        raise HarnessError(f"{gate}: the evaluation beside it ({', '.join(map(str, sources))}) is of another dataset "
                           "than the one the gate judged: it was overwritten since")
    for role in ("candidate", "baseline"):
        if document[role] not in {r.spec for r in result.retrievers}:
            raise HarnessError(f"{gate}: its {role} {document[role]!r} is not in the evaluation beside it: it was overwritten since")
    return result


def _eval_evidence(path: Path, fingerprint: str) -> Evidence:
    from harness.results import read_eval_result

    result = read_eval_result(path)
    arms = [r.spec for r in result.retrievers if fingerprint in fingerprints(r.description)]
    if not arms:
        raise HarnessError(f"{path}: no retriever of this evaluation is model {fingerprint} "
                           f"(it holds {', '.join(r.spec for r in result.retrievers)})")
    alone = [spec for spec in arms if _is_model_alone(spec)]
    metrics: dict[str, float] = {}
    aggregates: dict[str, dict[str, float]] = {}
    for suite in result.suites:
        if alone and alone[0] in suite.aggregates:
            aggregates[suite.name] = suite.aggregates[alone[0]]
            for metric, value in suite.aggregates[alone[0]].items():
                metrics[metric_key("eval", suite.name, metric)] = float(value)
    summary = {"dataset_hash": result.dataset.get("hash"), "arms": arms, "aggregates": aggregates}
    return Evidence("eval", path, file_sha256(path), summary, metrics)


def _compare_evidence(path: Path, document: dict[str, Any], fingerprint: str) -> Evidence:
    from harness.results import read_eval_result

    arms: set[str] = set()
    for source in document.get("sources", []):
        if Path(source).is_file():
            arms |= {r.spec for r in read_eval_result(source).retrievers if fingerprint in fingerprints(r.description)}
    rows = [c for c in document["comparisons"] if c["candidate"] in arms]
    if not rows:
        raise HarnessError(f"{path}: none of its candidates is model {fingerprint} (or the evaluations it read, "
                           f"{', '.join(document.get('sources', [])) or 'none named'}, are gone)")
    metrics = {metric_key("compare", c["suite"], c["metric"], "difference"): float(c["difference"])
               for c in rows if _is_model_alone(c["candidate"]) and c["difference"] is not None}
    summary = {"baseline": document["baseline"], "comparisons": [
        {k: c[k] for k in ("suite", "metric", "candidate", "difference", "ci_low", "ci_high", "p_adjusted")} for c in rows]}
    return Evidence("compare", path, file_sha256(path), summary, metrics)


def _gate_metrics(document: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    for check in document["checks"]:
        for key in ("difference", "ci_low", "ci_high"):
            value = check["numbers"].get(key)
            if isinstance(value, (int, float)):
                metrics[metric_key("gate", check["name"], key)] = float(value)
    return metrics


def _is_model_alone(spec: str) -> bool:
    """``dense:PATH`` itself, not a hybrid, reranked, truncated or approximate arm built on it."""
    from harness.adapters.spec import Spec

    parsed = Spec.parse(spec)
    return parsed.kind == "dense" and not parsed.args and not parsed.options


def refusals(version: Version, champion: Version | None, verdict: GateVerdict | None) -> list[str]:
    if verdict is None:
        return [f"no gate: v{version.number} becomes champion only after a passing gate (--gate gate.json)"]
    refusals = []
    if not verdict.passed:
        refusals.append(f"the gate {verdict.path} did not pass ({verdict.status}, exit {verdict.exit_code}"
                        + (f": {'; '.join(verdict.failed)}" if verdict.failed else "") + ")")
    if version.fingerprint not in verdict.candidate_fingerprints:
        refusals.append(f"the gate's candidate {verdict.candidate} is not v{version.number} (fingerprint {version.fingerprint})")
    if champion is not None and champion.fingerprint not in verdict.baseline_fingerprints:
        refusals.append(f"the gate's baseline {verdict.baseline} is not the champion v{champion.number} "
                        f"(fingerprint {champion.fingerprint})")
    return refusals
