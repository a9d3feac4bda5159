"""Realistic search logs for demos, tests and calibration.

The core takes rankings (variant -> query id -> ranked doc ids) and graded relevance
(query id -> doc id -> grade) and serves them to simulated users:

* users of different activity (queries per day ~ Poisson with a Gamma-distributed rate)
  and of different click propensity (three user types);
* a position-based click model (Richardson et al. 2007; Craswell et al. 2008):
  P(click at rank k) = examination(k) * attractiveness(grade), examination = 1/k**eta;
* dwell times (log-normal, long on relevant documents) and conversions;
* a configurable true effect (a relative lift of the attractiveness in every non-control
  variant) and an optional novelty effect that fades (exp(-day / novelty_days));
* optional faults: sample-ratio mismatch (a share of the treatment users' logs lost),
  duplicated events, malformed lines, late events (interactions delivered in a later
  file);
* a pre-period (exposures before the start, all served the control ranking) for CUPED;
* interleaved logs (team-draft interleaving of the first two variants).

With no dataset, ``synthetic_rankings`` makes a catalogue of queries with graded
documents, served identically by every variant (an A/A test unless ``effect`` is set).
Generation is vectorised with numpy and Arrow and runs in chunks: a million exposures
take a few seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

ATTRACTIVENESS = {0: 0.04, 1: 0.35, 2: 0.6, 3: 0.8}
USER_TYPES = (0.6, 1.0, 1.5)  # click-propensity multipliers
USER_TYPE_P = (0.3, 0.4, 0.3)


@dataclass
class SimConfig:
    experiment_id: str = "exp-1"
    variants: list[str] = field(default_factory=lambda: ["control", "treatment"])
    traffic_split: list[float] | None = None
    n_users: int = 10_000
    days: int = 14
    start: str = "2025-01-06T00:00:00"
    queries_per_user_day: float = 0.5
    activity_shape: float = 0.8  # Gamma shape of the users' query rates: lower = more skewed
    k: int = 10
    eta: float = 1.0  # examination(k) = 1 / k**eta
    effect: float = 0.0  # relative lift of the attractiveness in non-control variants
    novelty: float = 0.0  # extra relative lift on day 0 in non-control variants ...
    novelty_days: float = 3.0  # ... fading as exp(-day / novelty_days)
    pre_days: int = 0
    srm: float = 0.0  # share of the treatment users whose exposures are lost
    duplicates: float = 0.0  # share of events written twice
    malformed: float = 0.0  # share of lines corrupted (JSONL and CSV)
    late: float = 0.0  # share of interactions delivered in a later file
    interleave: bool = False
    seed: int = 0
    chunk: int = 1_000_000
    primary_metric: str = "ctr"
    guardrails: list[str] = field(default_factory=lambda: ["abandonment", "queries_per_user"])
    guardrail_margin: float = 0.05
    retrievers: dict[str, str] | None = None  # variant -> retriever spec served (recorded in experiment.json)

    def check(self) -> None:
        if len(self.variants) < 2 or len(set(self.variants)) != len(self.variants):
            raise HarnessError("simulate needs at least two distinct variants")
        for name in ("srm", "duplicates", "malformed", "late"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise HarnessError(f"--{name} must be a share in [0, 1), got {value}")
        if self.n_users < 1 or self.days < 1:
            raise HarnessError("--users and --days must be positive")
        if self.effect <= -1:
            raise HarnessError("--effect must be > -1 (a relative lift)")

    @property
    def start_dt(self) -> datetime:
        return datetime.fromisoformat(self.start.replace("Z", "+00:00")).replace(tzinfo=None)

    def split(self) -> list[float]:
        split = self.traffic_split or [1.0] * len(self.variants)
        total = sum(split)
        return [s / total for s in split]


@dataclass
class Catalogue:
    """What the variants serve: per variant and query, the ranked doc ids and grades."""

    query_ids: list[str]
    query_texts: list[str]
    query_weights: np.ndarray  # popularity, sums to 1
    rankings: dict[str, list[list[str]]]  # variant -> per query -> doc ids (length k)
    grades: dict[str, np.ndarray]  # variant -> (n_queries, k) relevance grades


def synthetic_rankings(n_queries: int = 1000, k: int = 10, seed: int = 0, variants: list[str] | None = None) -> Catalogue:
    """A catalogue with no dataset: each query has a few relevant documents ranked
    imperfectly; every variant serves the same lists."""
    rng = np.random.default_rng(seed)
    variants = variants or ["control", "treatment"]
    grades = np.zeros((n_queries, k), dtype=np.int8)
    for q in range(n_queries):
        n_rel = rng.integers(1, 5)
        positions = np.sort(rng.choice(k, size=n_rel, replace=False, p=_decay(k)))
        grades[q, positions] = rng.integers(1, 4, size=n_rel)
    docs = [[f"d{q}-{i}" for i in range(k)] for q in range(n_queries)]
    qids = [f"q{q}" for q in range(n_queries)]
    return Catalogue(
        query_ids=qids,
        query_texts=[f"query {q}" for q in range(n_queries)],
        query_weights=_zipf(n_queries),
        rankings={v: docs for v in variants},
        grades={v: grades for v in variants},
    )


def catalogue_from_runs(
    runs: Mapping[str, Mapping[str, list[str]]],
    qrels: Mapping[str, Mapping[str, int]],
    query_texts: Mapping[str, str] | None = None,
    k: int = 10,
) -> Catalogue:
    """Rankings of real retrievers (variant -> qid -> ranked doc ids), with the qrels as
    the true relevance. Only queries judged and answered by every variant are served."""
    variants = list(runs)
    qids = [q for q in qrels if all(runs[v].get(q) for v in variants)]
    if not qids:
        raise HarnessError("no judged query is answered by every variant")
    rankings: dict[str, list[list[str]]] = {}
    grades: dict[str, np.ndarray] = {}
    for v in variants:
        lists = []
        g = np.zeros((len(qids), k), dtype=np.int8)
        for i, q in enumerate(qids):
            ranked = list(runs[v][q])[:k]
            while len(ranked) < k:  # pad short lists with placeholders that are never relevant
                ranked.append(f"__pad{len(ranked)}")
            lists.append(ranked)
            rel = qrels[q]
            g[i] = [min(3, max(0, int(rel.get(d, 0)))) for d in ranked]
        rankings[v] = lists
        grades[v] = g
    texts = [(query_texts or {}).get(q, q) for q in qids]
    return Catalogue(qids, texts, _zipf(len(qids)), rankings, grades)


def served_queries(dataset: Any, split: str, seed: int = 0) -> tuple[dict[str, dict[str, int]], dict[str, str], int]:
    """The queries live traffic sends, with the relevance that drives their clicks: the
    judged queries of ``split`` and, where the dataset folder has one, its unlabelled pool
    (``pool/queries.jsonl`` and ``pool/hidden-relevance.tsv``, written by the demo
    generator: queries nobody labelled, whose relevance no qrels file holds and only this
    simulator reads). Returns (relevance, texts, pool size), judged and pool queries in a
    seeded order, which is their popularity order in the catalogue (``_zipf``)."""
    import random

    from harness.data.beir import _read_qrels  # the qrels reader and its checks, for a file outside qrels/
    from harness.data.demo import POOL_FOLDER, POOL_RELEVANCE

    relevance = {qid: dict(rels) for qid, rels in dataset.split(split).qrels.items()}
    texts = {qid: dataset.queries[qid].text for qid in relevance if qid in dataset.queries}
    folder = Path(dataset.path) / POOL_FOLDER
    if not (folder / "queries.jsonl").is_file():
        return relevance, texts, 0
    pool_texts = _pool_texts(folder / "queries.jsonl")
    pool_relevance, _, _ = _read_qrels(folder / POOL_RELEVANCE, pool_texts, dataset.corpus, keep_unknown_docs=False)
    clash = sorted(set(pool_relevance) & set(relevance))
    if clash:
        raise HarnessError(f"{folder / 'queries.jsonl'}: pool query {clash[0]!r} is also a judged query of {split!r}")
    relevance.update(pool_relevance)
    texts.update({qid: pool_texts[qid] for qid in pool_relevance})
    order = sorted(relevance)
    random.Random(seed).shuffle(order)
    return {qid: relevance[qid] for qid in order}, texts, len(pool_relevance)


def _pool_texts(path: Path) -> dict[str, str]:
    from harness.errors import located

    texts: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
                texts[str(record["_id"])] = str(record["text"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise located(path, lineno, "expected a JSON object with '_id' and 'text'") from None
    return texts


def _zipf(n: int) -> np.ndarray:
    w = 1.0 / (np.arange(n) + 10.0) ** 0.8
    return w / w.sum()


def _decay(k: int) -> np.ndarray:
    w = 1.0 / (np.arange(k) + 1.0)
    return w / w.sum()


def attractiveness(grades: np.ndarray) -> np.ndarray:
    table = np.array([ATTRACTIVENESS[g] for g in range(4)])
    return table[grades]


def examination(k: int, eta: float) -> np.ndarray:
    return 1.0 / np.arange(1, k + 1) ** eta


def click_probs(cat: Catalogue, cfg: SimConfig) -> np.ndarray:
    """(variant, query, position) click probability for a user of propensity 1 on a
    day without novelty: examination x attractiveness x (1 + effect)."""
    exam = examination(cfg.k, cfg.eta)
    out = np.empty((len(cfg.variants), len(cat.query_ids), cfg.k))
    for i, v in enumerate(cfg.variants):
        lift = 1.0 if i == 0 else 1.0 + cfg.effect
        out[i] = exam[None, :] * attractiveness(cat.grades[v]) * lift
    return out


def true_values(cat: Catalogue, cfg: SimConfig) -> dict[str, dict[str, float]]:
    """The population values of the query-level metrics the simulation implies (no
    novelty), exactly: the estimands the analysis should cover."""
    base = click_probs(cat, cfg)
    w = cat.query_weights
    out: dict[str, dict[str, float]] = {"ctr": {}, "clicks_per_query": {}, "abandonment": {}}
    for i, v in enumerate(cfg.variants):
        ctr = 0.0
        cpq = 0.0
        for m, pm in zip(USER_TYPES, USER_TYPE_P, strict=True):
            p = np.minimum(1.0, base[i] * m)
            ctr += pm * float(w @ (1 - np.prod(1 - p, axis=1)))
            cpq += pm * float(w @ p.sum(axis=1))
        out["ctr"][v] = ctr
        out["clicks_per_query"][v] = cpq
        out["abandonment"][v] = 1 - ctr
    return out


# --------------------------------------------------------------------------- generation


def team_draft(a: list[str], b: list[str], k: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Team-draft interleaving (Radlinski, Kurup and Joachims, CIKM 2008): the team with
    fewer picks (a coin flip on ties) adds its highest document not yet shown."""
    shown: list[str] = []
    teams: list[str] = []
    seen: set[str] = set()
    ia = ib = 0
    na = nb = 0
    while len(shown) < k and (ia < len(a) or ib < len(b)):
        pick_a = na < nb or (na == nb and rng.random() < 0.5)
        if pick_a and ia >= len(a):
            pick_a = False
        if not pick_a and ib >= len(b):
            pick_a = True
        src, idx = (a, ia) if pick_a else (b, ib)
        while idx < len(src) and src[idx] in seen:
            idx += 1
        if pick_a:
            ia = idx + 1
        else:
            ib = idx + 1
        if idx < len(src):
            seen.add(src[idx])
            shown.append(src[idx])
            teams.append("A" if pick_a else "B")
            if pick_a:
                na += 1
            else:
                nb += 1
    return shown, teams


def generate(cat: Catalogue, cfg: SimConfig) -> Iterator[tuple[Any, Any]]:
    """Yield (exposures, interactions) Arrow tables, chunk by chunk, in time order of
    days. Faults other than SRM are applied when writing (``write``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    n_v = len(cfg.variants)
    n_q = len(cat.query_ids)
    k = cfg.k
    # users: variant, activity, click propensity; a share of treatment users lost (SRM)
    variant_of_user = rng.choice(n_v, size=cfg.n_users, p=cfg.split())
    rate = rng.gamma(cfg.activity_shape, cfg.queries_per_user_day / cfg.activity_shape, size=cfg.n_users)
    mult = np.array(USER_TYPES)[rng.choice(len(USER_TYPES), size=cfg.n_users, p=USER_TYPE_P)]
    lost = (variant_of_user > 0) & (rng.random(cfg.n_users) < cfg.srm)

    base = click_probs(cat, cfg)  # (n_v, n_q, k)
    grades = np.stack([cat.grades[v] for v in cfg.variants])  # (n_v, n_q, k)
    # rankings as one Arrow list array indexed by variant * n_q + q
    flat_docs = pa.array([d for v in cfg.variants for ranked in cat.rankings[v] for d in ranked], pa.string())
    offsets = pa.array(np.arange(0, n_v * n_q * k + 1, k, dtype=np.int32))
    docs_by_vq = pa.ListArray.from_arrays(offsets, flat_docs)
    qid_arr = pa.array(cat.query_ids, pa.string())
    qtext_arr = pa.array(cat.query_texts, pa.string())
    variant_names = pa.array(cfg.variants, pa.string())
    interleaved = _interleavings(cat, cfg, rng) if cfg.interleave else None

    start = cfg.start_dt
    exp_counter = 0
    int_counter = 0
    day_list = list(range(-cfg.pre_days, cfg.days))
    # users per chunk so that a chunk holds about cfg.chunk exposures
    users_per_chunk = max(1000, int(cfg.chunk / max(cfg.queries_per_user_day * len(day_list), 1e-9)))
    for day in day_list:
        for u0 in range(0, cfg.n_users, users_per_chunk):
            users = np.arange(u0, min(cfg.n_users, u0 + users_per_chunk))
            counts = rng.poisson(rate[users])
            counts[lost[users]] = 0
            n = int(counts.sum())
            if n == 0:
                continue
            user = np.repeat(users, counts)
            v = variant_of_user[user]
            served = np.zeros_like(v) if day < 0 else v  # the pre-period serves control
            q = rng.choice(n_q, size=n, p=cat.query_weights)
            seconds = np.sort(rng.uniform(0, 86400, size=n))
            order = np.argsort(rng.random(n))  # users' queries interleave in time
            user, v, served, q = user[order], v[order], served[order], q[order]
            ts = np.datetime64(start) + (day * 86400 + seconds).astype("timedelta64[s]")
            lift = np.ones(n)
            if cfg.novelty and day >= 0:
                lift = np.where(v > 0, 1.0 + cfg.novelty * math.exp(-day / cfg.novelty_days), 1.0)
            if interleaved is not None and day >= 0:
                pick = rng.integers(0, interleaved["draws"], size=n)
                row = q * interleaved["draws"] + pick
                prob = interleaved["probs"][row] * mult[user][:, None]
                g = interleaved["grades"][row]
                docs = interleaved["docs"].take(pa.array(row))
                teams = interleaved["teams"].take(pa.array(row))
            else:
                prob = base[served, q] * (mult[user] * lift)[:, None]
                g = grades[served, q]
                docs = docs_by_vq.take(pa.array(served * n_q + q))
                teams = None
            clicks = rng.random((n, k)) < np.minimum(prob, 1.0)
            ex_ids = pc.binary_join_element_wise(
                cfg.experiment_id + "-x", pa.array(np.arange(exp_counter, exp_counter + n)).cast(pa.string()), ""
            )
            exp_counter += n
            variant_col = (
                pa.array(["interleaved"] * n, pa.string())
                if interleaved is not None and day >= 0
                else variant_names.take(pa.array(v))
            )
            user_str = pc.binary_join_element_wise("u", pa.array(user).cast(pa.string()), "")
            exposures = pa.table(
                {
                    "type": pa.array(["exposure"] * n, pa.string()),
                    "event_id": ex_ids,
                    "experiment_id": pa.array([cfg.experiment_id] * n, pa.string()),
                    "variant": variant_col,
                    "user_id": user_str,
                    "session_id": pc.binary_join_element_wise(user_str, pa.array([str(day)] * n), "-s"),
                    "query_id": qid_arr.take(pa.array(q)),
                    "query_text": qtext_arr.take(pa.array(q)),
                    "ts": pa.array(ts.astype("datetime64[us]")),
                    "doc_ids": docs,
                    "teams": teams if teams is not None else pa.nulls(n, pa.list_(pa.string())),
                    "model_version": variant_names.take(pa.array(served)) if interleaved is None or day < 0 else pa.array(["interleaved"] * n),
                }
            )
            # interactions: one row per click, plus conversions
            e_idx, pos = np.nonzero(clicks)
            m = len(e_idx)
            rel = g[e_idx, pos] > 0
            dwell = np.where(rel, rng.lognormal(4.0, 0.8, m), rng.lognormal(2.3, 0.8, m))
            click_ts = ts[e_idx] + (2 * (pos + 1) + rng.exponential(5, m)).astype("timedelta64[s]")
            converted = rel & (dwell > 30) & (rng.random(m) < 0.1)
            n_conv = int(converted.sum())
            all_e = np.concatenate([e_idx, e_idx[converted]])
            all_pos = np.concatenate([pos, pos[converted]])
            kinds = pa.array(["click"] * m + ["conversion"] * n_conv, pa.string())
            all_ts = np.concatenate([click_ts, click_ts[converted] + (dwell[converted]).astype("timedelta64[s]")])
            all_dwell = np.concatenate([dwell, np.full(n_conv, np.nan)])
            total = m + n_conv
            flat_pos = all_e * k + all_pos
            doc_flat = docs.flatten().take(pa.array(flat_pos))
            int_ids = pc.binary_join_element_wise(
                cfg.experiment_id + "-i", pa.array(np.arange(int_counter, int_counter + total)).cast(pa.string()), ""
            )
            int_counter += total
            interactions = pa.table(
                {
                    "type": pa.array(["interaction"] * total, pa.string()),
                    "event_id": int_ids,
                    "exposure_id": ex_ids.take(pa.array(all_e)),
                    "doc_id": doc_flat,
                    "position": pa.array(all_pos + 1, pa.int32()),
                    "kind": kinds,
                    "dwell_s": pa.array(np.round(all_dwell, 1), pa.float64(), mask=np.isnan(all_dwell)),
                    "ts": pa.array(all_ts.astype("datetime64[us]")),
                }
            )
            yield exposures, interactions


def _interleavings(cat: Catalogue, cfg: SimConfig, rng: np.random.Generator, draws: int = 16) -> dict[str, Any]:
    """For each query, ``draws`` team-draft interleavings of the first two variants; each
    exposure picks one at random (the coin flips of team draft)."""
    import pyarrow as pa

    a_name, b_name = cfg.variants[0], cfg.variants[1]
    exam = examination(cfg.k, cfg.eta)
    docs, teams, probs, grades = [], [], [], []
    for qi in range(len(cat.query_ids)):
        a, b = cat.rankings[a_name][qi], cat.rankings[b_name][qi]
        grade_of = {d: int(g) for d, g in zip(a, cat.grades[a_name][qi], strict=True)}
        grade_of.update({d: int(g) for d, g in zip(b, cat.grades[b_name][qi], strict=True)})
        for _ in range(draws):
            shown, team = team_draft(a, b, cfg.k, rng)
            while len(shown) < cfg.k:
                shown.append(f"__pad{len(shown)}")
                team.append("A")
            g = np.array([grade_of.get(d, 0) for d in shown])
            lift = np.array([1.0 if t == "A" else 1.0 + cfg.effect for t in team])
            docs.append(shown)
            teams.append([a_name if t == "A" else b_name for t in team])
            grades.append(g)
            probs.append(exam * attractiveness(g) * lift)
    return {
        "draws": draws,
        "docs": pa.array(docs, pa.list_(pa.string())),
        "teams": pa.array(teams, pa.list_(pa.string())),
        "probs": np.array(probs),
        "grades": np.array(grades),
    }


# --------------------------------------------------------------------------- writing


def experiment_definition(cat: Catalogue, cfg: SimConfig) -> dict[str, Any]:
    start = cfg.start_dt
    return {
        "experiment_id": cfg.experiment_id,
        "variants": cfg.variants,
        "traffic_split": cfg.split(),
        "control": cfg.variants[0],
        "start": start.isoformat(),
        "end": (start + timedelta(days=cfg.days)).isoformat(),
        "primary_metric": cfg.primary_metric,
        "guardrails": cfg.guardrails,
        "guardrail_margin": cfg.guardrail_margin,
        "true_effects": true_values(cat, cfg),
        "simulation": asdict(cfg),
    } | ({"retrievers": dict(cfg.retrievers)} if cfg.retrievers else {})


def write(cat: Catalogue, cfg: SimConfig, out: str | Path, fmt: str = "jsonl", progress: bool = True) -> dict[str, Any]:
    """Write ``experiment.json`` and the logs under ``out``; returns a summary."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.progress import track

    if fmt not in ("jsonl", "csv", "parquet"):
        raise HarnessError(f"unknown format {fmt!r} (jsonl, csv or parquet)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    definition = experiment_definition(cat, cfg)
    (out / "experiment.json").write_text(json.dumps(definition, indent=2, default=str) + "\n", encoding="utf-8")
    rng = np.random.default_rng(cfg.seed + 7919)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    writers: dict[str, Any] = {}
    paths = {
        "exposures": out / f"exposures.{fmt}",
        "interactions": out / f"interactions.{fmt}",
        "late": out / f"interactions-late.{fmt}",
    }
    for p in paths.values():
        if p.exists():
            p.unlink()
    counts = {"exposures": 0, "interactions": 0, "late_interactions": 0, "duplicates": 0, "malformed_lines": 0}
    late_tables = []
    chunks = generate(cat, cfg)
    if progress:
        chunks = track(chunks, description="simulating")
    for exposures, interactions in chunks:
        counts["exposures"] += exposures.num_rows
        if cfg.late and interactions.num_rows:
            mask = rng.random(interactions.num_rows) < cfg.late
            late_tables.append(interactions.filter(pa.array(mask)))
            interactions = interactions.filter(pa.array(~mask))
        counts["interactions"] += interactions.num_rows
        for name, table in (("exposures", exposures), ("interactions", interactions)):
            if cfg.duplicates and table.num_rows:
                dup = np.nonzero(rng.random(table.num_rows) < cfg.duplicates)[0]
                counts["duplicates"] += len(dup)
                table = pa.concat_tables([table, table.take(pa.array(dup))])
            _append(con, writers, name, paths[name], table, fmt, pq)
    if late_tables:
        late = pa.concat_tables(late_tables)
        counts["late_interactions"] = late.num_rows
        _append(con, writers, "late", paths["late"], late, fmt, pq)
    for w in writers.values():
        w.close()
    if cfg.malformed and fmt in ("jsonl", "csv"):
        for name in ("exposures", "interactions"):
            counts["malformed_lines"] += corrupt_lines(paths[name], cfg.malformed, rng, header=fmt == "csv")
    counts["files"] = [str(p) for p in paths.values() if p.exists()] + [str(out / "experiment.json")]
    counts["true_effects"] = definition["true_effects"]
    return counts


def _append(con, writers, name, path, table, fmt, pq) -> None:
    if fmt == "parquet":
        if name not in writers:
            writers[name] = pq.ParquetWriter(path, table.schema, compression="zstd")
        writers[name].write_table(table)
        return
    if name not in writers:
        writers[name] = path.open("w", encoding="utf-8", newline="")
        first = True
    else:
        first = False
    con.register("_chunk", table)
    if fmt == "jsonl":
        rows = con.execute("SELECT to_json(_chunk)::VARCHAR FROM _chunk").fetchall()
        writers[name].write("".join(r[0] + "\n" for r in rows))
    else:
        import csv
        import io

        cols = table.column_names
        select = ", ".join(
            f"array_to_string({c}, '|') AS {c}" if c in ("doc_ids", "teams") else f"{c}::VARCHAR AS {c}" for c in cols
        )
        rows = con.execute(f"SELECT {select} FROM _chunk").fetchall()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if first:
            w.writerow(cols)
        w.writerows(rows)
        writers[name].write(buf.getvalue())
    con.unregister("_chunk")


CORRUPTIONS = ("truncate", "garbage", "wrong_type", "unknown_variant", "negative_position", "bad_timestamp", "empty")


def corrupt_lines(path: Path, share: float, rng: np.random.Generator, header: bool = False) -> int:
    """Corrupt a share of the lines of a JSONL or CSV file in place: truncated records,
    garbage, wrong types, unknown variants, negative positions, impossible timestamps."""
    lines = path.read_text(encoding="utf-8").splitlines()
    first = 1 if header else 0
    n = 0
    for i in range(first, len(lines)):
        if rng.random() >= share:
            continue
        lines[i] = corrupt(lines[i], rng, csv=header)
        n += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n


def corrupt(line: str, rng: np.random.Generator, csv: bool = False) -> str:
    kind = CORRUPTIONS[rng.integers(len(CORRUPTIONS))]
    if kind == "truncate" and len(line) > 2:
        return line[: rng.integers(1, len(line) - 1)]
    if kind == "garbage":
        return "".join(chr(c) for c in rng.integers(32, 127, size=rng.integers(1, 40)))
    if kind == "empty":
        return ""
    if csv:
        fields = line.split(",")
        j = rng.integers(len(fields))
        fields[j] = {"wrong_type": "[1,2", "unknown_variant": "no-such-variant", "negative_position": "-3", "bad_timestamp": "2999-99-99"}.get(kind, "x")
        return ",".join(fields)
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return line[:-1]
    if kind == "wrong_type":
        key = ["position", "user_id", "doc_ids", "ts", "dwell_s", "event_id"][rng.integers(6)]
        rec[key] = [{"x": 1}] if key != "doc_ids" else "not-a-list" if rng.random() < 0.5 else 42
    elif kind == "unknown_variant":
        rec["variant"] = "variant-x' OR 1=1 --"
        rec.setdefault("position", -1)
    elif kind == "negative_position":
        rec["position"] = -int(rng.integers(1, 5))
        rec.setdefault("doc_ids", [])
    elif kind == "bad_timestamp":
        rec["ts"] = ["1969-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "yesterday", -5][rng.integers(4)]
    return json.dumps(rec)
