"""``harness models``: model versions in an MLflow registry (``harness.registry``):
list, show, register, promote, rollback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

registry_option = click.option(
    "--registry", "registry", envvar="HARNESS_REGISTRY",
    help="MLflow tracking URI, or an SQLite file (default: $MLFLOW_TRACKING_URI, else ./mlflow.db; or $HARNESS_REGISTRY).",
)
name_option = click.option("--name", "name", default="embedder", show_default=True, help="The registered model's name.")
who_option = click.option("--who", help="Who decides (default: the login name), for the audit.")
db_option = click.option("--db", "db", type=click.Path(path_type=Path),
                         help="An A/B DuckDB store: the change is also a row of its decisions audit table.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
serving_option = click.option(
    "--serving", "serving", help="A vector database (harness index --db) whose serving alias follows the champion: "
    "the new champion's complete index is swapped in (checked before the registry changes).")
serving_alias_option = click.option("--alias", "alias", default="search", show_default=True,
                                    help="With --serving: the serving alias (harness index --alias).")
result_option = click.option("--result", "results", multiple=True, type=click.Path(path_type=Path),
                             help="A result that judged the model (eval, compare, gate or ab-decision JSON; repeatable).")


@click.group("models")
def models() -> None:
    """Model versions with lineage, a champion and a challenger, in an MLflow registry.

    Exit codes: 0 done, 1 refused by a check (no passing gate, the gate judged another
    model, nothing to roll back), 3 error.

    \b
    Example:
      harness models register models/ft --registry models.db
      harness gate --policy gate.toml --out out/gate
      harness models promote challenger --gate out/gate/gate.json --registry models.db
      harness models rollback --reason "CTR fell" --registry models.db
    """


def _open(registry, name, create=False):
    from harness.registry import ModelRegistry

    return ModelRegistry(registry, name, create)


def _refusing(action):
    """Run ``action``; a refusal is printed and exits 1 (errors still exit 3)."""
    from harness.registry import Refused

    try:
        return action()
    except Refused as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)


@models.command("list")
@registry_option
@name_option
@json_option
def list_versions(registry, name, as_json) -> None:
    """Every version: fingerprint, aliases, parent, what judged it, where it is.

    \b
    Example:
      harness models list --registry models.db
    """
    versions = _open(registry, name).versions()
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in versions], indent=1))
        return
    click.echo(f"{name}: {len(versions)} version(s)")
    for v in versions:
        judged = ", ".join(j["kind"] + "".join(f" {j[k]}" for k in ("status", "decision") if k in j) for j in v.judged)
        fields = [f"v{v.number}", v.fingerprint, ",".join(v.aliases) or "-", f"parent v{v.parent}" if v.parent else "no parent",
                  v.tags.get("harness.kind", "model"), f"judged by {judged}" if judged else "not judged", v.path]
        click.echo("  " + "  ".join(fields))


@models.command("show")
@click.argument("ref", default="champion")
@registry_option
@name_option
@json_option
def show(ref, registry, name, as_json) -> None:
    """One version (a number or an alias; default champion): lineage, training data, card,
    the results that judged it and its promotions and rollbacks.

    \b
    Example:
      harness models show champion --registry models.db
      harness models show 3 --registry models.db --json
    """
    registry = _open(registry, name)
    version = registry.get(ref)
    lineage = registry.lineage(version)
    history = registry.history(version.number)
    if as_json:
        click.echo(json.dumps({**version.to_dict(), "lineage": [v.number for v in lineage], "history": history}, indent=1))
        return
    tags = version.to_dict()["tags"]
    aliases = f" ({', '.join(version.aliases)})" if version.aliases else ""
    click.echo(f"{name} v{version.number}{aliases}: {version.path}")
    click.echo(f"  fingerprint {version.fingerprint}, {tags.get('kind', 'model')}, registered by "
               f"{tags.get('registered_by')} at {tags.get('registered_at')}")
    click.echo("  lineage: " + " <- ".join(f"v{v.number} ({v.fingerprint})" for v in lineage)
               + (f" <- base {tags['base_model']}" if tags.get("base_model") else ""))
    trained = {k: tags[k] for k in ("training_source", "dataset_hash", "pairs_hash", "pairs_file", "pairs_sha256", "log_window") if tags.get(k)}
    if trained:
        click.echo("  trained on: " + ", ".join(f"{k} {v}" for k, v in trained.items()))
    for item in version.judged:
        rest = {k: v for k, v in item.items() if k not in ("kind", "path", "sha256", "attached_at", "aggregates", "comparisons")}
        click.echo(f"  judged by {item['kind']} {item['path']}: {json.dumps(rest, default=str)}")
    for event in history:
        if event["event"] == "register":
            continue
        line = f"  {event['at']} {event['event']} v{event['version']}"
        if event.get("previous_champion"):
            line += f" (champion before: v{event['previous_champion']})"
        unfinished = f" [{event['run_status']}: not completed]" if event["run_status"] != "FINISHED" else ""
        click.echo(f"{line} by {event['by']} via {event['via']}: {event['reason']}{unfinished}")
    click.echo(f"  MLflow run {version.run_id} at {registry.uri}")


@models.command("register")
@click.argument("model")
@click.option("--parent", help="The version it was trained from (default: the version registered from the base its card names).")
@click.option("--pairs", type=click.Path(path_type=Path), help="The `harness ab pairs` file it was trained on (hash and log window are recorded).")
@click.option("--alias", type=click.Choice(["challenger", "champion", "none"]), default="challenger", show_default=True,
              help="champion only while there is none (the first champion has nothing to be gated against).")
@result_option
@who_option
@registry_option
@name_option
def register(model, parent, pairs, alias, results, who, registry, name) -> None:
    """Register a model folder (or default: the base MiniLM) with its fingerprint, lineage,
    card and training data; the same weights again give their version back.

    \b
    Example:
      harness models register default --alias champion --registry models.db
      harness models register models/ft --result out/eval/result.json --registry models.db
    """
    registry = _open(registry, name, create=True)
    version, created = _refusing(lambda: registry.register(
        model, parent=parent, pairs=pairs, results=list(results), alias=None if alias == "none" else alias, who=who))
    what = "registered" if created else "already registered as"
    click.echo(f"{what} {name} v{version.number} ({version.fingerprint})" + (f", {', '.join(version.aliases)}" if version.aliases else "")
               + (f", parent v{version.parent}" if version.parent else ""))


@models.command("promote")
@click.argument("ref", default="challenger")
@click.option("--gate", type=click.Path(path_type=Path), help="The gate.json of a passing gate of this version against the champion.")
@click.option("--force", is_flag=True, help="Promote without a passing gate; needs --reason, recorded with --who.")
@click.option("--reason", help="Why (recorded; required with --force).")
@result_option
@who_option
@db_option
@serving_option
@serving_alias_option
@registry_option
@name_option
def promote(ref, gate, force, reason, results, who, db, serving, alias, registry, name) -> None:
    """Make a version (default: the challenger) the champion, after a passing gate whose
    candidate is this version and whose baseline is the champion; exit 1 when refused.
    With --serving, the serving alias then points at the new champion's index.

    \b
    Example:
      harness models promote challenger --gate out/gate/gate.json --registry models.db --db ab.duckdb
      harness models promote challenger --gate out/gate/gate.json --registry models.db --serving indexes
      harness models promote 4 --force --reason "hotfix, gate rerun tomorrow" --registry models.db
    """
    registry = _open(registry, name)

    def change():
        return registry.promote(ref, gate=gate, force=force, reason=reason, results=list(results), who=who, ab_store=db)

    def tell(outcome):
        version, before = outcome
        click.echo(f"promoted {name} v{version.number} to champion" + (f" (replacing v{before.number})" if before else "")
                   + (" by force" if force else ""))

    _following(serving, alias, registry, registry.get(ref) if serving else None, change, tell, "promote")


@models.command("rollback")
@click.option("--reason", required=True, help="Why (recorded).")
@who_option
@db_option
@serving_option
@serving_alias_option
@registry_option
@name_option
def rollback(reason, who, db, serving, alias, registry, name) -> None:
    """Give the champion alias back to the champion before the current one, in one step;
    with --serving, the serving alias goes back to that champion's index too.

    \b
    Example:
      harness models rollback --reason "guardrail latency regressed" --registry models.db
      harness models rollback --reason "CTR fell" --registry models.db --serving indexes
    """
    registry = _open(registry, name)
    target = _refusing(registry.rollback_target)[1] if serving else None

    def tell(outcome):
        restored, retired = outcome
        click.echo(f"rolled back {name}: v{restored.number} is the champion again (v{retired.number} retired)")

    _following(serving, alias, registry, target, lambda: registry.rollback(reason=reason, who=who, ab_store=db), tell,
               "rollback")


def _following(serving, alias, registry, champion, change, tell, event):
    """Run the registry ``change`` (refusals exit 1) and ``tell`` its outcome; with ``serving``,
    the champion-to-be's index is found first (none: an error before anything changes) and
    served after."""
    if not serving:
        tell(_refusing(change))
        return
    from harness.errors import HarnessError
    from harness.files import signals_held
    from harness.serving.build import check_serving_name
    from harness.serving.follow import index_of, serve
    from harness.serving.store import is_url, open_store

    check_serving_name(alias)
    if not is_url(serving) and not Path(serving).expanduser().is_dir():  # opening it would create an empty database
        raise HarnessError(f"--serving {serving}: no vector database there (harness index build makes one)")
    with open_store(serving) as store:
        index = index_of(store, alias, champion.fingerprint, champion.number)
        # a Ctrl-C between the registry's change and the alias swap would leave them naming
        # different champions: it is held back until both are done, noted and told
        with signals_held():
            outcome = _refusing(change)
            swapped = serve(store, alias, index)
            registry.note_serving(champion, swapped.record(serving, event))
            tell(outcome)
            click.echo(f"{alias} -> {swapped.collection}" + (f" (was {swapped.previous})" if swapped.previous else "")
                       + f" in {serving}")
