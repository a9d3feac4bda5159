"""Retrieval metrics per query, computed by ranx.

Names follow ranx (``ndcg@10``, ``recall@100``, ``mrr@10``, ``map@100``,
``precision@10``), with ``hit@k`` as the harness's name for ranx's ``hit_rate@k`` and
``judged@k``, which ranx does not offer.

Every metric reads each query's hits in the one ranking order of
``harness.adapters.base.ranked`` (score descending, then doc id descending: trec_eval's),
so the figures equal trec_eval's on the run files the harness writes
(``tests/test_trec_eval.py``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

from harness.adapters.base import rank_scores, ranked
from harness.errors import HarnessError

# ranx's parallel numba kernels must never run from two threads at once: numba's default
# (workqueue) threading layer aborts the process when they do. Every use of ranx (metrics
# here, fusion in adapters.hybrid, the background warm-up) holds this lock.
RANX_LOCK = threading.Lock()

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "precision@10", "hit@10", "judged@10")
_RANX_NAMES = {"hit": "hit_rate"}
# The metrics offered and the values each can take per query. All are bounded: nDCG divides a
# gain by the ideal ranking's; recall, precision, hit, judged, R-precision and F1 are shares
# of documents; MRR is a reciprocal rank; MAP a mean of precisions.
RANGES: dict[str, tuple[float, float]] = {
    name: (0.0, 1.0) for name in ("ndcg", "ndcg_burges", "recall", "mrr", "map", "precision", "hit", "judged", "r-precision", "f1")
}
# ranx metrics the harness refuses, and why
_REFUSED = {
    "bpref": "ranx's bpref is NaN for a query without a judged non-relevant document (most BEIR qrels), "
    "where trec_eval's is defined",
}
# ranx's numba kernels are compiled for the types they are called with, and ranx turns each
# query's doc ids into a numpy array of fixed-width strings: ids of another length are other
# kernels, compiled again in every new process (the demo's 8-character ids cost its first
# validation 40 s on a fresh clone). ranx is given stand-ins of one width instead, whose kernels
# `make setup` compiles once (harness.warmup) for every dataset.
RANX_ID_WIDTH = 12
# floating-point slack of the range check: nDCG of an ideal ranking is a ratio of two sums
RANGE_SLACK = 1e-9
_PATTERN = re.compile(r"^(?P<name>[a-z_\-]+)(@(?P<k>\d+))?$")


def validate_metric(name: str) -> str:
    match = _PATTERN.match(name.strip().lower())
    if match and match.group("name") in _REFUSED:
        raise HarnessError(f"metric {name!r} is not offered: {_REFUSED[match.group('name')]}")
    if not match or match.group("name") not in RANGES:
        raise HarnessError(f"unknown metric {name!r} (known: {', '.join(sorted(RANGES))}, with @k where it applies)")
    if match.group("name") == "judged" and not match.group("k"):
        raise HarnessError("judged needs a cut-off, e.g. judged@10")
    if match.group("k") is not None and int(match.group("k")) < 1:
        raise HarnessError(f"metric {name!r}: the cut-off k of @k must be at least 1, e.g. {match.group('name')}@10")
    return name.strip().lower()


def max_depth(metrics: list[str]) -> int:
    """The ranking depth the metrics need (at least 100, so recall@100 and MAP are honest)."""
    cutoffs = [int(m.split("@")[1]) for m in metrics if "@" in m]
    return max([100, *cutoffs])


def per_query(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], metrics: list[str]
) -> dict[str, dict[str, float]]:
    """Metric -> query id -> score, for every query of ``qrels`` (missing runs score 0)."""
    import warnings

    from ranx import Qrels, Run, evaluate

    warnings.filterwarnings("ignore", module="ranx")  # numba type-safety notes about ranx's own casts

    if not qrels:
        raise HarnessError("no judged queries to evaluate")
    results: dict[str, dict[str, float]] = {}
    ranx_metrics = [m for m in metrics if not m.startswith("judged@")]
    if ranx_metrics:
        renamed = [_to_ranx(m) for m in ranx_metrics]
        # ranx orders tied scores its own way: it gets scores that give the one order and cannot
        # tie (every metric here depends on the order only); ranx refuses empty result lists, so an
        # unanswered query gets a placeholder that is never relevant
        ordered = {qid: (rank_scores(run[qid]) if run.get(qid) else {"\0no-result": 0.0}) for qid in qrels}
        ids = ranx_doc_ids(qrels, ordered)
        with RANX_LOCK:
            ranx_qrels = Qrels({qid: {ids[doc]: grade for doc, grade in rels.items()} for qid, rels in qrels.items()})
            ranx_run = Run({qid: {ids[doc]: score for doc, score in hits.items()} for qid, hits in ordered.items()})
            evaluate(ranx_qrels, ranx_run, renamed, make_comparable=True)
        for metric, ranx_name in zip(ranx_metrics, renamed):
            scores = ranx_run.scores[ranx_name]
            results[metric] = {qid: float(scores[qid]) for qid in qrels}
        _cross_check(qrels, run, results)
    for metric in metrics:
        if metric.startswith("judged@"):
            results[metric] = judged_at_k(qrels, run, int(metric.split("@")[1]))
    for metric, scores in results.items():
        _check_range(metric, scores)
    return {metric: results[metric] for metric in metrics}


# harness metric -> trec_eval's measure, for the metrics trec_eval also computes
_TREC_EVAL_MEASURES = {"ndcg": "ndcg_cut_{k}", "recall": "recall_{k}", "map": "map_cut_{k}", "precision": "P_{k}",
                       "hit": "success_{k}"}
CROSS_CHECK_TOLERANCE = 1e-6


def _cross_check(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                 results: dict[str, dict[str, float]]) -> None:
    """Every figure ranx computed that trec_eval also computes, held against trec_eval's own
    code (pytrec_eval, which mteb installs) on the same ranking, query by query.

    Why a second computation: once, in one process, ranx returned wrong figures for run files
    that were byte for byte those of a correct run (docs/statistics.md, "Metric
    cross-check"); a wrong figure must stop the command, never reach a comparison or a gate.
    Measures at cut-offs trec_eval does not offer (its ``ndcg_cut``, ``P`` and ``recall``
    take any ``k``, ``success`` too) are all covered; ``mrr`` and ``judged`` have no
    trec_eval counterpart at a cut-off and are checked by tests/test_trec_eval.py instead.
    """
    import pytrec_eval

    measures: dict[str, str] = {}
    for metric in results:
        name, _, k = metric.partition("@")
        if name in _TREC_EVAL_MEASURES and k:
            measures[metric] = _TREC_EVAL_MEASURES[name].format(k=k)
    if not measures:
        return
    # the one order as scores that cannot tie, so trec_eval ranks exactly as ranx was given
    answered = {qid: rank_scores(run[qid]) for qid in qrels if run.get(qid)}
    judged = {qid: {doc: int(grade) for doc, grade in rels.items()} for qid, rels in qrels.items()}
    theirs = pytrec_eval.RelevanceEvaluator(judged, set(measures.values())).evaluate(answered)
    for metric, measure in measures.items():
        for qid, ours in results[metric].items():
            reference = theirs.get(qid, {}).get(measure, 0.0)
            if abs(ours - reference) > CROSS_CHECK_TOLERANCE:
                raise HarnessError(
                    f"{metric} of query {qid!r}: ranx gives {ours!r}, trec_eval {reference!r} on the same ranking: "
                    "an internal error, no figure is reported (please report it)"
                )


def ranx_doc_ids(*mappings: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """Doc id -> its stand-in for ranx (``RANX_ID_WIDTH`` digits), for every doc id of the
    mappings (query id -> doc id -> anything)."""
    ids = dict.fromkeys(doc for mapping in mappings for hits in mapping.values() for doc in hits)
    return {doc: f"{index:0{RANX_ID_WIDTH}d}" for index, doc in enumerate(ids)}


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` (a name such as ``ndcg@10``) can take per query; an unknown or
    refused metric is an error (:func:`validate_metric`)."""
    return RANGES[validate_metric(metric).partition("@")[0]]


def _check_range(metric: str, scores: dict[str, float]) -> None:
    """A value outside the metric's range is a bug, never a figure."""
    low, high = metric_range(metric)
    for qid, value in scores.items():
        if not (low - RANGE_SLACK <= value <= high + RANGE_SLACK):
            raise HarnessError(f"{metric} of query {qid!r} is {value!r}, outside its range [{low:g}, {high:g}]: an internal error, please report it")


RECALL_CURVE_CUTOFFS = (1, 3, 5, 10, 20, 50, 100)


def recall_curve(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean recall@k for the cut-offs of a recall curve (k as a string key, for JSON)."""
    import statistics

    scores = per_query(qrels, run, [f"recall@{k}" for k in RECALL_CURVE_CUTOFFS])
    return {str(k): statistics.fmean(scores[f"recall@{k}"].values()) for k in RECALL_CURVE_CUTOFFS}


def mean_intervals(per_metric: dict[str, dict[str, float]], confidence: float = 0.95, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile-bootstrap interval of each metric's mean over queries (scipy)."""
    import numpy as np
    from scipy.stats import bootstrap

    intervals = {}
    for metric, scores in per_metric.items():
        values = np.fromiter(scores.values(), dtype=float)
        if len(values) < 2 or np.all(values == values[0]):
            intervals[metric] = [float(values.mean()), float(values.mean())]
            continue
        ci = bootstrap(
            (values,), np.mean, confidence_level=confidence, n_resamples=2000, method="percentile",
            random_state=np.random.default_rng(seed),
        ).confidence_interval
        intervals[metric] = [float(ci.low), float(ci.high)]
    return intervals


def judged_at_k(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], k: int) -> dict[str, float]:
    """Share of the top k that carry any judgement (graded 0 included).

    Hand-written because ranx has no such metric; it follows the "judged@k" of Thakur et
    al., BEIR (2021), section 5, used to expose unjudged holes in a ranking.
    """
    scores = {}
    for qid, rels in qrels.items():
        top = ranked(run.get(qid, {}))[:k]
        scores[qid] = sum(doc in rels for doc in top) / k
    return scores


def _to_ranx(metric: str) -> str:
    name, _, cut = metric.partition("@")
    name = _RANX_NAMES.get(name, name)
    return f"{name}@{cut}" if cut else name
