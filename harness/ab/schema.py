"""The DuckDB schema of the A/B log store and the connection helpers.

Tables (documented in docs/ab.md):

``experiments``
    one row per experiment: its variants and traffic split, the control, start and end,
    the primary metric and the guardrails (with a relative non-inferiority margin).
``exposures``
    one row per result page shown: event id, experiment, variant, user, session, query
    id and text, timestamp (UTC), the ranked doc ids shown, the model version, and for
    interleaved pages the team of each position.
``interactions``
    one row per click or conversion: event id, the exposure it belongs to, doc id,
    1-based position, kind (``click`` or ``conversion``), dwell time in seconds,
    timestamp.
``quarantine``
    every rejected input row, with its file, line, reason and raw text, and the content
    hash of its file (``harness ab ingest --retry-quarantined`` re-validates a file's rows
    by it).
``ingested_files``
    one row per file loaded (by content hash): read, ingested and quarantined counts.
``exposure_outcomes``
    one row per exposure with its interactions reduced (clicks, first click position,
    longest click dwell, conversion, positions clicked), kept up to date by every ingest
    (harness.ab.outcomes); the analysis reads it instead of joining the raw logs.
``user_outcomes``
    one row per (experiment, user): the sums of the pre-period and of the experiment's
    window, clicks per position; kept up to date by every ingest (harness.ab.outcomes).
``decisions``
    the audit trail of ``harness ab decide``: who, when, inputs, numbers, decision.

Every statement that carries a user-supplied value binds it as a parameter; table and
column names are constants of this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, located

SCHEMA_VERSION = 3  # 2: exposure_outcomes and user_outcomes; 3: quarantine.sha256

METRICS = (
    "ctr",
    "success_rate",
    "mrr",
    "abandonment",
    "clicks_per_query",
    "ipw_clicks_per_query",
    "conversion_rate",
    "queries_per_user",
)
# +1: higher is better, -1: lower is better
METRIC_DIRECTION = {name: 1 for name in METRICS} | {"abandonment": -1}

DDL = [
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS experiments (
        experiment_id VARCHAR PRIMARY KEY,
        variants VARCHAR[] NOT NULL,
        traffic_split DOUBLE[] NOT NULL,
        control VARCHAR NOT NULL,
        start_ts TIMESTAMP NOT NULL,
        end_ts TIMESTAMP,
        primary_metric VARCHAR NOT NULL,
        guardrails VARCHAR[] NOT NULL,
        guardrail_margin DOUBLE NOT NULL,
        description VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS exposures (
        event_id VARCHAR PRIMARY KEY,
        experiment_id VARCHAR NOT NULL,
        variant VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        session_id VARCHAR,
        query_id VARCHAR,
        query_text VARCHAR,
        ts TIMESTAMP NOT NULL,
        doc_ids VARCHAR[] NOT NULL,
        teams VARCHAR[],
        model_version VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS interactions (
        event_id VARCHAR PRIMARY KEY,
        exposure_id VARCHAR NOT NULL,
        doc_id VARCHAR,
        position INTEGER NOT NULL,
        kind VARCHAR NOT NULL,
        dwell_s DOUBLE,
        ts TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        file VARCHAR NOT NULL,
        line BIGINT,
        reason VARCHAR NOT NULL,
        raw VARCHAR,
        quarantined_at TIMESTAMP NOT NULL,
        sha256 VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS ingested_files (
        file VARCHAR NOT NULL,
        sha256 VARCHAR PRIMARY KEY,
        rows_read BIGINT NOT NULL,
        rows_ingested BIGINT NOT NULL,
        rows_quarantined BIGINT NOT NULL,
        ingested_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id VARCHAR PRIMARY KEY,
        experiment_id VARCHAR NOT NULL,
        decided_at TIMESTAMP NOT NULL,
        decided_by VARCHAR NOT NULL,
        decision VARCHAR NOT NULL,
        exit_code INTEGER NOT NULL,
        reasons VARCHAR[] NOT NULL,
        inputs JSON NOT NULL,
        numbers JSON NOT NULL
    )""",
]


def connect(db: str | Path | None, create: bool = True):
    """Open the store, upgrading an older one. ``None`` or ``":memory:"`` opens an in-memory
    one. Where ``db`` does not exist a new store is made only with ``create`` (ingest and
    registration); an existing database must be a harness store (its ``meta`` table holds
    a schema version this harness reads) or hold no table at all, so the harness's tables
    never land in somebody else's database."""
    import duckdb

    path = ":memory:" if db is None else str(db)
    if path != ":memory:":
        if Path(path).is_dir():
            raise HarnessError(f"{path}: is a directory, not a DuckDB store")
        if not create and not Path(path).is_file():
            raise HarnessError(f"{path}: database does not exist (run `harness ab ingest --db {path} ...` first)")
    try:
        con = duckdb.connect(path)
    except duckdb.Error as exc:
        raise HarnessError(f"{path}: cannot open the database: {exc}") from exc
    try:
        _check_store(con, path, create)
    except BaseException:
        con.close()
        raise
    con.execute("SET TimeZone = 'UTC'")
    for statement in DDL:
        con.execute(statement)
    _upgrade(con)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    from harness.ab import outcomes

    con.execute(outcomes.DDL)
    con.execute(outcomes.USERS_DDL)
    if not outcomes.is_current(con):  # a store from before the table, or written around the ingest
        outcomes.refresh(con)
    return con


@contextmanager
def writing(db: str | Path) -> Iterator[Any]:
    """A connection for ingest and registration. A new store is built in a partial file
    beside ``db`` and renamed to ``db`` only when the block succeeds, so a failed ingest
    leaves no store behind (``harness.files.staged``, which also clears what a killed
    ingest left); an existing store is written in place (each ingested file is one
    transaction)."""
    from harness.files import staged

    db = Path(db)
    if db.exists():
        con = connect(db)
        try:
            yield con
        finally:
            con.close()
        return
    with staged(db) as (partial,):
        con = connect(partial)
        try:
            yield con
            con.execute("CHECKPOINT")  # everything in the main file: nothing left in a WAL beside it
        except BaseException:
            con.close()
            partial.with_name(partial.name + ".wal").unlink(missing_ok=True)
            raise
        con.close()


def _check_store(con, path: str, create: bool) -> None:
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    ).fetchall()}
    if not tables:
        if not create:
            raise HarnessError(f"{path}: not a harness A/B store (the database is empty; `harness ab ingest --db {path} ...` makes one)")
        return
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() if "meta" in tables else []
    if not version:
        raise HarnessError(
            f"{path}: not a harness A/B store (no meta table with a schema version); the harness writes only into its own stores"
        )
    if not version[0][0].isdigit() or int(version[0][0]) > SCHEMA_VERSION:
        raise HarnessError(
            f"{path}: store schema version {version[0][0]!r} is not one this harness reads (up to {SCHEMA_VERSION}): a newer harness wrote it"
        )


def _upgrade(con) -> None:
    """Bring a store of an older schema version up to this one."""
    has_hash = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_name = 'quarantine' AND column_name = 'sha256'"
    ).fetchall()[0][0]
    if not has_hash:  # version 2: quarantined rows knew their file by name only
        con.execute("ALTER TABLE quarantine ADD COLUMN sha256 VARCHAR")
        # a name that several contents were ingested under stays ambiguous (NULL): a retry of
        # those files says so instead of guessing
        con.execute(
            "UPDATE quarantine SET sha256 = f.sha256 FROM (SELECT file, any_value(sha256) AS sha256 FROM ingested_files "
            "GROUP BY file HAVING count(*) = 1) f WHERE quarantine.file = f.file"
        )


def connect_parquet(folder: str | Path):
    """An in-memory DuckDB whose ``experiments``, ``exposures`` and ``interactions`` are
    views over Parquet files that stay where they are (``--parquet DIR``).

    Layout: ``DIR/experiment*.json`` (one or more experiment definitions),
    ``DIR/**/exposures*.parquet`` and ``DIR/**/interactions*.parquet`` with the store's
    column names.
    """
    import duckdb

    root = Path(folder)
    if not root.is_dir():
        raise HarnessError(f"{root}: Parquet folder does not exist")
    exposures = sorted(str(p) for p in root.rglob("exposures*.parquet"))
    interactions = sorted(str(p) for p in root.rglob("interactions*.parquet"))
    if not exposures:
        raise HarnessError(f"{root}: no exposures*.parquet files found")
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(DDL[1])  # experiments
    for path in sorted(root.glob("experiment*.json")):
        register_experiment(con, load_experiment_file(path))
    # file lists go through the relational API, never into SQL text: a path with a quote
    # cannot change a query
    rel = con.read_parquet(exposures, union_by_name=True)
    rel.create_view("_exposures_files")
    con.execute(_view_sql("exposures", "_exposures_files", EXPOSURE_COLUMNS, set(rel.columns)))
    if interactions:
        rel = con.read_parquet(interactions, union_by_name=True)
        rel.create_view("_interactions_files")
        con.execute(_view_sql("interactions", "_interactions_files", INTERACTION_COLUMNS, set(rel.columns)))
    else:
        con.execute(DDL[3])
    return con


EXPOSURE_COLUMNS = {
    "event_id": "VARCHAR",
    "experiment_id": "VARCHAR",
    "variant": "VARCHAR",
    "user_id": "VARCHAR",
    "session_id": "VARCHAR",
    "query_id": "VARCHAR",
    "query_text": "VARCHAR",
    "ts": "TIMESTAMP",
    "doc_ids": "VARCHAR[]",
    "teams": "VARCHAR[]",
    "model_version": "VARCHAR",
}
INTERACTION_COLUMNS = {
    "event_id": "VARCHAR",
    "exposure_id": "VARCHAR",
    "doc_id": "VARCHAR",
    "position": "INTEGER",
    "kind": "VARCHAR",
    "dwell_s": "DOUBLE",
    "ts": "TIMESTAMP",
}


def _view_sql(name: str, source: str, columns: dict[str, str], present: set[str]) -> str:
    # names are constants of this module, never user input
    casts = ", ".join(
        f"CAST({col if col in present else 'NULL'} AS {typ}) AS {col}" for col, typ in columns.items()
    )
    return f"CREATE VIEW {name} AS SELECT {casts} FROM {source}"


@dataclass
class ExperimentConfig:
    experiment_id: str
    variants: list[str]
    traffic_split: list[float]
    control: str
    start: datetime
    end: datetime | None = None
    primary_metric: str = "ctr"
    guardrails: list[str] = field(default_factory=lambda: ["abandonment", "queries_per_user"])
    guardrail_margin: float = 0.02
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "variants": self.variants,
            "traffic_split": self.traffic_split,
            "control": self.control,
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "primary_metric": self.primary_metric,
            "guardrails": self.guardrails,
            "guardrail_margin": self.guardrail_margin,
            "description": self.description,
        }


def _parse_time(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise HarnessError(f"{where}: {value!r} is not an ISO 8601 timestamp") from exc
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def parse_experiment(data: Any, source: str = "experiment") -> ExperimentConfig:
    """Validate an experiment definition (a JSON object) and return it."""
    if not isinstance(data, dict):
        raise HarnessError(f"{source}: an experiment definition must be a JSON object")
    known = set(ExperimentConfig.__dataclass_fields__) | {"start", "end", "true_effects", "simulation", "retrievers"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise HarnessError(f"{source}: unknown experiment field(s): {', '.join(unknown)}")
    for key in ("experiment_id", "variants", "start"):
        if key not in data:
            raise HarnessError(f"{source}: experiment field {key!r} is missing")
    exp_id = data["experiment_id"]
    if not isinstance(exp_id, str) or not exp_id:
        raise HarnessError(f"{source}: experiment_id must be a non-empty string")
    variants = data["variants"]
    if (
        not isinstance(variants, list)
        or len(variants) < 2
        or not all(isinstance(v, str) and v for v in variants)
        or len(set(variants)) != len(variants)
    ):
        raise HarnessError(f"{source}: variants must be a list of at least two distinct non-empty names")
    split = data.get("traffic_split") or [1.0 / len(variants)] * len(variants)
    if (
        not isinstance(split, list)
        or len(split) != len(variants)
        or not all(isinstance(x, int | float) and x > 0 for x in split)
    ):
        raise HarnessError(f"{source}: traffic_split must hold one positive number per variant")
    total = float(sum(split))
    split = [float(x) / total for x in split]
    control = data.get("control", variants[0])
    if control not in variants:
        raise HarnessError(f"{source}: control {control!r} is not one of the variants")
    start = _parse_time(data["start"], source)
    end = _parse_time(data["end"], source) if data.get("end") else None
    if end is not None and end <= start:
        raise HarnessError(f"{source}: end must be after start")
    primary = data.get("primary_metric", "ctr")
    guardrails = data.get("guardrails", ["abandonment", "queries_per_user"])
    for name in [primary, *guardrails]:
        if name not in METRICS:
            raise HarnessError(f"{source}: unknown metric {name!r} (known: {', '.join(METRICS)})")
    margin = data.get("guardrail_margin", 0.02)
    if not isinstance(margin, int | float) or not 0 <= margin < 1:
        raise HarnessError(f"{source}: guardrail_margin must be a relative margin in [0, 1)")
    return ExperimentConfig(
        experiment_id=exp_id,
        variants=list(variants),
        traffic_split=split,
        control=control,
        start=start,
        end=end,
        primary_metric=primary,
        guardrails=[g for g in guardrails if g != primary],
        guardrail_margin=float(margin),
        description=str(data.get("description", "")),
    )


def load_experiment_file(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise HarnessError(f"{path}: experiment file does not exist") from exc
    except json.JSONDecodeError as exc:
        raise located(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    return parse_experiment(data, str(path))


def register_experiment(con, exp: ExperimentConfig) -> bool:
    """Insert an experiment; an identical re-registration is a no-op, a different one an error.
    Returns True when a row was added."""
    existing = get_experiment(con, exp.experiment_id, missing_ok=True)
    if existing is not None:
        if existing.to_json() != exp.to_json():
            raise HarnessError(
                f"experiment {exp.experiment_id!r} is already registered with a different definition"
            )
        return False
    con.execute(
        "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            exp.experiment_id,
            exp.variants,
            exp.traffic_split,
            exp.control,
            exp.start,
            exp.end,
            exp.primary_metric,
            exp.guardrails,
            exp.guardrail_margin,
            exp.description,
        ],
    )
    return True


def get_experiment(con, experiment_id: str, missing_ok: bool = False) -> ExperimentConfig | None:
    rows = con.execute(
        "SELECT experiment_id, variants, traffic_split, control, start_ts, end_ts, primary_metric, "
        "guardrails, guardrail_margin, description FROM experiments WHERE experiment_id = ?",
        [experiment_id],
    ).fetchall()
    row = rows[0] if rows else None
    if row is None:
        if missing_ok:
            return None
        known = [r[0] for r in con.execute("SELECT experiment_id FROM experiments ORDER BY 1").fetchall()]
        raise HarnessError(
            f"experiment {experiment_id!r} is not in the store (known: {', '.join(known) or 'none'})"
        )
    return ExperimentConfig(
        experiment_id=row[0],
        variants=list(row[1]),
        traffic_split=list(row[2]),
        control=row[3],
        start=row[4],
        end=row[5],
        primary_metric=row[6],
        guardrails=list(row[7]),
        guardrail_margin=row[8],
        description=row[9] or "",
    )


def only_experiment(con) -> str:
    rows = [r[0] for r in con.execute("SELECT experiment_id FROM experiments ORDER BY 1").fetchall()]
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise HarnessError("the store holds no experiment: ingest one with --experiment FILE")
    raise HarnessError(f"the store holds several experiments, pick one with --experiment ({', '.join(rows)})")
