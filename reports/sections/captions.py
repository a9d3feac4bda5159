"""What every section says about where its numbers come from: versions, machine and
command (provenance), the dataset with its hashes, the models with their fingerprints."""

from __future__ import annotations

from typing import Any

from harness.reports.formatting import short

KEY_LIBRARIES = ("sentence-transformers", "torch", "transformers", "ranx", "bm25s", "mteb")
AB_LIBRARIES = ("tea-tasting", "ibis-framework", "duckdb", "statsmodels", "scipy")
STATS_LIBRARIES = ("scipy", "statsmodels", "numpy")


def versions(prov: dict[str, Any], libraries: tuple[str, ...] = KEY_LIBRARIES) -> str:
    libs = prov.get("libraries") or {}
    parts = [f"harness {prov.get('harness_version', '?')}"]
    parts += [f"{name} {libs[name]}" for name in libraries if libs.get(name) and libs[name] != "not installed"]
    when = prov.get("created_at")
    tail = []
    if when:
        tail.append(f"created {when}")
    if prov.get("seed") is not None:
        tail.append(f"seed {prov['seed']}")
    return ", ".join(parts) + ("; " + ", ".join(tail) if tail else "")


def provenance_line(prov: dict[str, Any], libraries: tuple[str, ...] = KEY_LIBRARIES) -> str:
    machine = prov.get("machine") or {}
    command = prov.get("command")
    cmd = " ".join(str(c) for c in command) if isinstance(command, list) else (command or "")
    extensions = machine.get("vector_extensions")  # what encoding speed depends on (docs/scaling.md)
    cpu = f"{machine.get('cpus', '?')} CPUs" + (f", {' '.join(extensions) or 'no AVX2'}" if extensions is not None else "")
    where = f"{machine.get('platform', '')} ({cpu})" if machine else ""
    out = versions(prov, libraries)
    if where:
        out += f"; on {where}"
    if cmd:
        out += f"; command: {_strip_venv(cmd)}"
    return out


def _strip_venv(cmd: str) -> str:
    head, _, rest = cmd.partition(" ")
    if head.endswith("/harness") or head.endswith("harness"):
        return "harness " + rest
    return cmd


def model_rows(description: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, fingerprint) of every model inside a retriever description (hybrid, rerank)."""
    found: list[tuple[str, str]] = []
    if description.get("fingerprint"):
        found.append((str(description.get("model") or description.get("kind") or "model"), str(description["fingerprint"])))
    for part in description.get("components") or []:
        found.extend(model_rows(part))
    if isinstance(description.get("first"), dict):
        found.extend(model_rows(description["first"]))
    seen, unique = set(), []
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def retriever_identity(description: dict[str, Any]) -> str:
    models = model_rows(description)
    if models:
        return ", ".join(f"{name} @{short(fp)}" for name, fp in models)
    if description.get("kind") == "bm25":
        return f"{description.get('library', 'bm25')} (k1={description.get('k1')}, b={description.get('b')})"
    return str(description.get("kind") or "-")


def known_models(specs: list[str], known: dict[str, dict[str, Any]]) -> str:
    """Each spec with its models and fingerprints, where an evaluation in the report has them."""
    parts = []
    for spec in specs:
        if spec in known:
            parts.append(f"{spec} = {retriever_identity(known[spec])}")
        else:
            parts.append(f"{spec} (fingerprint not recorded in this result)")
    return "; ".join(parts)


def dataset_line(dataset: dict[str, Any]) -> str:
    splits = dataset.get("splits") or {}
    split_text = ", ".join(f"{name} {short((info or {}).get('hash'), 8)}" for name, info in splits.items())
    return f"{dataset.get('name', '?')} (hash {short(dataset.get('hash'))}" + (f"; splits {split_text})" if split_text else ")")
