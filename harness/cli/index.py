"""``harness index``: serving indexes in a vector database (``harness.serving``): plan a
switch, build beside the serving index, swap the alias, roll back, prune, show."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.options import cache_option, data_option, device_option, seed_option, unknown_docs_option

db_option = click.option("--db", "db", required=True,
                         help="The vector database: a folder (Qdrant's embedded local mode) or a server's URL (http://host:6333).")
alias_option = click.option("--alias", "alias", default="search", show_default=True,
                            help="The serving name: the alias that queries read (NAME@previous keeps the rollback target).")
registry_option = click.option("--registry", "registry", envvar="HARNESS_REGISTRY",
                               help="The MLflow registry that models:/NAME/N and champion are read from (as harness models reads it).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group("index")
def index() -> None:
    """Serving indexes: plan a switch, build the new index beside the old one, swap the
    alias atomically, roll back, prune. ``docs/index.md`` has the cost model.

    \b
    Example:
      harness index plan --from dense --to dense:models/ft --data data/demo
      harness index build --db indexes --data data/demo --model dense:models/ft
      harness index swap --db indexes
      harness eval --data data/demo --retriever "qdrant:models/ft(db=indexes,alias=search)" --out out/served
      harness index rollback --db indexes
      harness index prune --db indexes
    """


def _corpus(data: Path, unknown_docs: str):
    from harness.data import load_dataset

    return load_dataset(data, unknown_docs=unknown_docs).corpus


def _cache(cache_dir: Path | None) -> Path:
    from harness.adapters import default_cache_dir

    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


@index.command("plan")
@click.option("--from", "source", required=True, help="The serving model version: dense, dense:PATH, models:/NAME/N or champion.")
@click.option("--to", "target", required=True, help="The model version to switch to (same forms as --from).")
@data_option
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Encoding workers to estimate the time for.")
@click.option("--documents", type=click.IntRange(min=1), help="Plan for a corpus of this many documents like --data's (all new).")
@registry_option
@unknown_docs_option
@cache_option
@seed_option
@device_option
@json_option
def plan(source, target, data, workers, documents, registry, unknown_docs, cache_dir, seed, as_json) -> None:
    """How many documents must be encoded, how long it takes here, and the storage of both
    indexes during the switch; throughput is measured now on a sample of the corpus.

    \b
    Example:
      harness index plan --from dense --to dense:models/ft --data data/demo --workers 4
      harness index plan --from champion --to challenger --data data/demo --documents 10000000
    """
    from harness.serving.plan import plan_switch
    from harness.serving.versions import resolve_version

    versions = resolve_version(source, registry, "--from"), resolve_version(target, registry, "--to")
    record = plan_switch(_corpus(data, unknown_docs), *versions, _cache(cache_dir), workers=workers, documents=documents, seed=seed)
    if as_json:
        click.echo(json.dumps(record, indent=1))
        return
    change = "model change: every text is encoded again" if record["model_changed"] else "same model: only new or changed texts"
    lines = [
        f"{record['from']['model']} -> {record['to']['model']} ({change})",
        f"documents {record['documents']:,}, distinct texts {record['distinct_texts']:,}, already in the embedding cache "
        f"{record['cached']:,}, to encode {record['to_encode']:,}",
        f"throughput here (measured on {record['sample']} documents): {record['encode_docs_per_s']:.1f} docs/s encoded, "
        f"{record['write_points_per_s']:.1f} points/s written",
        f"estimated time: {_duration(record['estimated_seconds'])} with 1 worker, "
        f"{_duration(record['estimated_seconds_with_workers'])} with {workers}",
        f"vectors {_size(record['vector_bytes'])}, new index {_size(record['index_bytes'])}; during the switch "
        f"both indexes: {_size(record['switch_bytes'])} (old {_size(record['old_index_bytes'])}) until harness index prune",
    ]
    if record["documents"] > record["local_mode_limit"]:
        lines.append(f"over {record['local_mode_limit']:,} documents: serve from a Qdrant server (--db http://host:6333); "
                     "the write rate above is the embedded local mode's, a server's is not measured here")
    click.echo("\n".join(lines))


@index.command("build")
@db_option
@data_option
@click.option("--model", "model", default="dense", show_default=True, help="The model version: dense, dense:PATH, models:/NAME/N or champion.")
@alias_option
@click.option("--batch", type=click.IntRange(min=1), default=256, show_default=True, help="Points written per request.")
@registry_option
@unknown_docs_option
@cache_option
@device_option
def build(db, data, model, alias, batch, registry, unknown_docs, cache_dir) -> None:
    """Write the corpus's index beside the serving one (blue-green); the alias is not touched.

    \b
    Example:
      harness index build --db indexes --data data/demo --model dense:models/ft --alias search
    """
    from harness.serving.build import build_index, check_serving_name
    from harness.serving.versions import resolve_version

    check_serving_name(alias)
    version = resolve_version(model, registry, "--model")
    built = build_index(db, _corpus(data, unknown_docs), version, alias, _cache(cache_dir), batch=batch)
    info = built.info
    if not built.new:
        click.echo(f"{info.collection}: already built and complete ({info.documents:,} documents of {info.model}); nothing to do")
    else:
        click.echo(f"built {info.collection}: {info.documents:,} documents of {info.model}, {built.encoded_documents:,} encoded "
                   f"in {built.encode_seconds:.1f} s (the rest from the embedding cache), written in {built.write_seconds:.1f} s")
    click.echo(f"serve it: harness index swap --db {db} --alias {alias} --to {info.collection}")


@index.command("swap")
@db_option
@alias_option
@click.option("--to", "collection", help="The index to serve (default: the newest complete index built for the alias).")
def swap(db, alias, collection) -> None:
    """Point the serving alias at an index in one atomic change; the one it served is kept
    as the rollback target.

    \b
    Example:
      harness index swap --db indexes --alias search --to search-1a2b3c4d-5e6f7a8b
    """
    from harness.errors import HarnessError
    from harness.serving.store import COMPLETE, open_store

    with open_store(db) as store:
        if collection is None:
            serving = store.aliases().get(alias)
            candidates = [i for i in store.indexes() if i.serves == alias and i.state == COMPLETE and i.collection != serving]
            if not candidates:
                raise HarnessError(f"--db {db}: no complete index built for {alias!r} that it does not serve already")
            collection = candidates[-1].collection
        previous = store.swap(alias, collection)
    click.echo(f"{alias} -> {collection}" + (f" (was {previous}; harness index rollback points it back)" if previous else ""))


@index.command("rollback")
@db_option
@alias_option
def rollback(db, alias) -> None:
    """Point the serving alias back at the index it served before the last swap.

    \b
    Example:
      harness index rollback --db indexes --alias search
    """
    from harness.serving.store import open_store

    with open_store(db) as store:
        current, previous = store.rollback(alias)
    click.echo(f"{alias} -> {previous} (was {current})")


@index.command("prune")
@db_option
@click.option("--keep-previous", is_flag=True, help="Keep the rollback targets (NAME@previous) too.")
def prune(db, keep_previous) -> None:
    """Delete every index no alias serves: incomplete builds, and the old indexes (so no rollback) unless --keep-previous.

    \b
    Example:
      harness index prune --db indexes --keep-previous
    """
    from harness.serving.store import open_store

    with open_store(db) as store:
        pruned = store.prune(keep_previous)
    click.echo(f"pruned {len(pruned)} index(es)" + "".join(f"\n  {i.collection} ({i.state}, {i.model})" for i in pruned))


@index.command("status")
@db_option
@json_option
def status(db, as_json) -> None:
    """The database's indexes (state, model, corpus, what serves them) and aliases.

    \b
    Example:
      harness index status --db indexes
    """
    from dataclasses import asdict

    from harness.serving.store import open_store

    with open_store(db) as store:
        aliases, indexes = store.aliases(), store.indexes()
    if as_json:
        click.echo(json.dumps({"aliases": aliases, "indexes": [asdict(i) for i in indexes]}, indent=1))
        return
    served = {}
    for alias, target in aliases.items():
        served.setdefault(target, []).append(alias)
    click.echo(f"{db}: {len(indexes)} index(es)")
    for i in indexes:
        version = f" (registry {i.registry['name']} v{i.registry['version']})" if i.registry else ""
        click.echo(f"  {i.collection}  {i.state}  {i.documents:,} docs  {i.model}{version}  fingerprint {i.fingerprint}  "
                   f"corpus {i.corpus_hash[:12]}  built {i.built_at}  serves: {', '.join(sorted(served.get(i.collection, []))) or '-'}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
