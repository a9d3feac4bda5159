"""trec_eval conformance: pytrec_eval (trec_eval's own code) reading the harness's run files
computes exactly the harness's per-query figures, on runs full of tied scores.

The harness ranks hits by score, then by doc id descending, as trec_eval does; every metric
that trec_eval also has is held against it here, query by query, to 1e-9.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytrec_eval

from harness.adapters.base import Run
from harness.data import load_dataset
from harness.data.demo import write_demo_dataset
from harness.evaluate import evaluate
from harness.metrics import per_query

# harness metric -> trec_eval measure
MEASURES = {
    "ndcg@10": "ndcg_cut_10",
    "ndcg@100": "ndcg_cut_100",
    "ndcg": "ndcg",
    "recall@10": "recall_10",
    "recall@100": "recall_100",
    "map@10": "map_cut_10",
    "map@100": "map_cut_100",
    "map": "map",
    "precision@10": "P_10",
    "precision@100": "P_100",
    "hit@10": "success_10",
    "r-precision": "Rprec",
}
# reciprocal rank within the cut: trec_eval's recip_rank on the run truncated to k
RECIPROCAL_RANK_CUTS = {"mrr@10": 10, "mrr@100": 100}
METRICS = [*MEASURES, *RECIPROCAL_RANK_CUTS, "judged@10"]
TWO_BM25 = "hybrid(bm25,bm25(k1=0.9,b=0.4))"


def read_run_file(path: Path) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """(qid -> doc -> score, qid -> doc ids in the order of the rank column)."""
    scores: dict[str, dict[str, float]] = {}
    by_rank: dict[str, list[tuple[int, str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        qid, _, doc, rank, score, _ = line.split()
        scores.setdefault(qid, {})[doc] = float(score)
        by_rank.setdefault(qid, []).append((int(rank), doc))
    return scores, {qid: [doc for _, doc in sorted(ranks)] for qid, ranks in by_rank.items()}


def trec_eval_order(hits: dict[str, float]) -> list[str]:
    """trec_eval's order (score descending, then doc id descending), written out here
    rather than taken from the harness: a stable sort by score over doc ids in reverse."""
    return sorted(sorted(hits, reverse=True), key=lambda doc: -hits[doc])


def trec_eval_figures(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Harness metric -> qid -> pytrec_eval's value (0 for a query trec_eval has no run for)."""
    evaluated = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES.values())).evaluate(run)
    figures = {ours: {qid: evaluated.get(qid, {}).get(theirs, 0.0) for qid in qrels} for ours, theirs in MEASURES.items()}
    for ours, k in RECIPROCAL_RANK_CUTS.items():
        truncated = {qid: {doc: hits[doc] for doc in trec_eval_order(hits)[:k]} for qid, hits in run.items()}
        within = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(truncated)
        figures[ours] = {qid: within.get(qid, {}).get("recip_rank", 0.0) for qid in qrels}
    return figures


def assert_equal_per_query(ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]], label: str) -> None:
    for metric, values in theirs.items():
        for qid, value in values.items():
            assert ours[metric][qid] == pytest.approx(value, abs=1e-9, rel=0), (label, metric, qid)


def tied_queries(run: dict[str, dict[str, float]]) -> int:
    return sum(len(set(hits.values())) < len(hits) for hits in run.values())


@pytest.fixture(scope="module")
def demo_eval(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):
    root = tmp_path_factory.mktemp("trec-eval")
    data = write_demo_dataset(root / "demo")
    specs = {"bm25": "bm25", "two-bm25-rrf": TWO_BM25, "bm25-dense-rrf": f"hybrid(bm25,dense:{tiny_model})"}
    result = evaluate(data, list(specs.values()), ["heldout"], out=root / "out", metrics=METRICS, cache_dir=root / "cache")
    return result, root / "out", load_dataset(data).split("test").qrels, specs


@pytest.mark.parametrize("arm", ["bm25", "two-bm25-rrf", "bm25-dense-rrf"])
def test_trec_eval_reading_the_run_files_gives_the_harness_figures(demo_eval, arm: str) -> None:
    result, out, qrels, specs = demo_eval
    spec = specs[arm]
    run, rank_column = read_run_file(out / result.retriever(spec).run_files["test"])
    assert tied_queries(run) >= 50, "the run must be full of ties for this test to mean anything"
    assert all(rank_column[qid] == trec_eval_order(hits) for qid, hits in run.items())
    ours = result.suite("heldout:test").per_query[spec]
    assert_equal_per_query(ours, trec_eval_figures(qrels, run), spec)
    judged = {qid: sum(doc in qrels[qid] for doc in rank_column.get(qid, [])[:10]) / 10 for qid in qrels}
    assert ours["judged@10"] == pytest.approx(judged, abs=1e-12)


def test_a_hand_built_run_full_of_ties() -> None:
    qrels = {
        "all-tied": {"a": 1, "c": 2, "e": 0, "gone": 1},  # "gone" is judged but never retrieved
        "tie-at-the-cut": {"d08": 1, "d03": 1},
        "graded": {"x": 3, "y": 1, "z": 0},
        "unanswered": {"a": 1},
        "rounding": {"low": 1},
    }
    cut = {f"d{i:02d}": 5.0 for i in range(12)}
    cut.update({"top": 9.0, "d10": 4.0})
    run = {
        "all-tied": {doc: 0.5 for doc in "abcdefg"},
        "tie-at-the-cut": cut,  # ten documents tie across the 10th place
        "graded": {"z": 2.0, "x": 1.0, "y": 1.0, "w": 1.0},
        "rounding": {"low": 0.12345612, "high": 0.12345614},  # one tie if written with 6 decimals
    }
    file_run = {qid: {} for qid in run}
    for line in Run("hand", run).to_trec().splitlines():
        qid, _, doc, _, score, _ = line.split()
        file_run[qid][doc] = float(score)
    assert file_run == run
    ours = per_query(qrels, run, METRICS)
    assert_equal_per_query(ours, trec_eval_figures(qrels, file_run), "hand-built")
    assert ours["mrr@10"]["rounding"] == 0.5 and ours["recall@10"]["all-tied"] == pytest.approx(2 / 3)


def test_kept_judgements_for_missing_documents_score_as_trec_eval_scores_them(tiny_dataset: Path, tmp_path: Path) -> None:
    with open(tiny_dataset / "qrels" / "test.tsv", "a") as handle:
        handle.write("q3\tgone-1\t1\nq4\tgone-2\t2\nq6\tgone-3\t0\n")
    result = evaluate(tiny_dataset, ["bm25"], ["heldout"], out=tmp_path / "out", metrics=METRICS,
                      cache_dir=tmp_path / "cache", unknown_docs="keep")
    assert result.dataset["unretrievable_judgements"] == {"test": 3}
    assert result.options["unknown_docs"] == "keep"
    qrels = load_dataset(tiny_dataset, unknown_docs="keep").split("test").qrels
    assert qrels["q3"] == {"d2": 1, "gone-1": 1}
    run, _ = read_run_file(tmp_path / "out" / result.retriever("bm25").run_files["test"])
    ours = result.suite("heldout:test").per_query["bm25"]
    assert_equal_per_query(ours, trec_eval_figures(qrels, run), "unknown docs kept")
    assert ours["recall@100"]["q3"] <= 0.5  # the missing document counts as relevant and is never found


def test_a_figure_ranx_gets_wrong_stops_the_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: ranx computes the figures, then one query's nDCG@10 is corrupted as
    happened once in a real process; trec_eval's own code, run beside it, must refuse it."""
    import ranx

    from harness.errors import HarnessError

    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}}
    run = {"q1": {"a": 0.9, "b": 0.8, "x": 0.7}, "q2": {"y": 0.5, "c": 0.4}}
    assert per_query(qrels, run, ["ndcg@10", "mrr@10"])["ndcg@10"]["q2"] == pytest.approx(0.6309297535714575)
    real_evaluate = ranx.evaluate

    def corrupted(qrels_, run_, metrics, **options):
        out = real_evaluate(qrels_, run_, metrics, **options)
        run_.scores["ndcg@10"]["q2"] = 1.0
        return out

    monkeypatch.setattr(ranx, "evaluate", corrupted)
    with pytest.raises(HarnessError, match=r"ndcg@10 of query 'q2': ranx gives 1.0, trec_eval 0.63"):
        per_query(qrels, run, ["ndcg@10", "mrr@10"])
