"""Load exposure and interaction logs into the store, row by row validated.

* JSONL, CSV and Parquet are read (harness.ab.staging); every row is validated inside
  DuckDB (``TRY_CAST``, one query), so a malformed row never raises.
* A row that fails goes to ``quarantine`` with its file, line and reason. For every
  file ``ingested + quarantined = read`` is checked before the commit.
* Idempotent: a file whose content hash is in ``ingested_files`` is skipped, and an
  event id already stored (or repeated inside a file) is quarantined as a duplicate, so
  loading a file twice adds nothing.
* Nothing is lost for good: ``retry_quarantined`` re-validates the quarantined rows of a
  file already ingested (found by its content hash), for rows whose reason a later
  registration cured (an experiment registered after its logs arrived). Rows that pass
  leave the quarantine for the log tables, the others stay; a second retry loads nothing
  more, and ``ingested + quarantined = read`` still holds for the file.
* A file the validation could only reject whole is an error before any work: a folder, a
  missing file, an unknown format, a CSV or Parquet file with an unknown column or without
  the columns its records need.
* The per-exposure outcomes (harness.ab.outcomes) of every exposure the file touches are
  recomputed in the same transaction.
* Transactional: each file is one transaction; an error, Ctrl-C or a crash in the
  middle leaves the database as it was before that file.

Every user value is bound as a parameter or travels as Arrow data; SQL text holds only
names that are constants of this module.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.ab import outcomes, staging
from harness.errors import HarnessError

LATE_DAYS = 7  # interactions up to this long after the end are kept
MAX_POSITION = 1000


@dataclass
class FileReport:
    file: str
    read: int
    ingested: int
    quarantined: int
    skipped: bool = False  # already ingested (same content hash)
    exposures: int = 0
    interactions: int = 0
    retried: int = 0  # quarantined rows re-validated (retry_quarantined); the loaded ones are exposures + interactions
    sha256: str = ""

    def to_json(self) -> dict:
        return self.__dict__.copy()


def expand(patterns: Iterable[str]) -> list[Path]:
    """Files and globs, in order, each once; a pattern that matches nothing is an error.
    A folder is refused rather than read whole: a log folder also holds files that are not
    logs (``ab simulate`` writes experiment.json beside them), and their lines would all be
    quarantined."""
    out: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        files = [m for m in matches if Path(m).is_file()]
        if not files and any(Path(m).is_dir() for m in matches):
            raise HarnessError(
                f"{pattern}: is a directory, not a log file; give its files or a glob (for example '{Path(pattern) / '*.jsonl'}')"
                if matches == [pattern] else f"{pattern}: matches only directories, no log file"
            )
        if not files:
            raise HarnessError(f"{pattern}: no such file")
        matches = files
        for m in matches:
            p = Path(m).resolve()
            if p not in seen:
                seen.add(p)
                out.append(Path(m))
    return out


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest(
    con,
    patterns: Iterable[str],
    *,
    retry_quarantined: bool = False,
    on_chunk: Callable[[str, int], None] | None = None,
    progress: bool = True,
) -> list[FileReport]:
    """Ingest every file; returns one report per file. Every file is checked (exists, has
    a known format and the columns it needs) before the first is read. With
    ``retry_quarantined`` a file already ingested has its quarantined rows re-validated.
    ``on_chunk(file, rows_so_far)`` is called after each staged chunk (tests use it to
    interrupt an ingest midway)."""
    from harness.progress import track

    paths = expand(patterns)
    for path in paths:
        staging.check_columns(con, path)
    reports = []
    iterator = track(paths, total=len(paths), description="ingesting") if progress else paths
    for path in iterator:
        reports.append(ingest_file(con, path, retry_quarantined=retry_quarantined, on_chunk=on_chunk))
    return reports


def quarantined_files(con) -> list[str]:
    """The files of the store with rows in quarantine, as they were named when ingested,
    each checked to be there still with the same content (a retry re-reads them)."""
    rows = con.execute(
        "SELECT file, sha256, rows_quarantined FROM ingested_files WHERE rows_quarantined > 0 ORDER BY ingested_at, file"
    ).fetchall()
    for file, digest, n in rows:
        if not Path(file).is_file() or sha256(Path(file)) != digest:
            raise HarnessError(
                f"{file}: {n} of its rows are quarantined, but the file is no longer there with the content "
                "that was ingested; give its current path to retry it"
            )
    return [file for file, _, _ in rows]


def ingest_file(con, path: Path, *, retry_quarantined: bool = False, on_chunk=None) -> FileReport:
    digest = sha256(path)
    done = con.execute(
        "SELECT rows_read, rows_ingested, rows_quarantined FROM ingested_files WHERE sha256 = ?", [digest]
    ).fetchall()
    done = done[0] if done else None
    if done is not None and not (retry_quarantined and done[2]):
        return FileReport(str(path), done[0], done[1], done[2], skipped=True, sha256=digest)
    con.execute("BEGIN TRANSACTION")
    try:
        report = _ingest_in_transaction(con, path, digest, on_chunk, done)
        con.execute("COMMIT")
        return report
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for table in ("_raw", "_stage", "_checked", "_touched"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        for view in ("_parquet_src",):
            con.execute(f"DROP VIEW IF EXISTS {view}")


def _ingest_in_transaction(con, path, digest, on_chunk, done) -> FileReport:
    """Stage, validate and load a file; ``done`` (read, ingested, quarantined) is the
    record of a file already ingested, whose quarantined rows alone are then validated."""
    n_read = staging.stage(con, path, on_chunk)
    if done is not None:
        n_read = _keep_quarantined_rows(con, path, digest, done[2])
    con.execute(_CHECK_SQL)
    counts = dict(
        con.execute(
            "SELECT coalesce(reason IS NULL, false) AND kind_ IS NOT NULL, count(*) FROM _checked GROUP BY ALL"
        ).fetchall()
    )
    n_checked = sum(counts.values())
    if n_checked != n_read:
        raise HarnessError(f"{path}: internal check failed: read {n_read} rows but validated {n_checked}")
    before = _table_counts(con)
    con.execute(
        "INSERT INTO exposures SELECT event_id, experiment_id, variant, user_id, session_id, query_id, "
        "query_text, ts_, doc_ids, teams, model_version FROM _stage JOIN _checked USING (line) "
        "WHERE reason IS NULL AND kind_ = 'exposure' ORDER BY ts_"
    )
    con.execute(
        "INSERT INTO interactions SELECT event_id, exposure_id, doc_id, position_, lower(kind), dwell_, ts_ "
        "FROM _stage JOIN _checked USING (line) WHERE reason IS NULL AND kind_ = 'interaction'"
    )
    con.execute(
        "CREATE TEMP TABLE _touched AS SELECT DISTINCT CASE kind_ WHEN 'exposure' THEN event_id ELSE exposure_id END AS event_id "
        "FROM _stage JOIN _checked USING (line) WHERE reason IS NULL"
    )
    outcomes.refresh(con, "_touched")
    con.execute(
        "INSERT INTO quarantine (file, line, reason, raw, quarantined_at, sha256) "
        "SELECT ?, line, reason, left(coalesce(raw, to_json(struct_pack("
        + ", ".join(staging.FIELDS)
        + ", doc_ids))::VARCHAR), ?), now()::TIMESTAMP, ? "
        "FROM _stage JOIN _checked USING (line) WHERE reason IS NOT NULL ORDER BY line",
        [str(path), staging.MAX_RAW, digest],
    )
    after = _table_counts(con)
    n_exp = after["exposures"] - before["exposures"]
    n_int = after["interactions"] - before["interactions"]
    n_bad = after["quarantine"] - before["quarantine"]
    if n_exp + n_int + n_bad != n_read:
        raise HarnessError(
            f"{path}: ingested {n_exp + n_int} + quarantined {n_bad} != read {n_read}; rolled back"
        )
    if done is not None:
        con.execute(
            "UPDATE ingested_files SET rows_ingested = rows_ingested + ?, rows_quarantined = ? WHERE sha256 = ?",
            [n_exp + n_int, n_bad, digest],
        )
        return FileReport(str(path), done[0], done[1] + n_exp + n_int, n_bad, exposures=n_exp, interactions=n_int,
                          retried=n_read, sha256=digest)
    con.execute(
        "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [str(path), digest, n_read, n_exp + n_int, n_bad],
    )
    return FileReport(str(path), n_read, n_exp + n_int, n_bad, exposures=n_exp, interactions=n_int, sha256=digest)


def _keep_quarantined_rows(con, path: Path, digest: str, expected: int) -> int:
    """Keep in ``_stage`` only the file's rows that sit in quarantine, and take them out of
    it: those that fail the validation again go back with their reason of today."""
    held = con.execute("SELECT count(*) FROM quarantine WHERE sha256 = ?", [digest]).fetchall()[0][0]
    con.execute("DELETE FROM _stage WHERE line NOT IN (SELECT line FROM quarantine WHERE sha256 = ?)", [digest])
    staged = con.execute("SELECT count(*) FROM _stage").fetchall()[0][0]
    if held != expected or staged != expected:
        raise HarnessError(
            f"{path}: {expected} of its rows were quarantined, but {held} quarantined rows carry its content hash and "
            f"{staged} of its lines match them (a store from before schema version 3 that holds several files of this name); "
            "nothing was retried"
        )
    con.execute("DELETE FROM quarantine WHERE sha256 = ?", [digest])
    return staged


def _table_counts(con) -> dict[str, int]:
    row = con.execute(
        "SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM interactions), (SELECT count(*) FROM quarantine)"
    ).fetchall()[0]
    return {"exposures": row[0], "interactions": row[1], "quarantine": row[2]}


# --------------------------------------------------------------------------- validation

_TS = (
    "coalesce(TRY_CAST(s.ts AS TIMESTAMPTZ), "
    "CASE WHEN TRY_CAST(s.ts AS DOUBLE) BETWEEN 0 AND 4102444800 THEN to_timestamp(TRY_CAST(s.ts AS DOUBLE)) END)"
    " AT TIME ZONE 'UTC'"
)

# the only values formatted into this SQL are the integer constants above
_CHECK_SQL = f"""
CREATE TEMP TABLE _checked AS
WITH typed AS (
    SELECT s.*,
        lower(coalesce(s.type, CASE WHEN s.exposure_id IS NOT NULL THEN 'interaction' ELSE 'exposure' END)) AS kind_,
        {_TS} AS ts_,
        CASE WHEN regexp_full_match(s.position, '\\s*[+-]?[0-9]{{1,9}}\\s*') THEN TRY_CAST(s.position AS INTEGER) END AS position_,
        TRY_CAST(s.dwell_s AS DOUBLE) AS dwell_
    FROM _stage s
),
joined AS (
    SELECT t.*,
        e.experiment_id AS exp_found, e.variants AS exp_variants, e.start_ts AS exp_start,
        coalesce(e.end_ts, e.start_ts + INTERVAL 366 DAY) AS exp_end,
        x.ts AS x_ts, x.doc_ids AS x_doc_ids, x.exp_end AS x_exp_end,
        (t.kind_ = 'exposure' AND EXISTS (SELECT 1 FROM exposures o WHERE o.event_id = t.event_id))
         OR (t.kind_ = 'interaction' AND EXISTS (SELECT 1 FROM interactions o WHERE o.event_id = t.event_id)) AS stored_dup
    FROM typed t
    LEFT JOIN experiments e ON t.kind_ = 'exposure' AND e.experiment_id = t.experiment_id
    LEFT JOIN (
        SELECT event_id, ts, doc_ids, exp_end FROM (
            SELECT o.event_id, o.ts, o.doc_ids, coalesce(ee.end_ts, ee.start_ts + INTERVAL 366 DAY) AS exp_end
            FROM exposures o JOIN experiments ee USING (experiment_id)
            WHERE o.event_id IN (SELECT exposure_id FROM _stage WHERE exposure_id IS NOT NULL)
            UNION ALL
            SELECT st.event_id, {_TS.replace('s.ts', 'st.ts')}, st.doc_ids, coalesce(ee.end_ts, ee.start_ts + INTERVAL 366 DAY)
            FROM _stage st JOIN experiments ee ON ee.experiment_id = st.experiment_id
            WHERE st.parse_error IS NULL AND st.exposure_id IS NULL
        ) QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1
    ) x ON t.kind_ = 'interaction' AND x.event_id = t.exposure_id
)
SELECT line, kind_, ts_, position_, dwell_,
    coalesce(reason0, CASE
        WHEN first_line < line THEN 'duplicate event_id (first seen on line ' || first_line || ')'
        WHEN stored_dup THEN 'duplicate event_id (already stored)' END) AS reason
FROM (
SELECT *, min(line) FILTER (WHERE reason0 IS NULL) OVER (PARTITION BY kind_, event_id) AS first_line
FROM (
SELECT *, CASE
    WHEN parse_error IS NOT NULL THEN parse_error
    WHEN kind_ NOT IN ('exposure', 'interaction') THEN 'unknown record type ' || to_json(type)::VARCHAR
    WHEN type_error IS NOT NULL THEN type_error
    WHEN event_id IS NULL OR trim(event_id) = '' THEN 'event_id is missing'
    WHEN ts IS NULL THEN 'timestamp is missing'
    WHEN ts_ IS NULL THEN 'timestamp ' || to_json(ts)::VARCHAR || ' is not ISO 8601 or epoch seconds'
    -- exposures
    WHEN kind_ = 'exposure' AND (experiment_id IS NULL OR trim(experiment_id) = '') THEN 'experiment_id is missing'
    WHEN kind_ = 'exposure' AND exp_found IS NULL THEN 'unknown experiment ' || to_json(experiment_id)::VARCHAR
    WHEN kind_ = 'exposure' AND variant IS NULL THEN 'variant is missing'
    WHEN kind_ = 'exposure' AND NOT list_contains(exp_variants, variant)
        AND NOT (variant = 'interleaved' AND teams IS NOT NULL) THEN 'unknown variant ' || to_json(variant)::VARCHAR
    WHEN kind_ = 'exposure' AND (user_id IS NULL OR trim(user_id) = '') THEN 'user_id is missing'
    WHEN kind_ = 'exposure' AND (ts_ < exp_start - to_days({outcomes.PRE_DAYS}) OR ts_ > exp_end + INTERVAL 1 DAY)
        THEN 'timestamp ' || ts_ || ' is outside the experiment window'
    WHEN kind_ = 'exposure' AND doc_ids_error THEN 'doc_ids must be a list of ids'
    WHEN kind_ = 'exposure' AND (doc_ids IS NULL OR len(doc_ids) = 0) THEN 'doc_ids is missing or empty'
    WHEN kind_ = 'exposure' AND list_bool_or(list_transform(doc_ids, lambda d: d IS NULL OR d = '')) THEN 'doc_ids holds an empty id'
    WHEN kind_ = 'exposure' AND teams_error THEN 'teams must be a list'
    WHEN kind_ = 'exposure' AND teams IS NOT NULL AND len(teams) <> len(doc_ids) THEN 'teams must have one entry per doc id'
    WHEN kind_ = 'exposure' AND teams IS NOT NULL AND NOT list_bool_and(list_transform(teams, lambda t: list_contains(exp_variants, t)))
        THEN 'teams must name variants of the experiment'
    -- interactions
    WHEN kind_ = 'interaction' AND (exposure_id IS NULL OR trim(exposure_id) = '') THEN 'exposure_id is missing'
    WHEN kind_ = 'interaction' AND position IS NULL THEN 'position is missing'
    WHEN kind_ = 'interaction' AND position_ IS NULL THEN 'position ' || to_json(position)::VARCHAR || ' is not an integer'
    WHEN kind_ = 'interaction' AND (position_ < 1 OR position_ > {MAX_POSITION}) THEN 'position ' || position_ || ' is out of range'
    WHEN kind_ = 'interaction' AND lower(coalesce(kind, '')) NOT IN ('click', 'conversion') THEN 'kind must be click or conversion'
    WHEN kind_ = 'interaction' AND dwell_s IS NOT NULL AND dwell_ IS NULL THEN 'dwell_s ' || to_json(dwell_s)::VARCHAR || ' is not a number'
    WHEN kind_ = 'interaction' AND (dwell_ < 0 OR NOT isfinite(dwell_)) THEN 'dwell_s must be a finite number >= 0'
    WHEN kind_ = 'interaction' AND x_ts IS NULL AND (ts_ < TIMESTAMP '2000-01-01' OR ts_ > TIMESTAMP '2100-01-01')
        THEN 'timestamp ' || ts_ || ' is out of range'
    WHEN kind_ = 'interaction' AND x_ts IS NOT NULL AND ts_ < x_ts - INTERVAL 1 MINUTE THEN 'timestamp is before its exposure'
    WHEN kind_ = 'interaction' AND x_ts IS NOT NULL AND ts_ > x_exp_end + to_days({LATE_DAYS}) THEN 'timestamp is after the experiment window'
    WHEN kind_ = 'interaction' AND x_ts IS NOT NULL AND position_ > len(x_doc_ids) THEN 'position ' || position_ || ' is beyond the ranking shown'
    WHEN kind_ = 'interaction' AND x_ts IS NOT NULL AND doc_id IS NOT NULL AND x_doc_ids[position_] <> doc_id
        THEN 'doc_id does not match the doc shown at that position'
END AS reason0
FROM joined))
"""
