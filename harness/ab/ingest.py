"""Load exposure and interaction logs into the store, row by row validated.

* JSONL, CSV and Parquet are read; JSON is parsed and every row is validated inside
  DuckDB (JSON functions, ``TRY_CAST``), so a malformed row never raises.
* A row that fails goes to ``quarantine`` with its file, line and reason. For every
  file ``ingested + quarantined = read`` is checked before the commit.
* Idempotent: a file whose content hash is in ``ingested_files`` is skipped, and an
  event id already stored (or repeated inside a file) is quarantined as a duplicate, so
  loading a file twice adds nothing.
* The per-exposure outcomes (harness.ab.outcomes) of every exposure the file touches are
  recomputed in the same transaction.
* Transactional: each file is one transaction; an error, Ctrl-C or a crash in the
  middle leaves the database as it was before that file.

Every user value is bound as a parameter or travels as Arrow data; SQL text holds only
names that are constants of this module.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.ab import outcomes
from harness.errors import HarnessError

CHUNK_LINES = 200_000
MAX_RAW = 2000
LATE_DAYS = 7  # interactions up to this long after the end are kept
MAX_POSITION = 1000

# staged text columns: the fields a record may carry
FIELDS = (
    "type",
    "event_id",
    "experiment_id",
    "variant",
    "user_id",
    "session_id",
    "query_id",
    "query_text",
    "ts",
    "model_version",
    "exposure_id",
    "doc_id",
    "position",
    "kind",
    "dwell_s",
)
LIST_FIELDS = ("doc_ids", "teams")
ALIASES = {"experiment": "experiment_id", "timestamp": "ts", "time": "ts", "dwell": "dwell_s", "event": "type"}


@dataclass
class FileReport:
    file: str
    read: int
    ingested: int
    quarantined: int
    skipped: bool = False  # already ingested (same content hash)
    exposures: int = 0
    interactions: int = 0

    def to_json(self) -> dict:
        return self.__dict__.copy()


def expand(patterns: Iterable[str]) -> list[Path]:
    """Files and globs, in order, each once; a pattern that matches nothing is an error."""
    out: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise HarnessError(f"{pattern}: no such file")
        for m in matches:
            p = Path(m).resolve()
            if p not in seen:
                seen.add(p)
                out.append(Path(m))
    return out


def file_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return fmt
    raise HarnessError(f"{path}: unknown log format (expected .jsonl, .csv or .parquet)")


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
    on_chunk: Callable[[str, int], None] | None = None,
    progress: bool = True,
) -> list[FileReport]:
    """Ingest every file; returns one report per file. ``on_chunk(file, rows_so_far)`` is
    called after each staged chunk (tests use it to interrupt an ingest midway)."""
    from harness.progress import track

    paths = expand(patterns)
    reports = []
    iterator = track(paths, total=len(paths), description="ingesting") if progress else paths
    for path in iterator:
        reports.append(ingest_file(con, path, on_chunk=on_chunk))
    return reports


def ingest_file(con, path: Path, *, on_chunk=None) -> FileReport:
    fmt = file_format(path)
    digest = sha256(path)
    done = con.execute(
        "SELECT rows_read, rows_ingested, rows_quarantined FROM ingested_files WHERE sha256 = ?", [digest]
    ).fetchall()
    done = done[0] if done else None
    if done is not None:
        return FileReport(str(path), done[0], done[1], done[2], skipped=True)
    con.execute("BEGIN TRANSACTION")
    try:
        report = _ingest_in_transaction(con, path, fmt, digest, on_chunk)
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


# --------------------------------------------------------------------------- staging

_STAGE_DDL = (
    "CREATE TEMP TABLE _stage (line BIGINT, raw VARCHAR, parse_error VARCHAR, type_error VARCHAR, "
    + ", ".join(f"{f} VARCHAR" for f in FIELDS)
    + ", doc_ids VARCHAR[], doc_ids_error BOOLEAN, teams VARCHAR[], teams_error BOOLEAN)"
)


def _ingest_in_transaction(con, path, fmt, digest, on_chunk) -> FileReport:
    con.execute("DROP TABLE IF EXISTS _stage")
    con.execute(_STAGE_DDL)
    if fmt == "jsonl":
        n_read = _stage_jsonl(con, path, on_chunk)
    elif fmt == "csv":
        n_read = _stage_csv(con, path, on_chunk)
    else:
        n_read = _stage_parquet(con, path, on_chunk)
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
        "INSERT INTO quarantine SELECT ?, line, reason, left(coalesce(raw, to_json(struct_pack("
        + ", ".join(FIELDS)
        + ", doc_ids))::VARCHAR), ?), now()::TIMESTAMP "
        "FROM _stage JOIN _checked USING (line) WHERE reason IS NOT NULL ORDER BY line",
        [str(path), MAX_RAW],
    )
    after = _table_counts(con)
    n_exp = after["exposures"] - before["exposures"]
    n_int = after["interactions"] - before["interactions"]
    n_bad = after["quarantine"] - before["quarantine"]
    if n_exp + n_int + n_bad != n_read:
        raise HarnessError(
            f"{path}: ingested {n_exp + n_int} + quarantined {n_bad} != read {n_read}; rolled back"
        )
    con.execute(
        "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [str(path), digest, n_read, n_exp + n_int, n_bad],
    )
    return FileReport(str(path), n_read, n_exp + n_int, n_bad, exposures=n_exp, interactions=n_int)


def _table_counts(con) -> dict[str, int]:
    row = con.execute(
        "SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM interactions), (SELECT count(*) FROM quarantine)"
    ).fetchall()[0]
    return {"exposures": row[0], "interactions": row[1], "quarantine": row[2]}


def _read_lines(path: Path) -> Iterator[str]:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        for line in fh:
            yield line.rstrip("\r\n")


def _stage_jsonl(con, path: Path, on_chunk) -> int:
    import pyarrow as pa

    n = 0
    batch: list[str] = []

    def flush(start_line: int) -> None:
        table = pa.table(
            {"line": pa.array(range(start_line, start_line + len(batch)), pa.int64()), "raw": pa.array(batch, pa.string())}
        )
        con.register("_raw_arrow", table)
        con.execute(_JSONL_STAGE_SQL)
        con.unregister("_raw_arrow")
        if on_chunk is not None:
            on_chunk(str(path), start_line + len(batch) - 1)

    start = 1
    for line in _read_lines(path):
        batch.append(line)
        n += 1
        if len(batch) >= CHUNK_LINES:
            flush(start)
            start += len(batch)
            batch = []
    if batch:
        flush(start)
    return n


# every name a field may have in JSON: its own and its aliases (constants of this module)
_NAMES = [(f, [f] + [a for a, t in ALIASES.items() if t == f]) for f in FIELDS]
_ALL_PATHS = [name for _, names in _NAMES for name in names]
_PATH_LIST = "[" + ", ".join(f"'$.\"{n}\"'" for n in _ALL_PATHS) + "]"


def _json_field(field: str, names: list[str]) -> str:
    idx = [_ALL_PATHS.index(n) + 1 for n in names]
    parts = [f"v[{i}]" for i in idx]
    return (f"coalesce({', '.join(parts)})" if len(parts) > 1 else parts[0]) + f" AS {field}"


def _json_type_check() -> str:
    # a scalar field given as an object, an array or a boolean is a type error
    checks = [
        f"CASE WHEN t[{i + 1}] IN ('OBJECT', 'ARRAY', 'BOOLEAN') THEN '{name} must be a string or a number' END"
        for i, name in enumerate(_ALL_PATHS)
    ]
    return f"coalesce({', '.join(checks)})"


def _json_list(name: str) -> str:
    path = f"'$.\"{name}\"'"
    ok = (
        f"(json_type(raw, {path}) = 'ARRAY' AND coalesce(list_bool_and(list_transform(coalesce(json_type(raw, '$.\"{name}\"[*]'), []), "
        f"lambda t: t IN ('VARCHAR', 'BIGINT', 'UBIGINT'))), true))"
    )
    return (
        f"CASE WHEN {ok} THEN TRY_CAST(json_extract(raw, {path}) AS VARCHAR[]) END AS {name}, "
        f"(coalesce(json_type(raw, {path}), 'NULL') <> 'NULL' AND NOT coalesce({ok}, false)) AS {name}_error"
    )


_JSONL_STAGE_SQL = (
    "INSERT INTO _stage SELECT line, raw, "
    "CASE WHEN trim(raw) = '' THEN 'empty line' WHEN NOT json_valid(raw) THEN 'invalid JSON' "
    "WHEN json_type(raw) <> 'OBJECT' THEN 'not a JSON object' END AS parse_error, "
    "NULL, " + ", ".join(f"NULL AS {f}" for f in FIELDS) + ", NULL, NULL, NULL, NULL "
    "FROM _raw_arrow WHERE trim(raw) = '' OR NOT json_valid(raw) OR json_type(raw) <> 'OBJECT';\n"
    "INSERT INTO _stage SELECT line, raw, NULL, "
    + _json_type_check()
    + ", "
    + ", ".join(_json_field(f, names) for f, names in _NAMES)
    + ", "
    + _json_list("doc_ids")
    + ", "
    + _json_list("teams")
    + f" FROM (SELECT line, raw, json_extract_string(raw, {_PATH_LIST}) AS v, json_type(raw, {_PATH_LIST}) AS t "
    "FROM _raw_arrow WHERE trim(raw) <> '' AND json_valid(raw) AND json_type(raw) = 'OBJECT')"
)


def _text_list(expr: str, name: str) -> str:
    """A list field given as text (CSV, or a Parquet string column): a JSON array or
    ``a|b|c``."""
    return (
        f"CASE WHEN {expr} IS NULL OR trim({expr}) = '' THEN NULL "
        f"WHEN starts_with(trim({expr}), '[') THEN TRY_CAST(CASE WHEN json_valid({expr}) THEN {expr}::JSON END AS VARCHAR[]) "
        f"ELSE string_split({expr}, '|') END AS {name}, "
        f"coalesce(trim({expr}) <> '' AND starts_with(trim({expr}), '[') AND "
        f"TRY_CAST(CASE WHEN json_valid({expr}) THEN {expr}::JSON END AS VARCHAR[]) IS NULL, false) AS {name}_error"
    )


def _stage_csv(con, path: Path, on_chunk) -> int:
    import pyarrow as pa

    lines = _read_lines(path)
    text = io.StringIO()
    # csv needs whole records (a quoted field may span lines): feed it the lines back
    reader = csv.reader(_with_newlines(lines, text))
    try:
        header = next(reader)
    except StopIteration:
        return 0
    header = [ALIASES.get(h.strip(), h.strip()) for h in header]
    known = set(FIELDS) | set(LIST_FIELDS)
    unknown = [h for h in header if h not in known]
    if unknown:
        raise HarnessError(f"{path}:1: unknown CSV column(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    cols = {name: [] for name in ("line", "raw", "parse_error", *FIELDS, *LIST_FIELDS)}
    n = 0

    def flush() -> None:
        table = pa.table({k: pa.array(v, pa.int64() if k == "line" else pa.string()) for k, v in cols.items()})
        con.register("_raw_arrow", table)
        con.execute(
            "INSERT INTO _stage SELECT line, raw, parse_error, NULL, "
            + ", ".join(FIELDS)
            + ", "
            + _text_list("doc_ids", "doc_ids")
            + ", "
            + _text_list("teams", "teams")
            + " FROM _raw_arrow"
        )
        con.unregister("_raw_arrow")
        if on_chunk is not None:
            on_chunk(str(path), n)
        for v in cols.values():
            v.clear()

    line_no = reader.line_num
    for row in reader:
        line_no_start = line_no + 1
        line_no = reader.line_num
        n += 1
        cols["line"].append(line_no_start)
        cols["raw"].append(",".join(row)[:MAX_RAW])
        if len(row) != len(header):
            cols["parse_error"].append(f"expected {len(header)} fields, got {len(row)}")
            row = []
        else:
            cols["parse_error"].append(None)
        values = dict(zip(header, row, strict=False))
        for name in (*FIELDS, *LIST_FIELDS):
            value = values.get(name)
            cols[name].append(value if value not in ("", None) else None)
        if len(cols["line"]) >= CHUNK_LINES:
            flush()
    if cols["line"]:
        flush()
    return n


def _with_newlines(lines: Iterator[str], _buffer) -> Iterator[str]:
    for line in lines:
        yield line + "\n"


def _stage_parquet(con, path: Path, on_chunk) -> int:
    import duckdb

    try:
        rel = con.read_parquet(str(path), file_row_number=True)
    except duckdb.Error as exc:
        raise HarnessError(f"{path}: cannot read Parquet: {exc}") from exc
    rel.create_view("_parquet_src", replace=True)
    columns = {ALIASES.get(c, c): c for c in rel.columns if c != "file_row_number"}
    types = dict(zip(rel.columns, [str(t) for t in rel.types], strict=True))
    known = set(FIELDS) | set(LIST_FIELDS)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise HarnessError(f"{path}: unknown Parquet column(s): {', '.join(unknown)}")

    def text(field: str) -> str:
        if field not in columns:
            return f"NULL::VARCHAR AS {field}"
        return f"CAST(\"{columns[field]}\" AS VARCHAR) AS {field}"

    def lst(field: str) -> str:
        if field not in columns:
            return f"NULL::VARCHAR[] AS {field}, false AS {field}_error"
        src = f'"{columns[field]}"'
        if types[src.strip('"')].endswith("[]"):
            return f"TRY_CAST({src} AS VARCHAR[]) AS {field}, ({src} IS NOT NULL AND TRY_CAST({src} AS VARCHAR[]) IS NULL) AS {field}_error"
        return _text_list(f"CAST({src} AS VARCHAR)", field)

    n = con.execute("SELECT count(*) FROM _parquet_src").fetchall()[0][0]
    con.execute(
        "INSERT INTO _stage SELECT file_row_number + 1, NULL, NULL, NULL, "
        + ", ".join(text(f) for f in FIELDS)
        + ", "
        + lst("doc_ids")
        + ", "
        + lst("teams")
        + " FROM _parquet_src"
    )
    if on_chunk is not None:
        on_chunk(str(path), n)
    return n


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
