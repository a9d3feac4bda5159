"""Offline-online agreement: `harness ab analyze --offline RESULT.json`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_ab_analysis import exit_code

from harness.ab import offline as off
from harness.errors import HarnessError
from harness.results import EvalResult, RetrieverResult, SuiteResult

PROPS = ",".join(str(1.0 / k) for k in range(1, 11))


def eval_result(shift: float, seed: int = 0, specs=("bm25", "dense(dim=16)")) -> EvalResult:
    """An offline result where the second spec scores ``shift`` more nDCG@10 per query."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(60)]
    base = rng.uniform(0.2, 0.8, len(qids))
    cand = np.clip(base + shift + rng.normal(0, 0.05, len(qids)), 0, 1)
    per_query = {specs[0]: {"ndcg@10": dict(zip(qids, base.tolist()))}, specs[1]: {"ndcg@10": dict(zip(qids, cand.tolist()))}}
    return EvalResult(
        provenance={}, dataset={"name": "toy"}, options={"k": 10},
        retrievers=[RetrieverResult(spec=s, description={}, build_seconds=None, latency={}) for s in specs],
        suites=[SuiteResult(name="heldout:test", kind="heldout", split="test", query_ids=qids, excluded={}, per_query=per_query)],
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from harness.cli import main

    tmp = tmp_path_factory.mktemp("offline")
    main(["ab", "simulate", "--out", str(tmp / "logs"), "--users", "1500", "--days", "3", "--pre-days", "0", "--effect", "0.3",
          "--format", "parquet", "--seed", "3"])
    main(["ab", "ingest", "--db", str(tmp / "ab.duckdb"), "--experiment", str(tmp / "logs" / "experiment.json"), str(tmp / "logs" / "*.parquet")])
    return tmp


def test_analyze_reports_whether_offline_predicted_online(store, capsys):
    eval_result(0.05).write(store / "offline.json")
    out = store / "analysis.json"
    code = exit_code(["ab", "analyze", "--db", str(store / "ab.duckdb"), "--propensity", PROPS, "--out", str(out),
                      "--offline", str(store / "offline.json"), "--offline-map", "control=bm25", "--offline-map", "treatment=dense(dim=16)"])
    assert code == 0
    section = json.loads(out.read_text())["offline_online"]
    assert section["metric"] == "ndcg@10" and section["suite"] == "heldout:test" and section["online_metric"] == "ctr"
    (row,) = section["treatments"]
    assert row["treatment_spec"] == "dense(dim=16)" and row["control_spec"] == "bm25"
    assert row["offline"]["difference"] == pytest.approx(0.05, abs=0.02)
    assert row["offline"]["ci_lower"] < row["offline"]["difference"] < row["offline"]["ci_upper"] and row["offline"]["significant"]
    assert row["online"]["effect_size"] > 0 and row["online"]["significant"]
    assert row["same_direction"] is True
    assert row["ratio"] == pytest.approx(row["online"]["relative"] / row["offline"]["relative"])
    assert "offline (heldout:test ndcg@10) vs online (ctr)" in capsys.readouterr().out


def test_disagreement_and_variants_named_after_specs(store, tmp_path):
    import ibis

    from harness.ab import analysis as A
    from harness.ab import schema

    con = schema.connect(store / "ab.duckdb")
    res = A.analyze(ibis.duckdb.from_connection(con), schema.get_experiment(con, "exp-1"), A.Options(propensities=[1.0 / k for k in range(1, 11)], daily=False))
    con.close()
    worse = eval_result(-0.05, specs=("control", "treatment"))  # offline says worse; variants carry the spec names
    section = off.agreement(res, worse, resamples=999)
    (row,) = section["treatments"]
    assert row["offline"]["difference"] < 0 and row["same_direction"] is False and row["ratio"] < 0
    # the mapping recorded by `ab simulate --retriever` in experiment.json
    (tmp_path / "experiment.json").write_text(json.dumps({"retrievers": {"control": "bm25", "treatment": "dense(dim=16)"}}))
    assert off.parse_mapping([str(tmp_path / "experiment.json")]) == {"control": "bm25", "treatment": "dense(dim=16)"}
    section = off.agreement(res, eval_result(0.05), mapping=off.parse_mapping([str(tmp_path / "experiment.json")]), resamples=999)
    assert section["treatments"][0]["same_direction"] is True
    with pytest.raises(HarnessError, match="control variant"):
        off.agreement(res, eval_result(0.05), resamples=999)
    with pytest.raises(HarnessError, match="--offline-map treatment=bm42"):
        off.agreement(res, eval_result(0.05), mapping={"control": "bm25", "treatment": "bm42"}, resamples=999)
    with pytest.raises(HarnessError, match="offline metric"):
        off.agreement(res, eval_result(0.05), mapping={"control": "bm25", "treatment": "dense(dim=16)"}, metric="recall@100")


def test_offline_errors_exit_3(store, tmp_path):
    db = str(store / "ab.duckdb")
    assert exit_code(["ab", "analyze", "--db", db, "--offline-map", "control=bm25"]) == 3
    assert exit_code(["ab", "analyze", "--db", db, "--offline", str(tmp_path / "missing.json")]) == 3
    assert exit_code(["ab", "analyze", "--db", db, "--offline", str(store / "logs" / "experiment.json")]) == 3
    assert exit_code(["ab", "analyze", "--db", db, "--offline-map", "nonsense", "--offline", str(store / "offline.json")]) == 3


def test_simulate_records_the_retriever_specs():
    from harness.ab import simulate as S

    cat = S.synthetic_rankings(20, seed=0)
    cfg = S.SimConfig(experiment_id="x", n_users=10, days=1, retrievers={"control": "bm25", "treatment": "dense(dim=16)"})
    definition = S.experiment_definition(cat, cfg)
    assert definition["retrievers"] == {"control": "bm25", "treatment": "dense(dim=16)"}
    from harness.ab import schema

    schema.parse_experiment(json.loads(json.dumps(definition, default=str)))  # still a valid definition
