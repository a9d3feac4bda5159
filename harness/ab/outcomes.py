"""Per-exposure outcomes: each result page shown, with its interactions reduced to what
the analysis reads (clicks, first click position, longest click dwell, conversion, the
positions clicked).

The reduction is one Ibis expression over the raw ``exposures`` and ``interactions``, so it
runs on any engine. The DuckDB store also keeps its result in ``exposure_outcomes``,
updated inside each ingest transaction for the exposures that the file touches (new
exposures, and exposures that got new interactions, whichever arrived first). An analysis
then scans one narrow table instead of joining the raw logs, the way experimentation
platforms pre-aggregate per unit at load time. The raw path stays for Parquet folders,
Spark and warehouses, and the two paths give the same numbers (tested).

Nothing in ``exposure_outcomes`` depends on analysis options: the dwell threshold and
the position propensities are applied by the analysis, so one table serves every analysis.

The store also keeps ``user_outcomes``, one row per (experiment, user): the per-user sums
of the pre-period and of the experiment's window, with clicks counted per position (so
inverse-propensity weighting, linear in those counts, works with any propensities of up to
``POSITIONS`` positions) and successes at the default dwell threshold. An analysis with
the default window and threshold and without per-day figures reads it directly: its cost
is then a scan of one row per user, the way experimentation platforms pre-aggregate per
unit at load time. Every other analysis reduces ``exposure_outcomes``.
"""

from __future__ import annotations

TABLE = "exposure_outcomes"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id VARCHAR NOT NULL,
    experiment_id VARCHAR NOT NULL,
    variant VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    clicks BIGINT NOT NULL,
    first_click_pos INTEGER,
    click_dwell_max DOUBLE,
    converted BIGINT NOT NULL,
    click_positions INTEGER[]
)"""
USERS_TABLE = "user_outcomes"
DWELL = 30.0  # the success threshold of the stored per-user sums: the analysis default
POSITIONS = 10  # clicks are counted per position 1..POSITIONS in the per-user sums
PRE_DAYS = 28  # the pre-period (CUPED covariates) before an experiment's start
HORIZON_DAYS = 14  # an experiment's window when its definition has no end
PERIOD_SUMS = ("queries", "clicked", "clicks", "successes", "rr", "conversions") + tuple(
    f"clicks_at_{k}" for k in range(1, POSITIONS + 1)
)
USERS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {USERS_TABLE} (experiment_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, "
    "variant_min VARCHAR NOT NULL, variant_max VARCHAR NOT NULL, "
    + ", ".join(f"{prefix}{c} {'DOUBLE' if c == 'rr' else 'BIGINT'} NOT NULL" for prefix in ("", "pre_") for c in PERIOD_SUMS)
    + ")"
)
# the store's row counts the tables reflect, kept in ``meta``: a store written around the
# ingest (a script inserting rows itself) makes them differ, and the analysis then reads
# the raw logs instead of a stale table
META_KEY = "exposure_outcomes_reflect"


def outcomes(exposures, interactions):
    """One row per exposure. An interaction beyond the ranking shown (stored when it
    arrived before its exposure) voids that exposure's clicks, as the ingest would have
    rejected it had the exposure been known."""
    import ibis

    i = interactions.filter(interactions.position >= 1)  # the ingest rejects others; raw Parquet may hold them
    is_click = i.kind == "click"
    per = i.group_by(i.exposure_id).aggregate(
        n_clicks=is_click.cast("int64").sum(),
        first_pos=i.position.min(where=is_click),
        last_pos=i.position.max(),
        dwell_max=i.dwell_s.max(where=is_click),
        converted=(i.kind == "conversion").cast("int64").max(),
        positions=i.position.collect(where=is_click),
    )
    e = exposures.select("event_id", "experiment_id", "variant", "user_id", "ts", n_docs=exposures.doc_ids.length())
    j = e.left_join(per, e.event_id == per.exposure_id)
    valid = j.n_clicks.notnull() & (j.last_pos <= j.n_docs)
    null = ibis.null()
    return j.select(
        "event_id",
        "experiment_id",
        "variant",
        "user_id",
        "ts",
        clicks=ibis.ifelse(valid, j.n_clicks, 0).cast("int64"),
        first_click_pos=ibis.ifelse(valid, j.first_pos, null.cast("int32")).cast("int32"),
        click_dwell_max=ibis.ifelse(valid, j.dwell_max, null.cast("float64")).cast("float64"),
        converted=ibis.ifelse(valid, j.converted, 0).cast("int64"),
        click_positions=ibis.ifelse(valid, j.positions, null.cast("array<int32>")).cast("array<int32>"),
    )


def query_values(o, dwell_threshold: float) -> dict:
    """The per-query quantities of per-exposure outcomes ``o`` that every analysis sums
    (clicked, clicks, successes, reciprocal rank of the first click, conversions)."""
    import ibis

    return {
        "clicked": (o.clicks > 0).cast("int64"),
        "clicks": o.clicks,
        "successes": (o.click_dwell_max >= ibis.literal(float(dwell_threshold), "float64")).fill_null(False).cast("int64"),
        "rr": ibis.ifelse(o.first_click_pos.notnull(), 1.0 / o.first_click_pos.cast("float64"), 0.0),
        "conversions": o.converted,
    }


def user_outcomes(outcomes_, experiments):
    """One row per (experiment, user) of the pre-period and of the experiment's window
    (its end, or ``HORIZON_DAYS`` after its start): the sums of ``PERIOD_SUMS`` for each,
    and the smallest and largest variant seen (they differ for users in several)."""
    import ibis

    e = experiments.select(
        "experiment_id", "variants", "start_ts",
        end_ts=experiments.end_ts.fill_null(experiments.start_ts + ibis.interval(days=HORIZON_DAYS)),
    )
    o = outcomes_.join(e, "experiment_id")
    o = o.filter(
        e.variants.contains(o.variant),
        o.ts >= o.start_ts - ibis.interval(days=PRE_DAYS),
        o.ts < o.end_ts,
    )
    pre = o.ts < o.start_ts
    at = {
        f"clicks_at_{k}": ibis.cases(
            (o.clicks == 0, 0), (o.clicks == 1, (o.first_click_pos == k).cast("int64")),
            else_=o.click_positions.filter(lambda p, k=k: p == k).length(),
        ).cast("int64")
        for k in range(1, POSITIONS + 1)
    }
    rows = o.select("experiment_id", "user_id", "variant", pre=pre, queries=ibis.literal(1, "int64"), **query_values(o, DWELL), **at)
    sums = {}
    for prefix, where in (("", ~rows.pre), ("pre_", rows.pre)):
        sums |= {f"{prefix}{c}": rows[c].sum(where=where) for c in PERIOD_SUMS}
    u = rows.group_by(["experiment_id", "user_id"]).aggregate(
        variant_min=rows.variant.min(), variant_max=rows.variant.max(), **sums
    )
    return u.mutate(**{c: u[c].fill_null(0) for c in sums})


def _counts(con) -> str:
    exposures, interactions = con.execute(
        "SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM interactions)"
    ).fetchall()[0]
    return f"exposures={exposures};interactions={interactions}"


def refresh(con, touched: str | None = None) -> None:
    """Recompute the stored outcomes of the exposures whose ids are in the one-column
    table ``touched`` (every exposure when None), then the per-user sums of their users,
    inside the caller's transaction."""
    import ibis

    if touched is None:
        con.execute(f"DELETE FROM {TABLE}")
        con.execute(f"DELETE FROM {USERS_TABLE}")
        if not con.execute("SELECT count(*) FROM exposures").fetchall()[0][0]:  # a new store: nothing to reduce
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [META_KEY, _counts(con)])
            return
    backend = ibis.duckdb.from_connection(con)
    exposures, interactions = backend.table("exposures"), backend.table("interactions")
    if touched is not None:
        ids = backend.table(touched)
        con.execute(f"DELETE FROM {TABLE} WHERE event_id IN (SELECT event_id FROM {touched})")
        exposures = exposures.semi_join(ids, exposures.event_id == ids.event_id)
        interactions = interactions.semi_join(ids, interactions.exposure_id == ids.event_id)
    con.execute(f"INSERT INTO {TABLE} BY NAME {ibis.to_sql(outcomes(exposures, interactions), dialect='duckdb')}")
    stored = backend.table(TABLE)
    if touched is not None:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _touched_users AS SELECT DISTINCT experiment_id, user_id "
            f"FROM {TABLE} WHERE event_id IN (SELECT event_id FROM {touched})"
        )
        con.execute(
            f"DELETE FROM {USERS_TABLE} WHERE (experiment_id, user_id) IN (SELECT (experiment_id, user_id) FROM _touched_users)"
        )
        users = backend.table("_touched_users")
        stored = stored.semi_join(users, ["experiment_id", "user_id"])
    sql = ibis.to_sql(user_outcomes(stored, backend.table("experiments")), dialect="duckdb")
    con.execute(f"INSERT INTO {USERS_TABLE} BY NAME {sql}")
    con.execute("DROP TABLE IF EXISTS _touched_users")
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [META_KEY, _counts(con)])


def is_current(con) -> bool:
    """Whether the stored tables reflect every exposure and interaction of the store."""
    present = con.execute(
        "SELECT count(DISTINCT table_name) FROM duckdb_tables() WHERE table_name IN (?, ?, 'meta')", [TABLE, USERS_TABLE]
    ).fetchall()[0][0]
    if present < 3:  # not the harness's store (a Parquet folder's views)
        return False
    row = con.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchall()
    return bool(row) and row[0][0] == _counts(con)


def source(backend, use_stored: bool = True):
    """The per-exposure outcomes to analyse: the store's table when it is current, else
    the expression over the raw logs (Parquet folders, Spark, warehouses)."""
    if use_stored and backend.name == "duckdb" and is_current(backend.con):
        return backend.table(TABLE)
    return outcomes(backend.table("exposures"), backend.table("interactions"))
