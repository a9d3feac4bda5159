"""The A/B part of ``harness demo``: simulate, ingest, analyse, decide, in one folder.

``harness demo`` (harness/cli/demo.py) can call ``run_demo(out)``; it returns the exit
code of the decision (0 promote, 1 roll back, 2 hold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_demo(out: str | Path, seed: int = 0, users: int = 4000, days: int = 7) -> dict[str, Any]:
    import ibis

    from harness import provenance
    from harness.ab import analysis, decide, ingest, schema
    from harness.ab import simulate as sim
    from harness.files import staged, write_json

    out = Path(out)
    logs = out / "ab-logs"
    cat = sim.synthetic_rankings(300, seed=seed)
    cfg = sim.SimConfig(n_users=users, days=days, effect=0.15, seed=seed, pre_days=7, malformed=0.001,
                        duplicates=0.002, late=0.01, guardrail_margin=0.1)
    sim.write(cat, cfg, logs, "jsonl", progress=False)
    db = out / "ab.duckdb"
    con = schema.connect(db)
    try:
        schema.register_experiment(con, schema.load_experiment_file(logs / "experiment.json"))
        reports = ingest.ingest(con, [str(logs / "*.jsonl")], progress=False)
        exp = schema.get_experiment(con, cfg.experiment_id)
        res = analysis.analyze(ibis.duckdb.from_connection(con), exp, analysis.Options(seed=seed), duckdb_con=con)
        verdict = decide.decide(res)
        decide.record(con, exp.experiment_id, verdict, {"demo": True, "db": str(db)}, who="harness demo")
    finally:
        con.close()
    # the analysis and the decision drawn from it appear together or not at all
    with staged(out / "ab-analysis.json", out / "ab-decision.json") as files:
        for kind, body, path in zip(("ab-analysis", "ab-decision"), (res, {"decision": verdict}), files, strict=True):
            write_json(path, {"schema_version": 1, "kind": kind, "provenance": provenance.collect(seed=seed)} | body, default=str)
    return {"ingest": [r.to_json() for r in reports], "decision": verdict["decision"], "exit_code": verdict["exit_code"],
            "files": [str(db), str(out / "ab-analysis.json"), str(out / "ab-decision.json")]}
