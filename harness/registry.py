"""Model versions in MLflow's model registry: lineage, champion and challenger, promotion
and rollback, with an audit of every change.

The registry is MLflow's (``MlflowClient``): its SQLite backend is the embedded default
(``--registry models.db`` or ``sqlite:///...``) and a tracking URI reaches a team's server.
Each registered model version is one MLflow run (``harness.event = register``: the card's
parameters as params, its validation figures and those of every judging result as
metrics, the card, training log, pairs header and judging files as artifacts) and one
model version whose source is the model folder where it already is: weights are not
copied (a MiniLM is 90 MB); the version's fingerprint, checked against the folder's
weights at registration, says which weights it names. Version tags (``harness.*``) hold
the lineage: fingerprint, parent version, base model, training data and what judged it.

Champion and challenger are the registry's aliases (stages are deprecated in MLflow).
A version becomes champion only after a passing gate whose candidate is that version and
whose baseline is the current champion (or with ``force`` and a reason, recorded as
such); a rollback gives the alias back to the champion before it in one step. Every
promotion and rollback is an MLflow run (``harness.event``: who, what, when, why), a tag
on the version, and, when an A/B store is given, a row of its ``decisions`` audit table.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.registry_evidence import Evidence, GateVerdict, read_evidence, read_gate, refusals
from harness.registry_folder import CARD_FILES, card_metrics, model_folder, training_record, weights_fingerprint

DEFAULT_MODEL = "embedder"
DEFAULT_REGISTRY = "mlflow.db"  # MLflow's own default file name for its SQLite backend
CHAMPION, CHALLENGER = "champion", "challenger"
PREFIX = "harness."


class Refused(HarnessError):
    """A check refused the change (exit 1): no passing gate, not the gate's candidate, ..."""


@dataclass
class Version:
    model: str
    number: int
    path: str
    fingerprint: str
    parent: int | None
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None

    @property
    def judged(self) -> list[dict[str, Any]]:
        return json.loads(self.tags.get(PREFIX + "judged", "[]"))

    def to_dict(self) -> dict[str, Any]:
        tags = {k.removeprefix(PREFIX): v for k, v in self.tags.items() if k.startswith(PREFIX) and k != PREFIX + "judged"}
        return {"model": self.model, "version": self.number, "path": self.path, "fingerprint": self.fingerprint,
                "parent": self.parent, "aliases": self.aliases, "run_id": self.run_id, "tags": tags, "judged": self.judged}


def registry_uri(value: str | None = None, create: bool = False) -> str:
    """A tracking URI as given; a plain path is an SQLite file (the embedded default:
    ``$MLFLOW_TRACKING_URI`` if set, else ``mlflow.db`` here), made only with ``create``
    (registering), so that reading a mistyped path does not leave an empty registry."""
    value = value or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_REGISTRY
    if "://" in value or value.startswith("databricks"):
        return value
    path = Path(value).expanduser().resolve()
    if not path.parent.is_dir():
        raise HarnessError(f"--registry {value}: folder {path.parent} does not exist")
    if path.is_dir():
        raise HarnessError(f"--registry {value}: is a folder, not an SQLite file")
    if not create and not path.exists():
        raise HarnessError(f"--registry {value}: no registry there ({path} does not exist; `harness models register` makes one)")
    return f"sqlite:///{path}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ModelRegistry:
    """One registered model (``name``) of an MLflow registry."""

    def __init__(self, uri: str | None = None, name: str = DEFAULT_MODEL, create: bool = False) -> None:
        self.uri = registry_uri(uri, create)
        if not re.fullmatch(r"[\w.\- ]+", name):
            raise HarnessError(f"--name {name!r}: a registered model's name here is letters, digits, '_', '-', '.' and spaces")
        self.name = name
        # set before mlflow is imported: its telemetry decides at import time; a user's own setting wins
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            raise HarnessError(f"the model registry needs MLflow ({exc}): pip install 'embedding-harness[registry]'") from None
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    # ------------------------------------------------------------------------- reading

    def versions(self) -> list[Version]:
        with self._errors():
            aliases = self._aliases()
            found, token = [], None
            while True:
                page = self.client.search_model_versions(f"name = '{self.name}'", page_token=token)
                found += page
                token = page.token
                if not token:
                    break
        return sorted((self._version(v, aliases) for v in found), key=lambda v: v.number)

    def get(self, ref: str | int) -> Version:
        """A version by number (``3``, ``v3``) or alias (``champion``, ``challenger``)."""
        text = str(ref).strip()
        versions = self.versions()
        if text.lower().lstrip("v").isdigit():
            number = int(text.lower().lstrip("v"))
            match = [v for v in versions if v.number == number]
        else:
            match = [v for v in versions if text in v.aliases]
        if not match:
            known = ", ".join(f"v{v.number}" + "".join(f" ({a})" for a in v.aliases) for v in versions) or "none"
            raise HarnessError(f"{self.uri}: model {self.name!r} has no version {text!r} (versions: {known})")
        return match[0]

    def alias(self, alias: str) -> Version | None:
        return next((v for v in self.versions() if alias in v.aliases), None)

    def lineage(self, version: Version) -> list[Version]:
        """The version and its ancestors, newest first."""
        chain, by_number = [version], {v.number: v for v in self.versions()}
        while chain[-1].parent is not None and chain[-1].parent in by_number and len(chain) <= len(by_number):
            chain.append(by_number[chain[-1].parent])
        return chain

    def history(self, version: int | None = None) -> list[dict[str, Any]]:
        """Every registration, promotion and rollback (oldest first), or those of one version."""
        experiment = self._experiment(create=False)
        if experiment is None:
            return []
        events, token = [], None
        with self._errors():
            while True:
                page = self.client.search_runs([experiment], order_by=["attributes.start_time ASC"], page_token=token)
                events += [json.loads(r.data.tags[PREFIX + "record"]) | {"run_id": r.info.run_id, "run_status": r.info.status}
                           for r in page if PREFIX + "record" in r.data.tags]
                token = page.token
                if not token:
                    break
        return [e for e in events if version is None or version in (e.get("version"), e.get("previous_champion"))]

    # ------------------------------------------------------------------------- changing

    def register(self, model: str | Path, *, parent: str | int | None = None, pairs: Path | None = None,
                 results: list[Path] = (), alias: str | None = CHALLENGER, who: str | None = None) -> tuple[Version, bool]:
        """Register a model folder (``default``: the base MiniLM); returns the version and
        whether it is new (the same weights already registered give their version back,
        with ``results`` attached). ``alias`` ``challenger`` (the default), ``champion``
        (only while there is none: the first champion has nothing to be gated against)
        or None."""
        who = who or getpass.getuser()
        folder, card = model_folder(model)
        fingerprint = weights_fingerprint(folder, card)
        evidence = [read_evidence(p, fingerprint) for p in results]  # every input checked before anything is written
        training = training_record(card, pairs)
        existing = next((v for v in self.versions() if v.fingerprint == fingerprint), None)
        champion = self.alias(CHAMPION)
        if alias == CHAMPION and champion is not None and (existing is None or champion.number != existing.number):
            raise Refused(f"model {self.name!r} has a champion (v{champion.number}): a new version becomes champion "
                          "through `harness models promote` after a passing gate")
        version = existing or self._create_version(folder, card, fingerprint, training, self._parent(parent, card, folder), who)
        self._attach(version, evidence, who)
        if alias == CHAMPION and champion is None:
            self._promote(version, None, who, reason="the first champion: there is no champion to gate it against",
                          via="registration", forced=False, overridden=[], store=None)
        elif alias == CHALLENGER and existing is None:
            with self._errors():
                self.client.set_registered_model_alias(self.name, CHALLENGER, str(version.number))
        return self.get(version.number), existing is None

    def _create_version(self, folder: Path, card: dict[str, Any], fingerprint: str, training: dict[str, Any],
                        parent: Version | None, who: str) -> Version:
        """One MLflow run (params, metrics, card and training data as artifacts) and the
        model version it produced, whose source is the folder where it is."""
        tags = {
            "fingerprint": fingerprint, "path": str(folder), "kind": card.get("kind", "model"),
            "parent": "" if parent is None else str(parent.number),
            "base_model": card.get("base_model", ""), "base_model_path": card.get("base_model_path", ""),
            "registered_by": who, "registered_at": now(), **{k: v for k, v in training.items() if isinstance(v, str)},
        }
        record: dict[str, Any] = {"event": "register", "by": who, "at": tags["registered_at"], "reason": f"registered {folder}",
                                  "parent": parent.number if parent else None}
        params = {"path": str(folder), "fingerprint": fingerprint, **{k: tags[k] for k in ("base_model", "base_model_path", "parent")},
                  **{f"train.{k}": v for k, v in card.get("parameters", {}).items()}}
        with self._event(f"register {folder.name}", record, who) as run:
            self._log(run, params=params, metrics=card_metrics(card))
            for name in CARD_FILES:
                if (folder / name).is_file():
                    self.client.log_artifact(run, str(folder / name), "card")
            if training:
                self.client.log_dict(run, training, "training/data.json")
            self._ensure_registered_model()
            created = self.client.create_model_version(
                self.name, source=str(folder), run_id=run, description=f"{tags['kind']} at {folder}",
                tags={PREFIX + k: v for k, v in tags.items()},
            )
            number = record["version"] = int(created.version)
        return self.get(number)

    def promote(self, ref: str | int = CHALLENGER, *, gate: Path | None = None, force: bool = False,
                reason: str | None = None, results: list[Path] = (), who: str | None = None,
                ab_store: Path | None = None) -> tuple[Version, Version | None]:
        """Make a version the champion; returns it and the champion it replaced.

        Refused (``Refused``, exit 1) unless ``gate`` is a passing gate whose candidate is
        this version and whose baseline is the current champion; ``force`` overrides that,
        needs a ``reason``, and the overridden refusals are recorded with it."""
        who = who or getpass.getuser()
        if force and not (reason or "").strip():
            raise HarnessError("--force needs --reason: a forced promotion is recorded with who forced it and why")
        with _audit_store(ab_store) as store:
            version = self.get(ref)
            champion = self.alias(CHAMPION)
            if champion is not None and champion.number == version.number:
                raise Refused(f"v{version.number} is already the champion of {self.name!r}")
            verdict = read_gate(gate) if gate is not None else None
            evidence = [read_evidence(p, version.fingerprint) for p in results]
            refused = refusals(version, champion, verdict)
            if refused and not force:
                raise Refused("; ".join(refused))
            if verdict is not None and version.fingerprint in verdict.candidate_fingerprints:
                evidence.append(read_evidence(verdict.path, version.fingerprint))
            self._attach(version, evidence, who)
            if force:
                via = "force" + (f" (gate {verdict.path}: {verdict.status})" if verdict else " (no gate)")
            else:
                via = f"gate {verdict.path}: {verdict.status}"
            self._promote(version, champion, who, reason=reason or f"passed the gate {verdict.path}", via=via, forced=force,
                          overridden=refused if force else [], store=store, verdict=verdict,
                          experiment=next((e.summary["experiment"] for e in evidence if e.kind == "ab-decision"), None))
        return self.get(version.number), champion

    def rollback(self, *, reason: str, who: str | None = None, ab_store: Path | None = None) -> tuple[Version, Version]:
        """Give the champion alias back to the champion before the current one, in one step;
        returns (restored, rolled back)."""
        who = who or getpass.getuser()
        if not (reason or "").strip():
            raise HarnessError("rollback needs --reason: every rollback is recorded with who did it and why")
        with _audit_store(ab_store) as store:
            current, restored = self.rollback_target()
            record = {"event": "rollback", "version": restored.number, "previous_champion": current.number, "by": who,
                      "at": now(), "reason": reason, "via": "rollback"}

            def change() -> None:
                self.client.set_registered_model_alias(self.name, CHAMPION, str(restored.number))
                self._tag(current, rolled_back=json.dumps(record))

            self._audited(record, who, store, experiment=None, numbers={}, change=change)
        return self.get(restored.number), self.get(current.number)

    def rollback_target(self) -> tuple[Version, Version]:
        """(the champion, the champion before it that a rollback restores); Refused when there is none."""
        current = self.alias(CHAMPION)
        if current is None:
            raise Refused(f"model {self.name!r} has no champion to roll back")
        previous = current.tags.get(PREFIX + "previous_champion", "")
        if not previous:
            raise Refused(f"v{current.number} was the first champion of {self.name!r}: there is none before it to restore")
        return current, self.get(previous)

    def note_serving(self, version: Version, record: dict[str, Any]) -> None:
        """Record on the version which serving index its promotion or rollback swapped in."""
        with self._errors():
            self._tag(version, serving=json.dumps(record))

    # ------------------------------------------------------------------------- internals

    def _promote(self, version: Version, champion: Version | None, who: str, *, reason: str, via: str, forced: bool,
                 overridden: list[str], store: Any, verdict: GateVerdict | None = None,
                 experiment: str | None = None) -> None:
        record = {"event": "promote", "version": version.number,
                  "previous_champion": None if champion is None else champion.number, "by": who, "at": now(),
                  "reason": reason, "via": via, "forced": forced, "overridden": overridden,
                  "gate": None if verdict is None else {"path": str(verdict.path), "sha256": verdict.sha256,
                                                        "status": verdict.status, "failed_checks": verdict.failed}}

        def change() -> None:
            self.client.set_registered_model_alias(self.name, CHAMPION, str(version.number))
            self._tag(version, promotion=json.dumps(record), previous_champion="" if champion is None else str(champion.number))
            if self._aliases().get(CHALLENGER) == version.number:
                self.client.delete_registered_model_alias(self.name, CHALLENGER)

        self._audited(record, who, store, experiment=experiment,
                      numbers=verdict.evidence().summary if verdict else {}, change=change)

    def _tag(self, version: Version, **tags: str) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version.number), PREFIX + key, value)

    def _audited(self, record: dict[str, Any], who: str, store: Any, *,
                 experiment: str | None, numbers: dict[str, Any], change) -> None:
        """Run ``change`` inside an MLflow run that records the event (left FAILED if the
        change fails), then write the A/B store's audit row (``store``, opened before any
        check, so a bad one stops everything before any change) naming that run."""
        from harness.ab.decide import EXIT
        from harness.ab.decide import record as record_decision

        with self._event(f"{record['event']} v{record['version']}", record, who) as run:
            change()
            if store is not None:
                reasons = [record["reason"], f"via {record['via']}", *(f"overridden: {r}" for r in record.get("overridden", []))]
                decision = {"decision": record["event"], "exit_code": EXIT[record["event"]],  # the table's: 0 promote, 1 roll back
                            "treatments": [{"treatment": f"{self.name} v{record['version']}", "reasons": reasons, "metrics": numbers}]}
                inputs = {"registry": self.uri, "model": self.name, "mlflow_run_id": run, **record}
                record["audit_id"] = record_decision(store, experiment or f"model-registry:{self.name}", decision, inputs, who)

    def _attach(self, version: Version, evidence: list[Evidence], who: str) -> None:
        judged = version.judged
        new = [e for e in evidence if e.sha256 not in {j["sha256"] for j in judged}]
        if not new:
            return
        with self._errors():
            for item in new:
                judged.append(item.record() | {"attached_by": who, "attached_at": now()})
                if version.run_id:
                    self.client.log_artifact(version.run_id, str(item.path), f"judged/{len(judged):02d}-{item.kind}")
                    self._log(version.run_id, metrics=item.metrics)
            self._tag(version, judged=json.dumps(judged))

    def _parent(self, parent: str | int | None, card: dict[str, Any], folder: Path) -> Version | None:
        """The explicit parent, checked against the card's base model; else the latest version
        registered from the folder the card says it was trained from."""
        base = card.get("base_model_path")
        base_path = str(Path(base).expanduser().resolve()) if base else None
        if parent is not None:
            chosen = self.get(parent)
            if base_path and chosen.path != base_path:
                raise HarnessError(f"{folder}: its card says it was trained from {base_path}, not from "
                                   f"v{chosen.number} ({chosen.path})")
            return chosen
        return next((v for v in reversed(self.versions()) if base_path and v.path == base_path), None)

    def _version(self, mv: Any, aliases: dict[str, int]) -> Version:
        tags = dict(mv.tags or {})
        parent = tags.get(PREFIX + "parent", "")
        return Version(self.name, int(mv.version), tags.get(PREFIX + "path", mv.source), tags.get(PREFIX + "fingerprint", ""),
                       int(parent) if parent else None, sorted(a for a, n in aliases.items() if n == int(mv.version)),
                       tags, mv.run_id)

    def _aliases(self) -> dict[str, int]:
        from mlflow.exceptions import MlflowException

        try:
            return {a: int(n) for a, n in self.client.get_registered_model(self.name).aliases.items()}
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(self.name, description="embedding model versions registered by embedding-harness")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _experiment(self, create: bool = True) -> str | None:
        with self._errors():
            name = f"embedding-harness/{self.name}"
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            if not create:
                return None
            # next to the SQLite file, not MLflow's ./mlruns of whatever folder the command ran in
            location = None
            if self.uri.startswith("sqlite:///"):
                database = Path(self.uri.removeprefix("sqlite:///"))
                location = (database.parent / f"{database.stem}-artifacts").resolve().as_uri()
            return self.client.create_experiment(name, artifact_location=location)

    @contextmanager
    def _event(self, title: str, record: dict[str, Any], who: str):
        """The MLflow run of one change: it says from its start what it does, ends FAILED
        (and stays in the history) if the change fails, else FINISHED with ``record`` as
        the change left it (version number, audit id)."""
        with self._errors():
            tags = {PREFIX + "event": record["event"], PREFIX + "record": json.dumps(record), "mlflow.user": who}
            run = self.client.create_run(self._experiment(), run_name=title, tags=tags).info.run_id
            try:
                yield run
            except BaseException:
                self.client.set_terminated(run, "FAILED")
                raise
            self.client.set_tag(run, PREFIX + "record", json.dumps(record))
            self.client.set_terminated(run, "FINISHED")

    def _log(self, run: str, params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None) -> None:
        from mlflow.entities import Metric, Param

        stamp = int(datetime.now(timezone.utc).timestamp() * 1000)
        self.client.log_batch(run, metrics=[Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()],
                              params=[Param(k, str(v)) for k, v in (params or {}).items()])

    @contextmanager
    def _errors(self):
        """MLflow's exceptions as one-line harness errors that name the registry."""
        try:
            yield
        except HarnessError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("mlflow", "sqlalchemy", "alembic", "requests")):
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise HarnessError(f"{self.uri}: {first}") from exc
            raise


@contextmanager
def _audit_store(path: Path | None):
    """The A/B store whose ``decisions`` table also records the change (None: none)."""
    if path is None:
        yield None
        return
    from harness.ab import schema

    store = schema.connect(path, create=False)
    try:
        yield store
    finally:
        store.close()
