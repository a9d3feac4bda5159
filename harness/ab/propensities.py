"""Position propensities for the inverse-propensity-weighted click metric: given,
estimated from the store's logs, or 1/k where neither is possible."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from harness.errors import HarnessError

DEFAULT_K = 10


def choose(given: list[float] | None, con, experiment_id: str, start: datetime, end: datetime, sample: int) -> dict[str, Any]:
    """The propensities of an analysis, with the source of each: the ``given`` ones, else
    estimates from a DuckDB store ``con`` over [start, end), else 1/k."""
    if given:
        values = [float(p) for p in given]
        if any(not (0 < p <= 1) for p in values):
            raise HarnessError("--propensity values must be in (0, 1]")
        return {"values": values, "sources": ["given"] * len(values)}
    if con is not None:
        return estimate(con, experiment_id, start, end, sample)
    return {"values": [1.0 / p for p in range(1, DEFAULT_K + 1)], "sources": ["default 1/k"] * DEFAULT_K}


def estimate(con, experiment_id: str, start: datetime, end: datetime, sample: int, k: int = DEFAULT_K) -> dict[str, Any]:
    """Relative examination propensity of each position, estimated from the logs by
    intervention harvesting (Agarwal, Zaitsev, Wang, Li, Najork and Joachims, WSDM 2019,
    "Estimating Position Bias without Intrusive Interventions"): the same document for
    the same query shown at position 1 by some exposures and at position k by others
    (different variants rank it differently) gives p_k / p_1 as the ratio of its click
    rates; pairs are weighted by the harmonic mean of their impressions. Positions with
    too little overlap fall back to the ratio of raw click rates (biased by relevance,
    reported as such). The exposures of [start, end) are read. DuckDB only: on other engines
    pass the propensities."""
    n_exposures = con.execute(
        "SELECT count(*) FROM exposures WHERE experiment_id = ? AND ts >= ? AND ts < ?",
        [experiment_id, start, end],
    ).fetchall()[0][0]
    modulus = max(1, math.ceil(n_exposures / max(sample, 1)))  # at most about ``sample`` exposures are read
    rows = con.execute(
        """
        WITH e AS (
            SELECT event_id, query_id, doc_ids FROM exposures
            WHERE experiment_id = ? AND ts >= ? AND ts < ? AND query_id IS NOT NULL
              AND hash(event_id) % ? = 0
        ),
        imp AS (
            SELECT event_id, query_id, unnest(doc_ids[1:?]) AS doc_id, generate_subscripts(doc_ids[1:?], 1) AS pos FROM e
        ),
        clk AS (
            SELECT DISTINCT i.exposure_id AS event_id, i.position AS pos FROM interactions i
            WHERE i.kind = 'click' AND i.exposure_id IN (SELECT event_id FROM e)
        ),
        agg AS (
            SELECT query_id, doc_id, pos, count(*) AS n, count(clk.event_id) AS c
            FROM imp LEFT JOIN clk USING (event_id, pos) GROUP BY ALL
        ),
        harvested AS (
            SELECT b.pos, sum(a.n * b.n / (a.n + b.n)) AS support,
                   sum(a.n * b.n / (a.n + b.n) * b.c / b.n) / nullif(sum(a.n * b.n / (a.n + b.n) * a.c / a.n), 0) AS ratio
            FROM agg a JOIN agg b ON a.query_id = b.query_id AND a.doc_id = b.doc_id AND a.pos = 1 AND b.pos > 1
            GROUP BY b.pos
        ),
        naive AS (
            SELECT pos, sum(c) / sum(n) AS ctr FROM agg GROUP BY pos
        )
        SELECT n.pos, h.ratio, h.support, n.ctr / nullif((SELECT ctr FROM naive WHERE pos = 1), 0)
        FROM naive n LEFT JOIN harvested h USING (pos) ORDER BY n.pos
        """,
        [experiment_id, start, end, modulus, k, k],
    ).fetchall()
    values, sources = [], []
    for pos, ratio, support, naive in rows:
        if pos == 1:
            values.append(1.0)
            sources.append("reference")
        elif ratio is not None and support is not None and support >= 30 and ratio > 0:
            values.append(float(min(max(ratio, 1e-3), 1.0)))
            sources.append("harvested")
        elif naive is not None and naive > 0:
            values.append(float(min(max(naive, 1e-3), 1.0)))
            sources.append("naive")
        else:
            values.append(values[-1] if values else 1.0)
            sources.append("carried")
    if not values:
        values, sources = [1.0 / p for p in range(1, k + 1)], ["default"] * k
    return {"values": values, "sources": sources, "sampled_every": modulus}
