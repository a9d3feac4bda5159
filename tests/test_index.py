"""Serving indexes on Qdrant's embedded database (real database, real models): build beside
the serving index, swap, rollback, prune, a killed build, an interrupted swap, the plan,
and the qdrant arm against dense."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import requires_minilm

from harness.cli import cli
from harness.errors import HarnessError
from harness.evaluate import evaluate
from harness.serving.store import COMPLETE, INCOMPLETE, PREVIOUS, open_store


def index(*args: str) -> str:
    """``harness index ARGS`` in this process; its output (an error raises)."""
    result = CliRunner().invoke(cli, ["index", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def harness_process(*args: str, fault: str) -> subprocess.Popen:
    env = dict(os.environ, HARNESS_INDEX_FAULT=fault)
    return subprocess.Popen([sys.executable, "-m", "harness", *args], env=env, stderr=subprocess.PIPE, text=True)


def state(db: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(aliases, collection -> state) of the database."""
    with open_store(db) as store:
        return store.aliases(), {info.collection: info.state for info in store.indexes()}


@pytest.fixture(scope="module")
def other_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model version: the tiny BERT with its weights moved (another fingerprint)."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model), device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    target = tmp_path_factory.mktemp("tiny-bert-2") / "model"
    model.save(str(target))
    return target


def build_from(db: Path, data: Path, version: str, cache: Path, *extra: str) -> str:
    output = index("build", "--db", str(db), "--data", str(data), "--model", version, "--cache", str(cache), *extra)
    return output.split("--to ")[-1].strip()  # the collection, from the swap line it prints


def build(db: Path, data: Path, model: Path, cache: Path) -> str:
    return build_from(db, data, f"dense:{model}", cache)


def test_build_swap_rollback_prune_end_to_end(tiny_dataset: Path, tiny_model: Path, other_model: Path, tmp_path: Path) -> None:
    db, cache = tmp_path / "indexes", tmp_path / "cache"
    blue = build(db, tiny_dataset, tiny_model, cache)
    assert state(db) == ({}, {blue: COMPLETE})
    assert "search -> " + blue in index("swap", "--db", str(db))
    # the arm reads what the alias serves, with the dense arm's figures exactly
    dense, served = f"dense:{tiny_model}", f"qdrant:{tiny_model}(db={db},alias=search)"
    result = evaluate(tiny_dataset, [dense, served], ["heldout"], cache_dir=cache)
    heldout = result.suite("heldout:test")
    assert heldout.per_query[served] == heldout.per_query[dense]
    described = result.retriever(served).description
    assert (described["alias"], described["collection"], described["backend"]) == ("search", blue, "qdrant")
    assert described["index_fingerprint"] == result.retriever(dense).description["fingerprint"]
    assert len(described["corpus_hash"]) == 64

    # blue-green: the new index is built beside the old, which keeps serving
    green = build(db, tiny_dataset, other_model, cache)
    assert state(db) == ({"search": blue}, {blue: COMPLETE, green: COMPLETE})
    assert "already built" in index("build", "--db", str(db), "--data", str(tiny_dataset), "--model", f"dense:{other_model}",
                                    "--cache", str(cache))
    index("swap", "--db", str(db))
    assert state(db)[0] == {"search": green, "search" + PREVIOUS: blue}
    # queries encoded by another model than the index's are refused
    with pytest.raises(HarnessError, match="queries must be encoded by the index's model"):
        evaluate(tiny_dataset, [served], ["heldout"], cache_dir=cache)
    served_green = f"qdrant:{other_model}(db={db},alias=search)"
    assert evaluate(tiny_dataset, [served_green], ["heldout"], cache_dir=cache).retriever(served_green).description["collection"] == green

    index("rollback", "--db", str(db))
    assert state(db)[0] == {"search": blue, "search" + PREVIOUS: green}
    assert "pruned 0" in index("prune", "--db", str(db), "--keep-previous")
    assert "pruned 1" in index("prune", "--db", str(db))
    assert state(db) == ({"search": blue}, {blue: COMPLETE})
    with pytest.raises(HarnessError, match="nothing to roll back"):
        index("rollback", "--db", str(db))


def test_a_killed_build_leaves_the_old_index_serving_and_the_new_one_incomplete(
    tiny_dataset: Path, tiny_model: Path, other_model: Path, tmp_path: Path
) -> None:
    db, cache = tmp_path / "indexes", tmp_path / "cache"
    blue = build(db, tiny_dataset, tiny_model, cache)
    index("swap", "--db", str(db), "--to", blue)
    process = harness_process("index", "build", "--db", str(db), "--data", str(tiny_dataset), "--model", f"dense:{other_model}",
                              "--cache", str(cache), "--batch", "4", fault="build-pause-after:1")
    try:
        for line in process.stderr:  # 4 of the 9 points are written when it pauses
            if line.startswith("paused after 1 batches"):
                break
        else:
            pytest.fail(f"the build ended without pausing (exit {process.wait()})")
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    aliases, states = state(db)
    assert aliases == {"search": blue}
    (half,) = set(states) - {blue}
    assert states[half] == INCOMPLETE
    with open_store(db) as store:
        assert store.count(half) == 4
    with pytest.raises(HarnessError, match="is incomplete"):
        index("swap", "--db", str(db), "--to", half)
    with pytest.raises(HarnessError, match="is incomplete"):
        evaluate(tiny_dataset, [f"qdrant:{other_model}(db={db},collection={half})"], ["heldout"], cache_dir=cache)
    # the old index still answers; the next build clears the half-built one and finishes it
    evaluate(tiny_dataset, [f"qdrant:{tiny_model}(db={db},alias=search)"], ["heldout"], cache_dir=cache)
    assert build(db, tiny_dataset, other_model, cache) == half
    assert state(db) == ({"search": blue}, {blue: COMPLETE, half: COMPLETE})


def test_an_interrupted_swap_leaves_the_alias_on_one_whole_index(
    tiny_dataset: Path, tiny_model: Path, other_model: Path, tmp_path: Path
) -> None:
    db, cache = tmp_path / "indexes", tmp_path / "cache"
    blue, green = build(db, tiny_dataset, tiny_model, cache), build(db, tiny_dataset, other_model, cache)
    index("swap", "--db", str(db), "--to", blue)
    # killed as the database renames its new alias table into place
    process = harness_process("index", "swap", "--db", str(db), "--to", green, fault="swap-kill-at-commit")
    assert process.wait(timeout=300) == -signal.SIGKILL, process.stderr.read()
    process.stderr.close()
    assert (db / "meta.json.tmp").exists()  # the change was half-way
    assert state(db) == ({"search": blue}, {blue: COMPLETE, green: COMPLETE})
    served = f"qdrant:{tiny_model}(db={db},alias=search)"
    assert evaluate(tiny_dataset, [served], ["heldout"], cache_dir=cache).retriever(served).description["collection"] == blue
    index("swap", "--db", str(db), "--to", green)
    assert state(db)[0] == {"search": green, "search" + PREVIOUS: blue}


def test_the_plan_counts_what_the_cache_holds_and_sizes_both_indexes(
    tiny_dataset: Path, tiny_model: Path, other_model: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"

    def plan(source: Path, target: Path, *extra: str) -> dict:
        return json.loads(index("plan", "--from", f"dense:{source}", "--to", f"dense:{target}", "--data", str(tiny_dataset),
                                "--cache", str(cache), "--json", *extra))

    before = plan(tiny_model, other_model)
    assert before["model_changed"] and (before["documents"], before["cached"], before["to_encode"]) == (9, 0, 9)
    assert before["encode_docs_per_s"] > 0 and before["write_points_per_s"] > 0
    assert before["vector_bytes"] == 9 * 32 * 4
    build(tmp_path / "indexes", tiny_dataset, other_model, cache)
    assert plan(tiny_model, other_model)["to_encode"] == 0  # the build filled the cache
    # the same model on a changed corpus: only the new and the changed texts
    corpus = tiny_dataset / "corpus.jsonl"
    records = [json.loads(line) for line in corpus.read_text().splitlines()]
    records[0]["text"] += " Changed."
    records.append({"_id": "d9", "title": "New", "text": "A new document."})
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    same = plan(other_model, other_model)
    assert not same["model_changed"] and (same["documents"], same["cached"], same["to_encode"]) == (10, 8, 2)
    large = plan(tiny_model, other_model, "--documents", "10000000", "--workers", "4")
    assert (large["documents"], large["to_encode"]) == (10_000_000, 10_000_000)
    assert large["switch_bytes"] == large["index_bytes"] + large["old_index_bytes"] > 2 * large["vector_bytes"]
    encode = large["to_encode"] / large["encode_docs_per_s"]
    assert large["estimated_seconds_with_workers"] == pytest.approx(large["estimated_seconds"] - encode + encode / 4)


def test_the_arm_refuses_an_index_of_another_corpus_and_bad_specs(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    db, cache = tmp_path / "indexes", tmp_path / "cache"
    index("swap", "--db", str(db), "--to", build(db, tiny_dataset, tiny_model, cache))
    corpus = tiny_dataset / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace("ten gigabit", "twenty gigabit"))
    with pytest.raises(HarnessError, match="build an index of this corpus"):
        evaluate(tiny_dataset, [f"qdrant:{tiny_model}(db={db},alias=search)"], ["heldout"], cache_dir=cache)
    for spec, message in [
        (f"qdrant:{tiny_model}(alias=search)", "needs db= and one of alias= or collection="),
        (f"qdrant:{tiny_model}(db={db},alias=search,collection=x)", "needs db= and one of alias= or collection="),
        (f"qdrant:{tiny_model}(db={db},alias=search,dim=8)", "unknown option"),
        (f"qdrant:{tiny_model}(db={db},alias=nowhere)", "no alias or index named 'nowhere'"),
    ]:
        with pytest.raises(HarnessError, match=message):
            evaluate(tiny_dataset, [spec], ["heldout"], cache_dir=cache)


def test_a_registry_version_is_built_and_recorded(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    from harness.registry import ModelRegistry

    registry, db, cache = tmp_path / "models.db", tmp_path / "indexes", tmp_path / "cache"
    ModelRegistry(str(registry), create=True).register(tiny_model, alias="champion")
    collection = build_from(db, tiny_dataset, "champion", cache, "--registry", str(registry))
    with open_store(db) as store:
        info = store.resolve(collection)
    assert (info.registry["name"], info.registry["version"]) == ("embedder", 1)
    assert Path(info.model.removeprefix("dense:")).resolve() == tiny_model.resolve()
    planned = json.loads(index("plan", "--from", "champion", "--to", "models:/embedder/1", "--data", str(tiny_dataset),
                               "--registry", str(registry), "--cache", str(cache), "--json"))
    assert not planned["model_changed"] and planned["to"]["registry"]["version"] == 1 and planned["to_encode"] == 0


@requires_minilm
@pytest.mark.minilm
def test_the_served_index_gives_the_dense_figures_on_the_demo_data_with_minilm(tmp_path: Path) -> None:
    from harness.data.demo import write_demo_dataset

    data, db, cache = write_demo_dataset(tmp_path / "demo"), tmp_path / "indexes", tmp_path / "cache"
    result = evaluate(data, ["dense"], ["heldout"], cache_dir=cache)
    built = index("build", "--db", str(db), "--data", str(data), "--cache", str(cache))
    assert " 0 encoded" in built  # the eval encoded the corpus: the build reads the cache
    index("swap", "--db", str(db))
    served = f"qdrant(db={db},alias=search)"
    both = evaluate(data, ["dense", served], ["heldout"], out=tmp_path / "out", cache_dir=cache)
    heldout = both.suite("heldout:test")
    # every metric of every query: exact search over the same cached vectors, one tie rule
    assert heldout.per_query[served] == heldout.per_query["dense"] == result.suite("heldout:test").per_query["dense"]
    assert heldout.aggregates[served] == heldout.aggregates["dense"]
    assert both.retriever(served).description["collection"].startswith("search-")
