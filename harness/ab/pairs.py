"""Training pairs from logged traffic: the exposures and clicks of an A/B store become
(query, positive, hard negatives) rows for fine-tuning (``harness ab pairs``).

The method (docs/loop.md has it with its references and limits):

* **positives**: a document clicked with a dwell of at least the analysis's threshold
  (``analysis.Options.dwell_threshold``, ``--dwell``): the analysis counts an exposure as
  a success when its longest click reaches it, and a document is a positive of its query
  when one of its own clicks does (so an exposure with a positive is exactly a success of
  the analysis: tested).
* **hard negatives**: the documents shown above a positive and not clicked on that page
  (skip-above; Joachims 2002, "Optimizing Search Engines using Clickthrough Data";
  Joachims et al. 2005, "Accurately Interpreting Clickthrough Data as Implicit
  Feedback"). The ranking of an exposure is what the model in production served, so
  these are documents that model ranked above what the user wanted. A document that is a
  positive of the same query elsewhere in the same split is never its negative (counted).
* **position debiasing**: each positive click at position k weighs 1 / max(p_k, 1 / clip)
  with the propensities p of the analysis (given, or estimated from the logs by
  intervention harvesting over the experiment's window: ``harness.ab.propensities``), the
  inverse-propensity estimator of Joachims, Swaminathan and Schnabel (WSDM 2017,
  "Unbiased Learning-to-Rank with Biased Feedback"), with the propensity clipped from
  below as in Strehl, Langford, Li and Kakade (NeurIPS 2010, "Learning from Logged Implicit
  Exploration Data"), which bounds every weight by ``clip`` at the price of a bias towards
  the top positions. A click beyond the positions that have a propensity carries no weight
  (as in the analysis' IPW clicks) and is counted. ``debias="none"`` weighs every click 1
  (the ablation). A row's ``weight`` is the sum over its clicks.
* **leakage guards**: only exposures of ``[since, until)`` (exposure time, as in the
  analysis); a query whose normalised text (Unicode NFKC, case-folded, whitespace
  collapsed) equals a query of a held-out split (every split but ``train``) of an offline
  dataset is excluded and counted; the last ``validation_days`` of the window form the
  validation split (by time, never at random), marked on every row.

The file is JSONL: a header record first (``{"kind": "pairs-header", ...}``: store,
window, experiment, method, propensities, clip, every count, and the hash of the rows that
follow), then one row per (query, positive document, split). ``read_pairs_file`` reads it
back into the trainer's ``Pair`` rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from harness.ab import propensities
from harness.ab.analysis import Options, window
from harness.errors import HarnessError, located

HEADER_KIND = "pairs-header"
SCHEMA_VERSION = 1
SOURCE = "ab-clicks"
SPLITS = ("train", "validation")
DEBIAS_METHODS = ("ipw", "none")
DEFAULT_CLIP = 10.0
TRAINING_SPLIT = "train"  # the one offline split whose queries may be trained on
REFERENCES = {
    "ipw": "Joachims, Swaminathan, Schnabel (WSDM 2017): Unbiased Learning-to-Rank with Biased Feedback",
    "clipping": "Strehl, Langford, Li, Kakade (NeurIPS 2010): Learning from Logged Implicit Exploration Data",
    "propensities": "Agarwal, Zaitsev, Wang, Li, Najork, Joachims (WSDM 2019): Estimating Position Bias without Intrusive Interventions",
    "skip_above": "Joachims (KDD 2002): Optimizing Search Engines using Clickthrough Data; "
                  "Joachims, Granka, Pan, Hembrooke, Gay (SIGIR 2005): Accurately Interpreting Clickthrough Data as Implicit Feedback",
}


@dataclass
class PairsOptions:
    experiment_id: str | None = None  # default: the store's only experiment
    variant: str | None = None  # default: every variant's exposures
    dwell_threshold: float = Options.dwell_threshold
    since: datetime | None = None  # default: the analysis window of the experiment
    until: datetime | None = None
    validation_days: int = 0
    exclude_queries_of: list[Path] = field(default_factory=list)
    debias: str = "ipw"
    clip: float = DEFAULT_CLIP
    propensities: list[float] | None = None  # given; else the analysis's estimate
    propensity_sample: int = Options.propensity_sample


def normalise_query(text: str) -> str:
    """The form under which two query texts are the same query: NFKC, case-folded,
    whitespace runs made one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def heldout_queries(folders: list[Path]) -> tuple[set[str], list[dict[str, Any]]]:
    """The normalised texts of every query judged in a split other than ``train`` of each
    dataset, and what was read (path, dataset hash, each held-out split's hash, queries)."""
    from harness.data import load_dataset

    texts: set[str] = set()
    described = []
    for folder in folders:
        dataset = load_dataset(folder)
        splits = [s for s in dataset.available_splits() if s != TRAINING_SPLIT]
        if not splits:
            raise HarnessError(f"--exclude-queries-of {folder}: no split but {TRAINING_SPLIT!r} to hold out")
        hashes, queries = {}, 0
        for name in splits:
            split = dataset.split(name)
            hashes[name] = split.hash
            queries += len(split.qrels)
            texts.update(normalise_query(dataset.queries[qid].text) for qid in split.qrels)
        described.append({"path": str(folder), "dataset_hash": dataset.hash, "splits": hashes, "queries": queries})
    return texts, described


# the exposures of the window (exposure time, as in the analysis)
EXPOSURES_CTE = """
WITH e AS (
    SELECT event_id, ts, query_text, doc_ids FROM exposures
    WHERE experiment_id = $experiment AND ts >= $since AND ts < $until
      AND ($variant IS NULL OR variant = $variant)
)"""
COUNTS_SQL = EXPOSURES_CTE + """
SELECT count(*), (SELECT count(*) FROM interactions i SEMI JOIN e ON i.exposure_id = e.event_id) FROM e
"""
# their clicks reduced per exposure: the positions clicked, those clicked with a successful
# dwell, and the last position any interaction names (beyond the ranking shown, the
# analysis voids the exposure's clicks)
EVIDENCE_SQL = EXPOSURES_CTE + """,
per AS (
    SELECT i.exposure_id,
           max(i.position) AS last_position,
           list(DISTINCT i.position) FILTER (WHERE i.kind = 'click') AS clicked,
           list(DISTINCT i.position) FILTER (WHERE i.kind = 'click' AND i.dwell_s >= $dwell) AS succeeded
    FROM interactions i SEMI JOIN e ON i.exposure_id = e.event_id
    WHERE i.position >= 1
    GROUP BY i.exposure_id
)
SELECT e.ts, e.query_text, e.doc_ids, per.clicked, per.succeeded, per.last_position
FROM e JOIN per ON per.exposure_id = e.event_id
WHERE len(per.succeeded) > 0
ORDER BY e.event_id
"""


@dataclass
class _Row:
    texts: Counter = field(default_factory=Counter)
    successes: int = 0
    weight: float = 0.0
    positions: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    first_seen: datetime | None = None
    last_seen: datetime | None = None


def build_pairs(con, opts: PairsOptions) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header record and the rows of a pairs file from the store ``con``."""
    from harness.ab import schema

    if opts.debias not in DEBIAS_METHODS:
        raise HarnessError(f"--debias {opts.debias!r}: expected one of {', '.join(DEBIAS_METHODS)}")
    if not opts.clip >= 1:  # every weight 1/p is >= 1; also NaN
        raise HarnessError(f"--clip {opts.clip}: the largest weight must be at least 1")
    if opts.validation_days < 0:
        raise HarnessError("--validation-days must be 0 or more")
    heldout, heldout_sources = heldout_queries(opts.exclude_queries_of)  # a bad folder fails before the logs are read
    exp = schema.get_experiment(con, opts.experiment_id or schema.only_experiment(con))
    if opts.variant is not None and opts.variant not in [*exp.variants, "interleaved"]:
        raise HarnessError(f"variant {opts.variant!r} is not one of experiment {exp.experiment_id!r} ({', '.join(exp.variants)})")
    _, start, end = window(exp, Options())  # the analysis's window: its propensities
    since, until = opts.since or start, opts.until or end
    if until <= since:
        raise HarnessError(f"--since {since} is not before --until {until}: an empty window")
    cutoff = until - timedelta(days=opts.validation_days) if opts.validation_days else None
    if cutoff is not None and cutoff <= since:
        raise HarnessError(f"--validation-days {opts.validation_days} covers the whole window [{since}, {until}): nothing left to train on")

    params = {"experiment": exp.experiment_id, "since": since, "until": until, "variant": opts.variant}
    where = f"experiment {exp.experiment_id!r}" + (f", variant {opts.variant!r}" if opts.variant else "") + f", [{since}, {until})"
    n_exposures, n_interactions = con.execute(COUNTS_SQL, params).fetchall()[0]
    if not n_exposures:
        raise HarnessError(f"no exposures logged for {where}")
    if not n_interactions:
        raise HarnessError(f"the logs hold no interactions for {where}: no click to learn from")
    props = propensities.choose(opts.propensities, con, exp.experiment_id, start, end, opts.propensity_sample)
    counts = Counter(exposures=n_exposures, interactions=n_interactions)
    evidence = con.execute(EVIDENCE_SQL, params | {"dwell": float(opts.dwell_threshold)}).fetchall()
    rows = _records(_collect(evidence, heldout, cutoff, props["values"], opts, counts), counts)
    by_split = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    if not by_split["train"]:
        raise HarnessError(f"no usable training pair for {where}: {_describe(counts)}")
    queries = {s: {r["query_id"] for r in by_split[s]} for s in SPLITS}
    weights = [r["weight"] for r in by_split["train"]]
    ipw = opts.debias == "ipw"
    header = {
        "kind": HEADER_KIND,
        "schema_version": SCHEMA_VERSION,
        "experiment": exp.to_json(),
        "variant": opts.variant,
        "store": store_identity(con),
        "window": {"since": since.isoformat(), "until": until.isoformat(), "on": "exposure time",
                   "validation_days": opts.validation_days,
                   "validation_from": cutoff.isoformat() if cutoff is not None else None},
        "positives": {"rule": "a click with dwell >= the threshold (the analysis's success)",
                      "dwell_threshold": opts.dwell_threshold},
        "negatives": {"rule": "shown above a positive on the same page and not clicked (skip-above), "
                              "never a positive of the same query in the same split",
                      "reference": REFERENCES["skip_above"]},
        "debias": {
            "method": opts.debias,
            "weight": "min(1 / p_position, clip) per positive click" if ipw else "1 per positive click",
            "propensities": props["values"], "propensity_sources": props["sources"],
            "propensity_window": {"start": start.isoformat(), "end": end.isoformat()},
            "clip": opts.clip if ipw else None,
            "propensity_floor": 1.0 / opts.clip if ipw else None,
            "references": [REFERENCES["ipw"], REFERENCES["clipping"], REFERENCES["propensities"]],
            "train_weights": {"total": sum(weights), "min": min(weights), "max": max(weights), "mean": sum(weights) / len(weights)},
        },
        "leakage": {"exclude_queries_of": heldout_sources, "normalisation": "NFKC, case-folded, whitespace collapsed",
                    "excluded_queries": counts["heldout_queries"], "excluded_exposures": counts["heldout_exposures"],
                    "excluded_successes": counts["heldout_successes"]},
        "counts": dict(sorted(counts.items())),
        "rows": {"train": len(by_split["train"]), "validation": len(by_split["validation"]),
                 "train_queries": len(queries["train"]), "validation_queries": len(queries["validation"]),
                 "validation_queries_also_in_train": len(queries["train"] & queries["validation"])},
        "rows_sha256": rows_hash(rows),
    }
    return header, rows


def _collect(evidence, heldout: set[str], cutoff: datetime | None, values: list[float], opts: PairsOptions,
             counts: Counter) -> dict[tuple[str, str, str], _Row]:
    """(split, normalised query, positive document) -> what its positive clicks say, from the
    exposures with a positive click; every exposure or click left out is counted."""
    rows: dict[tuple[str, str, str], _Row] = {}
    excluded: set[str] = set()
    for ts, text, doc_ids, clicked, succeeded, last_position in evidence:
        counts["exposures_with_a_positive"] += 1
        if last_position > len(doc_ids):
            counts["voided_exposures"] += 1  # an interaction beyond the ranking shown: the analysis voids it too
            continue
        key = normalise_query(text or "")
        if not key:
            counts["exposures_without_query_text"] += 1
            continue
        if key in heldout:
            excluded.add(key)
            counts["heldout_exposures"] += 1
            counts["heldout_successes"] += len(succeeded)
            continue
        split = "validation" if cutoff is not None and ts >= cutoff else "train"
        clicked_positions = set(clicked)
        for k in sorted(succeeded):
            counts["successes"] += 1
            if k > len(values):
                counts["successes_without_propensity"] += 1
                continue
            raw = 1.0 / values[k - 1]
            if opts.debias == "ipw" and raw > opts.clip:
                counts["successes_clipped"] += 1
            row = rows.setdefault((split, key, doc_ids[k - 1]), _Row())
            row.texts[text] += 1
            row.successes += 1
            row.weight += min(raw, opts.clip) if opts.debias == "ipw" else 1.0
            row.positions[k] += 1
            row.skipped.update(doc_ids[j - 1] for j in range(1, k) if j not in clicked_positions)
            row.first_seen = ts if row.first_seen is None else min(row.first_seen, ts)
            row.last_seen = ts if row.last_seen is None else max(row.last_seen, ts)
    counts["heldout_queries"] = len(excluded)
    return rows


def _records(rows: dict[tuple[str, str, str], _Row], counts: Counter) -> list[dict[str, Any]]:
    """The file's rows, training first, then by query and document; a document skipped
    above a positive is a negative unless it is a positive of the same query in the split."""
    positives: dict[tuple[str, str], set[str]] = {}
    for split, key, doc in rows:
        positives.setdefault((split, key), set()).add(doc)
    out = []
    for (split, key, doc), row in sorted(rows.items(), key=lambda item: (SPLITS.index(item[0][0]), item[0][1:])):
        negatives = [(d, n) for d, n in row.skipped.items() if d not in positives[(split, key)]]
        counts["negatives"] += len(negatives)  # distinct documents per row, as the rows hold them
        counts["negatives_dropped_as_positives"] += len(row.skipped) - len(negatives)
        negatives.sort(key=lambda item: (-item[1], item[0]))  # the most often skipped first
        out.append({
            "query_id": "ab-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12],
            "doc_id": doc,
            "query": min(row.texts, key=lambda t: (-row.texts[t], t)),  # the commonest spelling
            "grade": 1,
            "source": SOURCE,
            "split": split,
            "weight": row.weight,
            "successes": row.successes,
            "positions": {str(k): n for k, n in sorted(row.positions.items())},
            "negative_ids": [d for d, _ in negatives],
            "negative_skips": [n for _, n in negatives],
            "first_seen": row.first_seen.isoformat(),
            "last_seen": row.last_seen.isoformat(),
        })
    return out


def _describe(counts: Counter) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in sorted(counts.items()) if n) or "nothing logged"


def store_identity(con) -> dict[str, Any]:
    """What identifies the store's content: a hash of the files ingested into it (their
    content hashes, in order of hash) with its row counts."""
    files = con.execute("SELECT sha256, rows_ingested FROM ingested_files ORDER BY sha256").fetchall()
    exposures, interactions = con.execute("SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM interactions)").fetchall()[0]
    digest = hashlib.sha256()
    for sha, n in files:
        digest.update(f"{sha} {n}\n".encode())
    digest.update(f"exposures={exposures};interactions={interactions}".encode())
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    return {"db": path, "sha256": digest.hexdigest(), "ingested_files": len(files), "exposures": exposures,
            "interactions": interactions}


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def rows_hash(rows: list[dict[str, Any]]) -> str:
    """SHA-256 of the rows' lines as the file holds them (one JSON object and a newline each)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update((_line(row) + "\n").encode("utf-8"))
    return digest.hexdigest()


def write_pairs_file(path: str | Path, header: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write the header and the rows; the file appears whole or not at all
    (``harness.files.staged``: written aside, then renamed into place)."""
    from harness.files import staged

    target = Path(path)
    with staged(target) as (partial,):
        with open(partial, "w", encoding="utf-8") as handle:
            for record in [header, *rows]:
                handle.write(_line(record) + "\n")
    return target


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class LoggedPair:
    """One row of a pairs file: the trainer's ``Pair`` (the positive's text from the corpus),
    its split, its weight and its hard negatives (texts from the corpus, most skipped first).
    ``query``, ``positive`` and ``negatives`` are what ``harness.train.bi_encoder.negative_rows``
    reads."""

    pair: Any  # harness.train.pairs.Pair
    split: str
    weight: float
    successes: int
    negative_ids: tuple[str, ...]
    negatives: tuple[str, ...]

    @property
    def query(self) -> str:
        return self.pair.query

    @property
    def positive(self) -> str:
        return self.pair.positive


@dataclass
class PairsFile:
    header: dict[str, Any]
    rows: list[LoggedPair]
    # documents the logs name and the corpus lacks (removed since, or a simulator's
    # placeholders): rows whose positive it lacks and negatives it lacks, left out and counted
    left_out: dict[str, int] = field(default_factory=lambda: {"rows_with_unknown_positive": 0, "unknown_negatives": 0})

    def split(self, name: str) -> list[LoggedPair]:
        return [r for r in self.rows if r.split == name]


def read_pairs_file(path: str | Path, dataset) -> PairsFile:
    """A pairs file written by ``harness ab pairs``, checked line by line against its header
    (kind, schema version, the hash of its rows) and against ``dataset``'s corpus, which
    gives the texts; errors name the file and line. A document the corpus lacks leaves its
    row (a positive) or its place among the negatives, counted in ``left_out``; a file none
    of whose positives the corpus holds (the wrong dataset) is an error."""
    from harness.train.pairs import Pair

    source = Path(path)
    if not source.is_file():
        raise HarnessError(f"{source}: pairs file does not exist")
    with open(source, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    records = []
    for lineno, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise located(source, lineno, f"bad JSON: {exc.msg}") from None
    header = records[0] if records else None
    if not isinstance(header, dict) or header.get("kind") != HEADER_KIND:
        raise located(source, 1, f"not a pairs file of `harness ab pairs` (its first line is no {HEADER_KIND!r} record)")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise located(source, 1, f"pairs file schema version {header.get('schema_version')!r}, this harness reads {SCHEMA_VERSION}")
    if rows_hash(records[1:]) != header.get("rows_sha256"):
        raise located(source, 1, "the rows do not match the header's rows_sha256 (the file was changed after it was written)")
    pairs_file = PairsFile(header, [])
    first_unknown = None
    for lineno, record in enumerate(records[1:], 2):
        if not isinstance(record, dict):
            raise located(source, lineno, "expected a JSON object")
        try:
            doc_id, query_id, query, split = (str(record[k]) for k in ("doc_id", "query_id", "query", "split"))
            weight, successes, negative_ids = float(record["weight"]), int(record["successes"]), list(record["negative_ids"])
        except (KeyError, TypeError, ValueError) as exc:
            raise located(source, lineno, f"a row needs doc_id, query_id, query, split, weight, successes and negative_ids ({exc})") from None
        if split not in SPLITS:
            raise located(source, lineno, f"split {split!r} is not one of {', '.join(SPLITS)}")
        if not (math.isfinite(weight) and weight > 0):
            raise located(source, lineno, f"weight {weight} is not a positive number")
        if doc_id not in dataset.corpus:
            pairs_file.left_out["rows_with_unknown_positive"] += 1
            first_unknown = first_unknown or (lineno, doc_id)
            continue
        known = tuple(d for d in negative_ids if d in dataset.corpus)
        pairs_file.left_out["unknown_negatives"] += len(negative_ids) - len(known)
        pair = Pair(query_id, doc_id, query, dataset.corpus[doc_id].content, int(record.get("grade", 1)), SOURCE)
        pairs_file.rows.append(LoggedPair(pair, split, weight, successes, known, tuple(dataset.corpus[d].content for d in known)))
    if not pairs_file.rows:
        lineno, doc_id = first_unknown or (1, None)
        raise located(source, lineno, f"no row whose positive is a document of {dataset.path}/corpus (the first: {doc_id!r}): "
                                      "are the logs of another corpus?")
    return pairs_file
