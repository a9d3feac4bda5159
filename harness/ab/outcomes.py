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

Nothing here depends on analysis options: the dwell threshold and the position
propensities are applied by the analysis, so one stored table serves every analysis.
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
# the store's row counts the table reflects, kept in ``meta``: a store written around the
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


def _counts(con) -> str:
    exposures, interactions = con.execute(
        "SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM interactions)"
    ).fetchall()[0]
    return f"exposures={exposures};interactions={interactions}"


def refresh(con, touched: str | None = None) -> None:
    """Recompute the stored outcomes of the exposures whose ids are in the one-column
    table ``touched`` (every exposure when None), inside the caller's transaction."""
    import ibis

    backend = ibis.duckdb.from_connection(con)
    exposures, interactions = backend.table("exposures"), backend.table("interactions")
    if touched is None:
        con.execute(f"DELETE FROM {TABLE}")
    else:
        ids = backend.table(touched)
        con.execute(f"DELETE FROM {TABLE} WHERE event_id IN (SELECT event_id FROM {touched})")
        exposures = exposures.semi_join(ids, exposures.event_id == ids.event_id)
        interactions = interactions.semi_join(ids, interactions.exposure_id == ids.event_id)
    sql = ibis.to_sql(outcomes(exposures, interactions), dialect="duckdb")
    con.execute(f"INSERT INTO {TABLE} BY NAME {sql}")
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [META_KEY, _counts(con)])


def is_current(con) -> bool:
    """Whether the stored table reflects every exposure and interaction of the store."""
    present = con.execute(
        "SELECT count(DISTINCT table_name) FROM duckdb_tables() WHERE table_name IN (?, 'meta')", [TABLE]
    ).fetchall()[0][0]
    if present < 2:  # not the harness's store (a Parquet folder's views)
        return False
    row = con.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchall()
    return bool(row) and row[0][0] == _counts(con)


def source(backend, use_stored: bool = True):
    """The per-exposure outcomes to analyse: the store's table when it is current, else
    the expression over the raw logs (Parquet folders, Spark, warehouses)."""
    if use_stored and backend.name == "duckdb" and is_current(backend.con):
        return backend.table(TABLE)
    return outcomes(backend.table("exposures"), backend.table("interactions"))
