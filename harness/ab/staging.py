"""Reading log files into the ingest's staging table: JSONL, CSV and Parquet, each row
kept with its line and raw text so that the validation (harness.ab.ingest) can quarantine
it by file and line.

* JSON is parsed inside DuckDB (JSON functions), so a malformed line never raises; a
  scalar field given as an object, an array or a boolean is a type error of that row.
* CSV is read record by record (a quoted field may span lines); ``doc_ids`` and
  ``teams`` are ``a|b|c`` or a JSON array, in CSV and in Parquet string columns.
* A CSV or Parquet file with an unknown column, or without the columns its records need,
  is an error of the whole file (``check_columns``), raised before any file is read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError, located

CHUNK_LINES = 200_000
MAX_RAW = 2000

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
# the columns each record type needs (the validation would quarantine every row of a
# tabular file without one); a header that names any of a type's own columns must hold all
SHARED_COLUMNS = ("event_id", "ts")
REQUIRED_COLUMNS = {
    "exposures": ("experiment_id", "variant", "user_id", "doc_ids"),
    "interactions": ("exposure_id", "position", "kind"),
}


def file_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return fmt
    raise HarnessError(f"{path}: unknown log format (expected .jsonl, .csv or .parquet)")


_STAGE_DDL = (
    "CREATE TEMP TABLE _stage (line BIGINT, raw VARCHAR, parse_error VARCHAR, type_error VARCHAR, "
    + ", ".join(f"{f} VARCHAR" for f in FIELDS)
    + ", doc_ids VARCHAR[], doc_ids_error BOOLEAN, teams VARCHAR[], teams_error BOOLEAN)"
)


def stage(con, path: Path, on_chunk) -> int:
    """Read a log file into a new temporary table ``_stage`` (one text column per field,
    the line and raw text of each row) and return the rows read."""
    fmt = file_format(path)
    con.execute("DROP TABLE IF EXISTS _stage")
    con.execute(_STAGE_DDL)
    if fmt == "jsonl":
        return _stage_jsonl(con, path, on_chunk)
    if fmt == "csv":
        return _stage_csv(con, path, on_chunk)
    return _stage_parquet(con, path, on_chunk)


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


def check_columns(con, path: Path) -> None:
    """Raise where a CSV or Parquet file's columns could only see every row rejected."""
    fmt = file_format(path)
    if fmt == "csv":
        _csv_records(path)
    elif fmt == "parquet":
        _parquet_source(con, path)


def _check_header(path: Path, line: int | None, kind: str, names: list[str]) -> None:
    known = set(FIELDS) | set(LIST_FIELDS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise located(path, line, f"unknown {kind} column(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    present = set(names)
    types = [t for t, own in REQUIRED_COLUMNS.items() if present & set(own)]
    if not types:
        raise located(path, line, f"no {kind} column of exposures ({', '.join(REQUIRED_COLUMNS['exposures'])}) "
                                  f"or of interactions ({', '.join(REQUIRED_COLUMNS['interactions'])})")
    missing = {t: [c for c in (*SHARED_COLUMNS, *REQUIRED_COLUMNS[t]) if c not in present] for t in types}
    if any(missing.values()):
        raise located(path, line, "; ".join(
            f"missing {kind} column(s) for {t}: {', '.join(cols)}" for t, cols in missing.items() if cols
        ) + " (every row would be rejected)")


def _csv_records(path: Path):
    """A CSV file's header (aliases resolved, checked; None when the file is empty) and a
    reader of the records after it."""
    # csv needs whole records (a quoted field may span lines): feed it the lines back
    reader = csv.reader(line + "\n" for line in _read_lines(path))
    try:
        header = next(reader)
    except StopIteration:
        return None, reader
    header = [ALIASES.get(h.strip(), h.strip()) for h in header]
    _check_header(path, 1, "CSV", header)
    return header, reader


def _stage_csv(con, path: Path, on_chunk) -> int:
    import pyarrow as pa

    header, reader = _csv_records(path)
    if header is None:
        return 0
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


def _parquet_source(con, path: Path):
    """A Parquet file as a relation (with its row numbers) and its columns by field name
    (aliases resolved, checked)."""
    import duckdb

    try:
        rel = con.read_parquet(str(path), file_row_number=True)
    except duckdb.Error as exc:
        raise HarnessError(f"{path}: cannot read Parquet: {exc}") from exc
    columns = {ALIASES.get(c, c): c for c in rel.columns if c != "file_row_number"}
    _check_header(path, None, "Parquet", list(columns))
    return rel, columns


def _stage_parquet(con, path: Path, on_chunk) -> int:
    rel, columns = _parquet_source(con, path)
    rel.create_view("_parquet_src", replace=True)
    types = dict(zip(rel.columns, [str(t) for t in rel.types], strict=True))

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
