"""A model version as ``harness index`` names it: a dense spec (``dense``, ``dense:PATH``,
with its options) or a registry reference (``models:/NAME/3``, ``models:/NAME/champion``,
or ``champion`` / ``challenger`` / ``3`` of the default registered model)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.adapters.spec import Spec
from harness.errors import HarnessError

REGISTRY_REFERENCE = re.compile(r"models:/(?P<name>[^/]+)/(?P<ref>[^/]+)")
REGISTRY_ALIASES = ("champion", "challenger")


@dataclass(frozen=True)
class ModelVersion:
    spec: Spec  # a dense spec: what encodes the documents and the queries
    registry: dict[str, Any] | None = None  # uri, name, version, fingerprint when read from the registry


def resolve_version(text: str, registry: str | None = None, option: str = "--to") -> ModelVersion:
    """The dense spec that ``text`` names; a registry reference is read (never changed) in
    the MLflow registry ``registry`` (``--registry``, as ``harness models`` reads it)."""
    reference = REGISTRY_REFERENCE.fullmatch(text)
    if reference or text in REGISTRY_ALIASES or text.lstrip("v").isdigit():
        from harness.registry import DEFAULT_MODEL, ModelRegistry

        name, ref = (reference["name"], reference["ref"]) if reference else (DEFAULT_MODEL, text)
        books = ModelRegistry(registry, name)
        version = books.get(ref)
        return ModelVersion(Spec(kind="dense", value=version.path),
                            {"uri": books.uri, "name": name, "version": version.number, "fingerprint": version.fingerprint})
    spec = Spec.parse(text)
    if spec.kind != "dense":
        raise HarnessError(f"{option} {text}: a model version is a dense spec (dense, dense:PATH) or a registry "
                           f"reference (models:/NAME/3, champion), not a {spec.kind} retriever")
    return ModelVersion(spec)
