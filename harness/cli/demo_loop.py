"""``harness demo``'s loop stage: the second round of the production loop (docs/loop.md).

Round 1 is the stages before it: the fine-tune from qrels, its gate against the base
MiniLM, its simulated A/B test (whose logs hold the demo's unlabelled query pool, served
with the real rankings of both models). This stage registers both versions in an MLflow
registry under ``OUT/loop``, promotes round 1 with its gate, turns round 1's logs into
training pairs (``harness ab pairs``, the held-out queries kept out), trains round 2 from
the round-1 model on those pairs only (one pass on the file's own negatives, one epoch),
evaluates, compares and gates it against the champion, registers it, runs its A/B test,
promotes it or holds it, and ends with a rollback. Every step is a harness command, as in
the other stages; ``OUT/loop/loop.json`` gathers the lineage, the figures of each round
and the decisions for the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

# round 2's A/B test: enough users for a verdict on the demo data, few enough to stay cheap
ROUND2_USERS = 2000
ROUND2_DAYS = 7
ROUND2_EXPERIMENT = "exp-round2"


def round2_model(state: Any) -> Path:
    return state.out / "models" / "ft-round2"


def stage_loop(state: Any) -> None:
    needed = [state.finetuned, state.out / "eval" / "result.json", state.out / "gate" / "gate.json",
              state.out / "ab" / "ab.duckdb"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise HarnessError(f"demo: the loop stage needs round 1 (finetune, evaluate, gate, ab stages): missing {', '.join(missing)}")
    loop = state.out / "loop"
    loop.mkdir(parents=True, exist_ok=True)
    registry_file = loop / "mlflow.db"
    serving = loop / "index"
    for stale in (registry_file, loop / "mlflow-artifacts", loop / "ab.duckdb", serving):
        _remove(stale)  # a fresh registry, store and index each run: the versions and decisions are those of this run
    reg = ["--registry", f"sqlite:///{registry_file}"]
    serve = ["--serving", str(serving), *reg]  # the serving alias follows each promotion and the rollback
    challenger = f"dense:{state.finetuned}"  # round 1, the champion round 2 is judged against
    round2 = round2_model(state)
    candidate = f"dense:{round2}"

    def build_index(version: str) -> None:
        """The version's index beside the serving one (its vectors come from the embedding cache)."""
        state.run("index", "build", "--db", str(serving), "--data", str(state.data), "--model", version, *reg,
                  "--cache", str(state.cache_dir), *state.device_args)

    # round 1: the base MiniLM is the first champion, serving from its own index; the fine-tune
    # from qrels, gated and A/B-tested by the stages before, is promoted with its gate, and the
    # serving alias swapped to its index
    state.run("models", "register", "default", "--alias", "champion", "--who", "harness demo", *reg)
    build_index("champion")
    state.run("index", "swap", "--db", str(serving))
    state.run("models", "register", str(state.finetuned), "--result", str(state.out / "eval" / "result.json"),
              "--result", str(state.out / "ab" / "decision.json"), "--who", "harness demo", *reg)
    build_index("challenger")
    round1_promoted = state.run("models", "promote", "challenger", "--gate", str(state.out / "gate" / "gate.json"),
                                "--who", "harness demo", *serve, allowed=(0, 1)) == 0
    # what the alias serves now, evaluated beside the in-memory arm of the same model
    served = f"qdrant:{state.finetuned}(db={serving},alias=search)"

    # round 2: pairs from round 1's logs (the pool's traffic; every dev and test query kept out)
    pairs = loop / "pairs.jsonl"
    state.run("ab", "pairs", "--db", str(state.out / "ab" / "ab.duckdb"), "--exclude-queries-of", str(state.data),
              "--out", str(pairs))
    if (round2 / "training_card.json").exists():
        state.console.print(f"{round2} exists: reusing it (delete it to train again)")
    else:
        # the file's skip-above negatives when the logs gave any (the usual case), else in-batch ones
        header = json.loads(pairs.read_text(encoding="utf-8").split("\n", 1)[0])
        passes = "hard-negatives" if header.get("counts", {}).get("negatives") else "in-batch"
        state.run("finetune", "--data", str(state.data), "--base", str(state.finetuned), "--pairs", str(pairs),
                  "--passes", passes, "--epochs", "1", "--out", str(round2),
                  "--cache", str(state.cache_dir), "--seed", str(state.seed + 42), *state.device_args)
    evaluation = loop / "eval"
    state.run("eval", "--data", str(state.data), "--retriever", challenger, "--retriever", candidate, "--retriever", served,
              *[item for suite in state.suites() for item in ("--suite", suite)],
              "--out", str(evaluation), "--cache", str(state.cache_dir), "--seed", str(state.seed), *state.device_args)
    state.run("compare", str(evaluation / "result.json"), "--baseline", challenger, "--metric", "ndcg@10",
              "--out", str(loop / "compare"))
    policy = Path(__file__).resolve().parents[2] / "examples" / "gate.toml"
    gate_code = state.run("gate", "--policy", str(policy), "--data", str(state.data), "--baseline", challenger,
                          "--candidate", candidate, "--results", str(evaluation / "result.json"),
                          "--out", str(loop / "gate"), *state.device_args, allowed=(0, 1, 2))
    state.run("models", "register", str(round2), "--pairs", str(pairs), "--result", str(evaluation / "result.json"),
              "--who", "harness demo", *reg)

    # round 2's A/B test: the champion against round 2, their real rankings, the pool's hidden relevance
    ab = loop / "ab"
    db = loop / "ab.duckdb"
    state.run("ab", "simulate", "--out", str(ab / "logs"), "--data", str(state.data), "--retriever", challenger,
              "--retriever", candidate, "--variant", "control", "--variant", "treatment", "--experiment-id", ROUND2_EXPERIMENT,
              "--users", str(ROUND2_USERS), "--days", str(ROUND2_DAYS), "--cache", str(state.cache_dir),
              "--seed", str(state.seed + 1), *state.device_args)
    state.run("ab", "ingest", "--db", str(db), "--experiment", str(ab / "logs" / "experiment.json"), str(ab / "logs" / "*.jsonl"))
    state.run("ab", "analyze", "--db", str(db), "--out", str(ab / "analysis.json"), "--seed", str(state.seed))
    ab_code = state.run("ab", "decide", "--db", str(db), "--analysis", str(ab / "analysis.json"), "--who", "harness demo",
                        "--out", str(ab / "decision.json"), allowed=(0, 1, 2))
    round2_promoted = False
    if gate_code == 0 and ab_code == 0:
        build_index("challenger")
        round2_promoted = state.run("models", "promote", "challenger", "--gate", str(loop / "gate" / "gate.json"),
                                    "--result", str(ab / "decision.json"), "--who", "harness demo", "--db", str(db),
                                    *serve, allowed=(0, 1)) == 0
    # the drill: roll the champion back to the one before it, and the serving alias to its index
    rolled_back = state.run("models", "rollback", "--reason", "demo: rollback drill at the end of the loop",
                            "--who", "harness demo", "--db", str(db), *serve, allowed=(0, 1)) == 0
    state.run("index", "status", "--db", str(serving))

    summary = loop_summary(state, registry_file, pairs, gate_code, ab_code, round1_promoted, round2_promoted, rolled_back)
    summary["serving"] = serving_summary(serving, evaluation / "result.json", served, challenger)
    from harness.files import write_json

    write_json(loop / "loop.json", summary)
    state.findings["loop"] = _finding(summary)


def loop_summary(state: Any, registry_file: Path, pairs: Path, gate_code: int, ab_code: int, round1_promoted: bool,
                 round2_promoted: bool, rolled_back: bool) -> dict[str, Any]:
    """The lineage (versions, their fingerprints and parents), the offline lift and the
    decisions of each round, and the registry's history, as one result for the report."""
    from harness import provenance
    from harness.registry import ModelRegistry

    registry = ModelRegistry(f"sqlite:///{registry_file}")
    versions = registry.versions()
    champion = registry.alias("champion")
    header = json.loads(pairs.read_text(encoding="utf-8").split("\n", 1)[0])
    card = json.loads((round2_model(state) / "training_card.json").read_text(encoding="utf-8"))
    verdicts = {0: "pass", 1: "fail", 2: "inconclusive"}
    decisions = {0: "promote", 1: "roll back", 2: "hold"}
    rounds = [
        {"round": 1, "trained_on": "qrels of the train split", "baseline": "dense", "candidate": f"dense:{state.finetuned}",
         "offline": _lift(state.out / "compare" / "compare.json", f"dense:{state.finetuned}"),
         "gate": _gate_status(state.out / "gate" / "gate.json"), "ab": _ab_decision(state.out / "ab" / "decision.json"),
         "promoted": round1_promoted},
        {"round": 2, "trained_on": f"{card['training_data']['weighting']['rows']} logged click pairs of round 1 (no qrels)",
         "baseline": f"dense:{state.finetuned}", "candidate": f"dense:{round2_model(state)}",
         "offline": _lift(state.out / "loop" / "compare" / "compare.json", f"dense:{round2_model(state)}"),
         "gate": verdicts[gate_code], "ab": decisions[ab_code], "promoted": round2_promoted},
    ]
    return {
        "kind": "loop",
        "schema_version": 1,
        "rounds": rounds,
        "versions": [{"version": v.number, "path": v.path, "fingerprint": v.fingerprint, "parent": v.parent,
                      "aliases": v.aliases} for v in versions],
        "champion_at_end": champion.number if champion else None,
        "rolled_back": rolled_back,
        "history": [{k: e.get(k) for k in ("at", "event", "version", "previous_champion", "by", "via", "reason")}
                    for e in registry.history()],
        "pairs": {"file": str(pairs), "rows": header["rows"], "leakage": {k: v for k, v in header["leakage"].items()
                                                                         if k.startswith("excluded")},
                  "debias": header["debias"]["method"], "weighting": card["training_data"]["weighting"],
                  "negatives": card["training_data"]["negatives"]},
        "registry": f"sqlite:///{registry_file}",
        "provenance": provenance.collect(seed=state.seed),
    }


def serving_summary(db: Path, result_file: Path, served: str, in_memory: str) -> dict[str, Any]:
    """The vector database at the end (its indexes, what each alias serves) and the served
    arm's held-out figures beside the in-memory arm's of the same model (exact search: equal)."""
    from dataclasses import asdict

    from harness.results import read_eval_result
    from harness.serving.store import open_store

    with open_store(db) as store:
        aliases, indexes = store.aliases(), store.indexes()
    suite = next(s for s in read_eval_result(result_file).suites if s.name.startswith("heldout"))
    return {"db": str(db), "aliases": aliases,
            "indexes": [{k: v for k, v in asdict(i).items() if k in ("collection", "state", "model", "fingerprint", "registry",
                                                                      "corpus_hash", "documents", "built_at")} for i in indexes],
            "served_arm": served, "in_memory_arm": in_memory, "suite": suite.name,
            "ndcg@10": {"served": suite.aggregates[served]["ndcg@10"], "in_memory": suite.aggregates[in_memory]["ndcg@10"]}}


def _lift(compare_file: Path, candidate: str) -> dict[str, Any] | None:
    """The candidate's held-out test nDCG@10 against the compare's baseline, with its paired interval."""
    if not compare_file.exists():
        return None
    for row in json.loads(compare_file.read_text(encoding="utf-8")).get("comparisons", []):
        if row.get("candidate") == candidate and row.get("metric") == "ndcg@10" and str(row.get("suite")).startswith("heldout"):
            return {k: row.get(k) for k in ("baseline_mean", "candidate_mean", "difference", "ci_low", "ci_high", "p_adjusted")}
    return None


def _gate_status(gate_file: Path) -> str | None:
    return json.loads(gate_file.read_text(encoding="utf-8")).get("status") if gate_file.exists() else None


def _ab_decision(decision_file: Path) -> str | None:
    return json.loads(decision_file.read_text(encoding="utf-8"))["decision"]["decision"] if decision_file.exists() else None


def _finding(summary: dict[str, Any]) -> str:
    round2 = summary["rounds"][1]
    lift = round2["offline"]
    figure = (f"nDCG@10 {lift['candidate_mean']:.3f} vs champion {lift['baseline_mean']:.3f} ({lift['difference']:+.3f}, "
              f"95% CI {lift['ci_low']:+.3f} to {lift['ci_high']:+.3f})") if lift else "no held-out comparison"
    outcome = "promoted" if round2["promoted"] else "held"
    back = f"; rollback: champion v{summary['champion_at_end']}" if summary["rolled_back"] else ""
    return (f"loop, round 2 (trained on {summary['pairs']['rows']['train']} logged pairs only): {figure}; "
            f"gate {round2['gate']}, A/B {round2['ab']}: {outcome}{back}")


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
