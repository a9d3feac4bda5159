"""``harness ab``: online A/B tests of retrievers over a DuckDB log store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from harness.errors import HarnessError

db_option = click.option("--db", "db", type=click.Path(path_type=Path), help="The DuckDB log store (a file).")
parquet_option = click.option(
    "--parquet",
    "parquet",
    type=click.Path(path_type=Path),
    help="Analyse Parquet files where they are instead of a store: DIR/experiment*.json, DIR/**/exposures*.parquet, DIR/**/interactions*.parquet.",
)
experiment_option = click.option("--experiment", "experiment_id", help="Experiment id (default: the only one in the store).")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed, recorded in the result.")


def _analysis_options(f):
    options = [
        click.option("--dwell", "dwell", type=float, default=30.0, show_default=True, help="Seconds of dwell that make a click a success."),
        click.option("--propensity", "propensity", help="Position propensities, comma-separated from rank 1 (default: estimated from the logs)."),
        click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level."),
        click.option("--mde", type=float, default=0.02, show_default=True, help="Relative lift the power analysis asks about."),
        click.option("--no-cuped", is_flag=True, help="Do not use the pre-period as a CUPED covariate."),
        click.option("--bootstrap", type=int, default=0, show_default=True, help="Bootstrap resamples for the primary metric (0: none)."),
        click.option("--as-of", "as_of", help="Analyse only the logs before this ISO time (replay a daily look)."),
        click.option("--horizon-days", type=int, help="Planned duration in days (default: the experiment's end - start)."),
        click.option("--no-daily", is_flag=True,
                     help="Skip the per-day effects and sequential intervals (then decide needs --method fixed); "
                          "the analysis then reads the per-user sums the ingest keeps: the fastest."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group()
def ab() -> None:
    """Online A/B tests: ingest logs, simulate, analyse, decide, interleave.

    \b
    Example:
      harness ab simulate --out logs --users 20000 --days 14 --effect 0.03
      harness ab ingest --db ab.duckdb --experiment logs/experiment.json 'logs/*.jsonl'
      harness ab analyze --db ab.duckdb --out analysis.json
      harness ab decide --db ab.duckdb --out decision.json
    """


# --------------------------------------------------------------------------- ingest


@ab.command()
@click.option("--db", "db", type=click.Path(path_type=Path), required=True, help="The DuckDB log store (created if missing).")
@click.option("--experiment", "experiments", multiple=True, type=click.Path(path_type=Path), help="An experiment definition (JSON) to register first (repeatable).")
@click.argument("files", nargs=-1)
def ingest(db, experiments, files) -> None:
    """Load JSONL, CSV or Parquet logs (files or globs) into the store.

    Every row is validated; a bad row goes to the quarantine table with its file, line
    and reason. For each file ingested + quarantined = read is checked. A file already
    loaded (same content) is skipped; each file is one transaction.

    \b
    Example:
      harness ab ingest --db ab.duckdb --experiment logs/experiment.json 'logs/*.jsonl'
    """
    from rich.console import Console
    from rich.table import Table

    from harness.ab import ingest as ing
    from harness.ab import schema

    if not files and not experiments:
        raise HarnessError("nothing to ingest: give log files and/or --experiment FILE")
    con = schema.connect(db)
    try:
        for path in experiments:
            schema.register_experiment(con, schema.load_experiment_file(path))
        reports = ing.ingest(con, files) if files else []
        console = Console()
        table = Table(title=f"ingest into {db}")
        for col in ("file", "read", "ingested", "quarantined", "check"):
            table.add_column(col, justify="left" if col == "file" else "right")
        for r in reports:
            ok = r.ingested + r.quarantined == r.read
            table.add_row(
                r.file, str(r.read), str(r.ingested), str(r.quarantined),
                ("already ingested" if r.skipped else "ok") if ok else "MISMATCH",
            )
        console.print(table)
        reasons = con.execute(
            "SELECT reason, count(*) FROM quarantine WHERE file IN (SELECT unnest(?)) GROUP BY ALL ORDER BY 2 DESC LIMIT 8",
            [[r.file for r in reports if not r.skipped]],
        ).fetchall() if reports else []
        for reason, n in reasons:
            console.print(f"  quarantined {n:>8}  {reason}")
        if any(r.ingested + r.quarantined != r.read for r in reports):
            raise HarnessError("ingested + quarantined != read for some file")
    finally:
        con.close()


# --------------------------------------------------------------------------- simulate


@ab.command()
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output folder for experiment.json and the logs.")
@click.option("--data", "data", type=click.Path(path_type=Path), help="A BEIR dataset: serve its queries, judge with its qrels (default: synthetic).")
@click.option("--retriever", "retrievers", multiple=True, help="A retriever spec per variant (repeatable, with --data).")
@click.option("--run", "runs", multiple=True, help="VARIANT=FILE: a TREC run file per variant instead of a retriever (repeatable, with --data).")
@click.option("--split", default="test", show_default=True, help="The qrels split used as true relevance.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), envvar="HARNESS_CACHE", help="Cache folder for indexes.")
@click.option("--variant", "variants", multiple=True, help="Variant names (repeatable; default control, treatment or the specs).")
@click.option("--experiment-id", default="exp-1", show_default=True)
@click.option("--users", type=int, default=10_000, show_default=True)
@click.option("--days", type=int, default=14, show_default=True)
@click.option("--queries-per-day", type=float, default=0.5, show_default=True, help="Mean queries per user and day.")
@click.option("--effect", type=float, default=0.0, show_default=True, help="True relative lift of attractiveness in non-control variants.")
@click.option("--novelty", type=float, default=0.0, show_default=True, help="Extra lift on day 0 fading over --novelty-days.")
@click.option("--novelty-days", type=float, default=3.0, show_default=True)
@click.option("--pre-days", type=int, default=7, show_default=True, help="Days of pre-period logs (CUPED).")
@click.option("--srm", type=float, default=0.0, help="Fault: share of treatment users whose logs are lost.")
@click.option("--duplicates", type=float, default=0.0, help="Fault: share of events written twice.")
@click.option("--malformed", type=float, default=0.0, help="Fault: share of lines corrupted (jsonl, csv).")
@click.option("--late", type=float, default=0.0, help="Fault: share of interactions delivered in a later file.")
@click.option("--interleave", is_flag=True, help="Emit team-draft interleaved logs of the first two variants.")
@click.option("--guardrail-margin", type=float, default=0.05, show_default=True, help="Relative non-inferiority margin of the guardrails.")
@click.option("--synthetic-queries", type=int, default=1000, show_default=True, help="Queries of the synthetic catalogue.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl", show_default=True)
@seed_option
def simulate(out, data, retrievers, runs, split, cache_dir, variants, experiment_id, users, days, queries_per_day, effect,
             novelty, novelty_days, pre_days, srm, duplicates, malformed, late, interleave, guardrail_margin, synthetic_queries, fmt, seed) -> None:
    """Write realistic search logs of an experiment.

    With --data, the dataset's queries are served by real rankers (--retriever specs or
    --run files) and its qrels are the true relevance; without it, a synthetic
    catalogue is served by every variant (an A/A test unless --effect is set).

    \b
    Example:
      harness ab simulate --out logs --users 20000 --effect 0.03 --malformed 0.001
      harness ab simulate --out logs --data data/demo --retriever bm25 --retriever dense
    """
    from rich.console import Console

    from harness.ab import simulate as sim

    if data is None:
        if retrievers or runs:
            raise HarnessError("--retriever and --run need --data")
        names = list(variants) or ["control", "treatment"]
        cat = sim.synthetic_rankings(synthetic_queries, seed=seed, variants=names)
    else:
        names, rankings, qrels, texts = _dataset_rankings(data, retrievers, runs, split, cache_dir, variants)
        cat = sim.catalogue_from_runs(rankings, qrels, texts)
        specs = dict(zip(names[len(runs):], retrievers, strict=True)) if retrievers else None
    cfg = sim.SimConfig(
        experiment_id=experiment_id, variants=names, n_users=users, days=days, queries_per_user_day=queries_per_day,
        effect=effect, novelty=novelty, novelty_days=novelty_days, pre_days=pre_days, srm=srm, duplicates=duplicates,
        malformed=malformed, late=late, interleave=interleave, seed=seed, guardrail_margin=guardrail_margin,
        retrievers=specs if data is not None else None,
    )
    summary = sim.write(cat, cfg, out, fmt)
    console = Console()
    console.print(
        f"wrote {summary['exposures']} exposures and {summary['interactions'] + summary['late_interactions']} interactions "
        f"to {out} ({summary['duplicates']} duplicated, {summary['malformed_lines']} malformed, "
        f"{summary['late_interactions']} late)"
    )
    for metric, by_v in summary["true_effects"].items():
        console.print(f"  true {metric}: " + ", ".join(f"{v} {x:.4f}" for v, x in by_v.items()))


def _dataset_rankings(data, retrievers, runs, split, cache_dir, variants):
    from harness.data import load_dataset

    ds = load_dataset(data)
    qrels = ds.split(split).qrels
    texts = {qid: ds.queries[qid].text for qid in qrels if qid in ds.queries}
    rankings: dict[str, dict[str, list[str]]] = {}
    specs = list(retrievers)
    names = list(variants)
    for run in runs:
        if "=" not in run:
            raise HarnessError(f"--run {run!r}: expected VARIANT=FILE")
        name, path = run.split("=", 1)
        rankings[name] = read_trec_run(Path(path))
    if specs:
        from harness.adapters import build_retriever

        spec_names = names[len(rankings):] if names else specs
        if len(spec_names) != len(specs):
            raise HarnessError("give one --variant name per --retriever, or none")
        for name, spec in zip(spec_names, specs, strict=True):
            retriever = build_retriever(spec, cache_dir)
            retriever.build(ds.corpus)
            run = retriever.search({qid: texts[qid] for qid in texts}, k=10)
            rankings[name] = {qid: run.ranking(qid) for qid in texts}
    if len(rankings) < 2:
        raise HarnessError("simulate with --data needs at least two variants (--retriever or --run)")
    return list(rankings), rankings, qrels, texts


def read_trec_run(path: Path) -> dict[str, list[str]]:
    """A TREC run file (``qid Q0 docid rank score tag``) as qid -> doc ids by score."""
    from harness.errors import located

    if not path.is_file():
        raise HarnessError(f"{path}: run file does not exist")
    scored: dict[str, list[tuple[float, str]]] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise located(path, n, f"expected 6 fields (qid Q0 docid rank score tag), got {len(parts)}")
            try:
                score = float(parts[4])
            except ValueError as exc:
                raise located(path, n, f"score {parts[4]!r} is not a number") from exc
            scored.setdefault(parts[0], []).append((score, parts[2]))
    return {q: [d for _, d in sorted(v, key=lambda x: (-x[0], x[1]))] for q, v in scored.items()}


# --------------------------------------------------------------------------- analyze


def _open(db, parquet):
    from harness.ab import schema

    if (db is None) == (parquet is None) and parquet is None:
        raise HarnessError("give --db FILE or --parquet DIR")
    if parquet is not None:
        return schema.connect_parquet(parquet)
    if not Path(db).is_file():
        raise HarnessError(f"{db}: database does not exist (run `harness ab ingest --db {db} ...` first)")
    return schema.connect(db, read_only=False)


def _make_options(dwell, propensity, alpha, mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed):
    from datetime import datetime

    from harness.ab.analysis import Options

    props = None
    if propensity:
        try:
            props = [float(x) for x in propensity.split(",") if x.strip()]
        except ValueError as exc:
            raise HarnessError(f"--propensity {propensity!r}: expected comma-separated numbers") from exc
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of.replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError as exc:
            raise HarnessError(f"--as-of {as_of!r} is not an ISO 8601 time") from exc
    if not 0 < alpha < 1:
        raise HarnessError("--alpha must be in (0, 1)")
    return Options(dwell_threshold=dwell, propensities=props, alpha=alpha, mde=mde, cuped=not no_cuped,
                   bootstrap=bootstrap, as_of=when, horizon_days=horizon_days, daily=not no_daily, seed=seed)


def run_analysis(con, experiment_id, opts):
    import ibis

    from harness.ab import schema
    from harness.ab.analysis import analyze as run

    exp = schema.get_experiment(con, experiment_id or schema.only_experiment(con))
    backend = ibis.duckdb.from_connection(con)
    return exp, run(backend, exp, opts, duckdb_con=con)


def _write(out: Path | None, kind: str, seed: int, body: dict) -> dict:
    from harness import provenance

    doc = {"schema_version": 1, "kind": kind, "provenance": provenance.collect(seed=seed)} | body
    if out is not None:
        from harness.files import write_json

        write_json(out, doc, default=str, allow_nan=False)
    return doc


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


def print_analysis(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    exp = res["experiment"]
    srm = res["srm"]
    console.print(
        f"experiment [bold]{exp['experiment_id']}[/bold]: users {srm['users']}, SRM chi-square p = {srm['pvalue']:.3g}"
        + (" [red]MISMATCH[/red]" if srm["mismatch"] else "")
    )
    table = Table(title="effects (treatment - control), users as units")
    for col in ("treatment", "metric", "control", "treatment value", "effect", "95% CI", "Holm p", "sequential CI", "users needed"):
        table.add_column(col)
    for e in res["effects"]:
        seq = f"[{_fmt(e.get('seq_ci_lower'))}, {_fmt(e.get('seq_ci_upper'))}]" if "seq_ci_lower" in e else "-"
        table.add_row(
            e["treatment"], e["metric"] + (" *" if e["metric"] == exp["primary_metric"] else ""),
            _fmt(e["control_value"]), _fmt(e["treatment_value"]), _fmt(e["effect_size"]),
            f"[{_fmt(e['effect_size_ci_lower'])}, {_fmt(e['effect_size_ci_upper'])}]", _fmt(e["pvalue_holm"], 3), seq,
            str(e.get("power", {}).get("users_needed", "-")),
        )
    console.print(table)


@ab.command()
@db_option
@parquet_option
@experiment_option
@click.option("--out", "out", type=click.Path(path_type=Path), help="Write the ab-analysis result (JSON) here.")
@click.option("--offline", "offline", type=click.Path(path_type=Path),
              help="An offline eval result of the variants' retrievers: report whether it predicted the online effect.")
@click.option("--offline-map", "offline_map", multiple=True,
              help="VARIANT=SPEC (repeatable), or the experiment.json of `ab simulate --retriever` (default: variants named after specs).")
@click.option("--offline-suite", help="Suite of the offline result (default: the first with all the specs).")
@click.option("--offline-metric", help="Offline metric (default: ndcg@10 when present).")
@_analysis_options
@seed_option
def analyze(db, parquet, experiment_id, out, offline, offline_map, offline_suite, offline_metric, dwell, propensity, alpha,
            mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed) -> None:
    """Analyse an experiment: per-variant ranking metrics, effects with intervals (delta
    method, CUPED), SRM, Holm, power, the per-day effect and the always-valid sequential
    interval of every day.

    \b
    Example:
      harness ab analyze --db ab.duckdb --experiment exp-1 --out analysis.json
      harness ab analyze --parquet logs/ --out analysis.json
    """
    from harness.ab import offline as off

    opts = _make_options(dwell, propensity, alpha, mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed)
    offline_result = mapping = None
    if offline is not None:  # read before the analysis: a wrong file fails fast
        from harness.results import read_eval_result

        offline_result = read_eval_result(offline)
        mapping = off.parse_mapping(offline_map)
        if not offline_map and parquet is not None:
            recorded = sorted(Path(parquet).glob("experiment*.json"))
            try:
                has_specs = bool(recorded) and "retrievers" in json.loads(recorded[0].read_text(encoding="utf-8"))
            except (OSError, ValueError):
                has_specs = False  # the analysis reports an unreadable experiment file
            if has_specs:
                mapping = off.parse_mapping([str(recorded[0])])
    elif offline_map or offline_suite or offline_metric:
        raise HarnessError("--offline-map, --offline-suite and --offline-metric need --offline RESULT.json")
    con = _open(db, parquet)
    try:
        _, res = run_analysis(con, experiment_id, opts)
    finally:
        con.close()
    res["source"] = {"db": str(db) if db else None, "parquet": str(parquet) if parquet else None}
    if offline_result is not None:
        res["offline_online"] = off.agreement(res, offline_result, source=str(offline), mapping=mapping,
                                              suite=offline_suite, metric=offline_metric, seed=seed)
    _write(out, "ab-analysis", seed, res)
    print_analysis(res)
    if offline_result is not None:
        off.print_agreement(res["offline_online"])


# --------------------------------------------------------------------------- decide


@ab.command()
@db_option
@parquet_option
@experiment_option
@click.option("--analysis", "analysis_file", type=click.Path(path_type=Path), help="Decide from this ab-analysis file instead of analysing again.")
@click.option("--method", type=click.Choice(["sequential", "fixed"]), default="sequential", show_default=True,
              help="sequential: always-valid intervals, valid whenever you look; fixed: only at the planned end.")
@click.option("--who", help="Who decides (default: the login name), for the audit table.")
@click.option("--out", "out", type=click.Path(path_type=Path), help="Write the ab-decision result (JSON) here.")
@_analysis_options
@seed_option
def decide(db, parquet, experiment_id, analysis_file, method, who, out, dwell, propensity, alpha, mde, no_cuped,
           bootstrap, as_of, horizon_days, no_daily, seed) -> None:
    """Promote, hold or roll back; exit 0 promote, 1 roll back, 2 hold, 3 error.

    Promote when the primary metric is significantly better and every guardrail is
    non-inferior; roll back when any guardrail is significantly worse; hold otherwise.
    A sample-ratio mismatch blocks any decision. Each decision is written to the
    store's audit table (decisions).

    \b
    Example:
      harness ab decide --db ab.duckdb --out decision.json; echo $?
    """
    from rich.console import Console

    from harness.ab import decide as dec
    from harness.ab import schema
    from harness.results import read_result

    opts = _make_options(dwell, propensity, alpha, mde, no_cuped, bootstrap, as_of, horizon_days, no_daily, seed)
    if analysis_file is not None:
        analysis = read_result(analysis_file)
        if analysis.get("kind") != "ab-analysis":
            raise HarnessError(f"{analysis_file}: not an ab-analysis result (kind {analysis.get('kind')!r})")
        con = schema.connect(db) if db else None
    else:
        con = _open(db, parquet)
        _, analysis = run_analysis(con, experiment_id, opts)
        if parquet is not None:
            con.close()
            con = schema.connect(db) if db else None
    try:
        result = dec.decide(analysis, method=method, alpha=alpha)
        inputs = {
            "db": str(db) if db else None, "parquet": str(parquet) if parquet else None,
            "analysis_file": str(analysis_file) if analysis_file else None, "method": method, "alpha": alpha,
            "analysis_window": analysis.get("analysis_window"), "srm": analysis["srm"],
        }
        audit_id = None
        if con is not None:
            audit_id = dec.record(con, analysis["experiment"]["experiment_id"], result, inputs, who)
    finally:
        if con is not None:
            con.close()
    _write(out, "ab-decision", seed, {"experiment": analysis["experiment"], "analysis": analysis, "decision": result, "audit_id": audit_id})
    console = Console()
    print_analysis(analysis)
    colour = {"promote": "green", "rollback": "red", "hold": "yellow"}[result["decision"]]
    console.print(f"decision: [bold {colour}]{result['decision'].upper()}[/bold {colour}]" + (f" {result['variant']}" if result["variant"] else ""))
    for t in result["treatments"]:
        for reason in t["reasons"]:
            console.print(f"  {t['treatment']}: {reason}")
    if audit_id is None:
        console.print("  (no --db: the decision was not written to an audit table)")
    if result["exit_code"]:
        raise SystemExit(result["exit_code"])


# --------------------------------------------------------------------------- interleave


@ab.command()
@click.option("--data", "data", type=click.Path(path_type=Path), help="Build interleaved rankings for this dataset's queries.")
@click.option("--retriever", "retrievers", multiple=True, help="Two retriever specs (A then B), with --data.")
@click.option("--run", "runs", multiple=True, help="Two TREC run files (A then B) instead of retrievers.")
@click.option("--split", default="test", show_default=True)
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), envvar="HARNESS_CACHE")
@db_option
@parquet_option
@experiment_option
@click.option("--out", "out", type=click.Path(path_type=Path), help="Interleaved rankings (JSONL) or the analysis (JSON).")
@click.option("--alpha", type=float, default=0.05, show_default=True)
@seed_option
def interleave(data, retrievers, runs, split, cache_dir, db, parquet, experiment_id, out, alpha, seed) -> None:
    """Team-draft interleaving: build interleaved rankings of two rankers (--data), or
    analyse the credited clicks of interleaved logs (--db / --parquet).

    \b
    Example:
      harness ab interleave --data data/demo --retriever bm25 --retriever dense --out interleaved.jsonl
      harness ab simulate --out il --interleave --effect 0.05 && harness ab ingest --db il.duckdb --experiment il/experiment.json 'il/*.jsonl'
      harness ab interleave --db il.duckdb --out interleaving.json
    """
    from rich.console import Console

    from harness.ab import interleave as il
    from harness.ab import schema
    from harness.ab.analysis import Options

    console = Console()
    if data is not None:
        if out is None:
            raise HarnessError("--out FILE is needed for the interleaved rankings")
        names, rankings, _, _ = _dataset_rankings(data, retrievers, [f"{'AB'[i]}={r}" if "=" not in r else r for i, r in enumerate(runs)], split, cache_dir, ())
        if len(names) != 2:
            raise HarnessError("interleaving takes exactly two rankers")
        rows = il.interleave_runs(rankings[names[0]], rankings[names[1]], seed=seed, names=(names[0], names[1]))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        console.print(f"wrote {len(rows)} interleaved rankings of {names[0]} and {names[1]} to {out}")
        return
    con = _open(db, parquet)
    try:
        import ibis

        exp = schema.get_experiment(con, experiment_id or schema.only_experiment(con))
        res = il.analyze_interleaving(ibis.duckdb.from_connection(con), exp, Options(alpha=alpha))
    finally:
        con.close()
    _write(out, "ab-interleaving", seed, res)
    console.print(
        f"interleaving {res['a']} vs {res['b']}: {res['impressions']} impressions, {res['users']} users; "
        f"wins {res['a']} {res['wins_a']}, {res['b']} {res['wins_b']}, ties {res['ties']}"
    )
    console.print(
        f"preference for {res['b']}: {_fmt(res['preference'])} [{_fmt(res['ci_lower'])}, {_fmt(res['ci_upper'])}], "
        f"p = {_fmt(res['pvalue'], 3)}; winner: {res['winner'] or 'none yet'}"
    )
