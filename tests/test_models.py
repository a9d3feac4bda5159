"""``harness models``: versions in a real MLflow SQLite registry (no mocks) with lineage,
promotion after a real gate, refusals, forced promotions and rollback, end to end.

MLflow's first migration of an SQLite store takes seconds: the module migrates one
store and every test works on a copy of that file (a fresh, already migrated registry).
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_minilm, write_beir
from harness.cli import EXIT_INTERRUPTED
from test_gate import run_main as run  # in process through harness.cli.main: errors exit 3
from test_outputs import interrupted

# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def migrated_store(work: Path) -> Path:
    from harness.registry import ModelRegistry

    path = work / "template.db"
    ModelRegistry(str(path), create=True).versions()  # creates and migrates MLflow's tables
    return path


@pytest.fixture
def registry_file(migrated_store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models.db"
    shutil.copy(migrated_store, target)
    return target


@pytest.fixture(scope="module")
def dataset(work: Path) -> Path:
    return write_beir(work / "tiny")


@pytest.fixture(scope="module")
def finetuned(dataset: Path, tiny_model: Path, work: Path) -> Path:
    """The tiny BERT fine-tuned for real on the tiny dataset: a folder with its card."""
    from harness.train.bi_encoder import FinetuneConfig, finetune

    # no warm-up: with one step of warm-up from 0 the learning rate stays 0 and the weights as they were
    config = FinetuneConfig(passes="in-batch", batch_size=4, warmup_ratio=0.0, learning_rate=1e-3, validation_corpus_max=1000)
    return finetune(dataset, str(tiny_model), work / "ft", config, cache_dir=work / "cache").path


@pytest.fixture(scope="module")
def unrelated_model(tiny_model: Path, work: Path) -> Path:
    """Other weights' identity (a new maximum length changes the fingerprint), no card."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model), device="cpu")
    model.max_seq_length = 32
    model.save(str(work / "other"))
    return work / "other"


def _gate(work: Path, dataset: Path, baseline: Path, candidate: Path, name: str, budgets: str = "") -> Path:
    policy = work / f"{name}.toml"
    policy.write_text(
        f'baseline = "dense:{baseline}"\ncandidate = "dense:{candidate}"\ndata = "{dataset}"\ncache = "{work / "cache"}"\n'
        'n_resamples = 999\n\n[[check]]\ntype = "non-inferiority"\nsuite = "heldout"\nmetric = "ndcg@10"\nmargin = 1.0\n'
        + budgets, encoding="utf-8",
    )
    code, output = run("gate", "--policy", str(policy), "--out", str(work / name))
    assert code == (1 if budgets else 0), output
    return work / name / "gate.json"


@pytest.fixture(scope="module")
def passing_gate(work: Path, dataset: Path, tiny_model: Path, finetuned: Path) -> Path:
    """A real gate: the fine-tuned model against its base, a check it cannot fail (margin 1)."""
    return _gate(work, dataset, tiny_model, finetuned, "gate-pass")


@pytest.fixture(scope="module")
def failing_gate(work: Path, dataset: Path, tiny_model: Path, finetuned: Path) -> Path:
    """The same gate with a dimension budget the 32-wide model exceeds."""
    return _gate(work, dataset, tiny_model, finetuned, "gate-fail", budgets="\n[budgets]\ndimension = 8\n")


@pytest.fixture
def ab_store(tmp_path: Path) -> Path:
    from harness.ab import schema

    path = tmp_path / "ab.duckdb"
    schema.connect(path, create=True).close()
    return path


def _two_versions(registry_file: Path, tiny_model: Path, finetuned: Path) -> None:
    assert run("models", "register", str(tiny_model), "--alias", "champion", "--registry", str(registry_file))[0] == 0
    code, output = run("models", "register", str(finetuned), "--registry", str(registry_file))
    assert code == 0 and "registered embedder v2" in output and "challenger" in output and "parent v1" in output, output


def _client(registry_file: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{registry_file}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _audit_rows(ab_store: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(ab_store), read_only=True) as con:
        return con.execute("SELECT experiment_id, decided_by, decision, exit_code, reasons, inputs FROM decisions ORDER BY decided_at").fetchall()


# ------------------------------------------------------------------------ registering and lineage


def test_register_records_fingerprint_lineage_card_and_data(registry_file: Path, tiny_model: Path, finetuned: Path) -> None:
    from harness.adapters.models import fingerprint, load_sentence_transformer
    from harness.registry import ModelRegistry

    _two_versions(registry_file, tiny_model, finetuned)
    registry = ModelRegistry(str(registry_file))
    child = registry.get("challenger")
    card = json.loads((finetuned / "training_card.json").read_text())
    assert child.number == 2 and child.parent == 1 and child.path == str(finetuned.resolve())
    assert child.fingerprint == fingerprint(load_sentence_transformer(str(finetuned))) == card["fingerprint"]
    assert child.tags["harness.dataset_hash"] == card["dataset"]["hash"]
    assert child.tags["harness.pairs_hash"] == card["training_data"]["pairs_hash"]
    assert child.tags["harness.base_model_path"] == str(tiny_model)
    assert registry.get("champion").fingerprint == fingerprint(load_sentence_transformer(str(tiny_model)))
    # MLflow holds the run: the card as artifacts, its validation figures as metrics, the folder as the source
    client = _client(registry_file)
    version = client.get_model_version("embedder", "2")
    assert version.source == str(finetuned.resolve()) and version.run_id == child.run_id
    assert {a.path for a in client.list_artifacts(child.run_id, "card")} >= {"card/training_card.json", "card/README.md", "card/training_log.json"}
    run_data = client.get_run(child.run_id).data
    assert run_data.metrics["validation/after/val_ndcg_at_10"] == card["validation"]["after"]["val_ndcg@10"]
    assert run_data.params["train.seed"] == str(card["parameters"]["seed"])
    # the same weights again: their version, not a new one
    code, output = run("models", "register", str(finetuned), "--registry", str(registry_file))
    assert code == 0 and "already registered as embedder v2" in output
    code, output = run("models", "show", "2", "--registry", str(registry_file))
    assert code == 0 and f"lineage: v2 ({child.fingerprint}) <- v1 (" in output and card["training_data"]["pairs_hash"] in output
    code, output = run("models", "list", "--registry", str(registry_file), "--json")
    listed = json.loads(output)
    assert [(v["version"], v["aliases"], v["parent"]) for v in listed] == [(1, ["champion"], None), (2, ["challenger"], 1)]


def test_results_that_judged_a_version_are_attached_checked_by_fingerprint(
        registry_file: Path, tiny_model: Path, finetuned: Path, passing_gate: Path, unrelated_model: Path) -> None:
    from harness.registry import ModelRegistry

    evaluation = passing_gate.parent / "eval" / "result.json"
    code, output = run("models", "register", str(finetuned), "--result", str(evaluation), "--registry", str(registry_file))
    assert code == 0, output
    version = ModelRegistry(str(registry_file)).get(1)
    [judged] = version.judged
    assert judged["kind"] == "eval" and judged["arms"] == [f"dense:{finetuned}"] and judged["aggregates"]["heldout:test"]["ndcg@10"] >= 0
    metrics = _client(registry_file).get_run(version.run_id).data.metrics
    assert metrics["eval/heldout:test/ndcg_at_10"] == judged["aggregates"]["heldout:test"]["ndcg@10"]
    assert any(a.path.startswith("judged/01-eval") for a in _client(registry_file).list_artifacts(version.run_id, "judged"))
    # an evaluation that judged other weights is refused, naming the file and the model
    code, output = run("models", "register", str(unrelated_model), "--result", str(evaluation), "--registry", str(registry_file))
    assert code == 3 and str(evaluation) in output and "no retriever of this evaluation is model" in output
    assert len(ModelRegistry(str(registry_file)).versions()) == 1  # nothing written before the check


# ------------------------------------------------------------------------ promotion, refusals, rollback


def test_promote_after_a_passing_gate_then_rollback_restores_the_champion(
        registry_file: Path, tiny_model: Path, finetuned: Path, passing_gate: Path, ab_store: Path) -> None:
    _two_versions(registry_file, tiny_model, finetuned)
    reg = ["--registry", str(registry_file)]
    code, output = run("models", "promote", "--gate", str(passing_gate), "--who", "ci-bot", "--db", str(ab_store), *reg)
    assert code == 0 and "promoted embedder v2 to champion (replacing v1)" in output, output
    client = _client(registry_file)
    assert int(client.get_model_version_by_alias("embedder", "champion").version) == 2
    assert "challenger" not in client.get_registered_model("embedder").aliases
    promotion = json.loads(client.get_model_version("embedder", "2").tags["harness.promotion"])
    assert promotion["by"] == "ci-bot" and promotion["previous_champion"] == 1 and promotion["via"].endswith(": pass")
    assert promotion["gate"]["sha256"] and not promotion["forced"]

    code, output = run("models", "rollback", "--reason", "ctr guardrail regressed", "--who", "oncall", "--db", str(ab_store), *reg)
    assert code == 0 and "v1 is the champion again (v2 retired)" in output, output
    assert int(client.get_model_version_by_alias("embedder", "champion").version) == 1
    rolled = json.loads(client.get_model_version("embedder", "2").tags["harness.rolled_back"])
    assert rolled["by"] == "oncall" and rolled["reason"] == "ctr guardrail regressed"
    # the audit: MLflow runs, and the A/B store's decisions table, each row naming the MLflow run
    runs = client.search_runs([client.get_experiment_by_name("embedding-harness/embedder").experiment_id],
                              order_by=["attributes.start_time ASC"])
    events = [json.loads(r.data.tags["harness.record"]) for r in runs]
    assert [(e["event"], e["version"]) for e in events] == [("register", 1), ("promote", 1), ("register", 2), ("promote", 2), ("rollback", 1)]
    assert all(r.info.status == "FINISHED" for r in runs)
    rows = _audit_rows(ab_store)
    assert [(r[1], r[2], r[3]) for r in rows] == [("ci-bot", "promote", 0), ("oncall", "rollback", 1)]
    assert json.loads(rows[1][5])["mlflow_run_id"] == runs[-1].info.run_id and rows[1][0] == "model-registry:embedder"
    assert events[-1]["audit_id"] and events[3]["audit_id"]
    code, output = run("models", "show", "2", *reg)
    assert "promote v2 (champion before: v1) by ci-bot" in output and "rollback v1 (champion before: v2) by oncall" in output
    # v1 was the first champion: nothing before it
    code, output = run("models", "rollback", "--reason", "again", *reg)
    assert code == 1 and "first champion" in output


def test_promote_is_refused_without_a_passing_gate_of_this_version(
        registry_file: Path, tiny_model: Path, finetuned: Path, failing_gate: Path, passing_gate: Path, unrelated_model: Path) -> None:
    from harness.registry import ModelRegistry

    _two_versions(registry_file, tiny_model, finetuned)
    reg = ["--registry", str(registry_file)]
    code, output = run("models", "promote", "--gate", str(failing_gate), *reg)
    assert code == 1 and "did not pass (fail, exit 1" in output and "dimension" in output, output
    code, output = run("models", "promote", *reg)
    assert code == 1 and "no gate" in output
    assert run("models", "register", str(unrelated_model), *reg)[0] == 0
    code, output = run("models", "promote", "3", "--gate", str(passing_gate), *reg)
    assert code == 1 and "is not v3" in output
    code, output = run("models", "promote", "1", "--gate", str(passing_gate), *reg)
    assert code == 1 and "already the champion" in output
    registry = ModelRegistry(str(registry_file))
    assert registry.get("champion").number == 1 and registry.get("challenger").number == 3
    assert [e["event"] for e in registry.history()] == ["register", "promote", "register", "register"]


def test_force_needs_a_reason_and_is_recorded_with_who_and_why(
        registry_file: Path, tiny_model: Path, finetuned: Path, failing_gate: Path, ab_store: Path) -> None:
    _two_versions(registry_file, tiny_model, finetuned)
    reg = ["--registry", str(registry_file)]
    code, output = run("models", "promote", "--gate", str(failing_gate), "--force", *reg)
    assert code == 3 and "--force needs --reason" in output
    code, output = run("models", "promote", "--gate", str(failing_gate), "--force", "--reason", "dimension budget waived for the pilot",
                       "--who", "alice", "--db", str(ab_store), *reg)
    assert code == 0 and "by force" in output, output
    record = json.loads(_client(registry_file).get_model_version("embedder", "2").tags["harness.promotion"])
    assert record["forced"] and record["by"] == "alice" and record["reason"] == "dimension budget waived for the pilot"
    assert record["via"].startswith("force (gate") and any("dimension" in r for r in record["overridden"])
    [row] = _audit_rows(ab_store)
    assert row[1:4] == ("alice", "promote", 0) and any("overridden: the gate" in r for r in row[4])


def test_an_ab_decision_is_attached_and_its_experiment_named_in_the_audit(
        registry_file: Path, tiny_model: Path, finetuned: Path, passing_gate: Path, tmp_path: Path) -> None:
    from harness.registry import ModelRegistry

    logs, db, decision = tmp_path / "logs", tmp_path / "ab.duckdb", tmp_path / "decision.json"
    assert run("ab", "simulate", "--out", str(logs), "--users", "1500", "--days", "4", "--effect", "0.3", "--guardrail-margin", "0.3")[0] == 0
    assert run("ab", "ingest", "--db", str(db), "--experiment", str(logs / "experiment.json"), str(logs / "*.jsonl"))[0] == 0
    code, output = run("ab", "decide", "--db", str(db), "--no-daily", "--method", "fixed", "--who", "analyst", "--out", str(decision))
    assert code == 0, output
    _two_versions(registry_file, tiny_model, finetuned)
    code, output = run("models", "promote", "--gate", str(passing_gate), "--result", str(decision), "--db", str(db),
                       "--registry", str(registry_file))
    assert code == 0, output
    champion = ModelRegistry(str(registry_file)).get("champion")
    judged = {j["kind"]: j for j in champion.judged}
    assert set(judged) == {"gate", "ab-decision"} and judged["gate"]["status"] == "pass"
    assert judged["ab-decision"]["decision"] == "promote" and judged["ab-decision"]["experiment"] == "exp-1"
    # the store's audit: the A/B decision, then the promotion it led to, under the same experiment
    rows = _audit_rows(db)
    assert [(r[0], r[1], r[2]) for r in rows] == [("exp-1", "analyst", "promote"), ("exp-1", getpass.getuser(), "promote")]
    inputs = json.loads(rows[1][5])
    assert inputs["version"] == 2 and inputs["model"] == "embedder" and inputs["mlflow_run_id"]


def test_with_serving_the_alias_follows_the_champion_and_back(
        registry_file: Path, tiny_model: Path, finetuned: Path, passing_gate: Path, dataset: Path, tmp_path: Path) -> None:
    """promote --serving swaps the Qdrant alias to the new champion's index (refused before
    any change while that index is not built); rollback --serving points it back."""
    from harness.registry import ModelRegistry
    from harness.serving.store import PREVIOUS, open_store

    _two_versions(registry_file, tiny_model, finetuned)
    reg, db, cache = ["--registry", str(registry_file)], tmp_path / "indexes", tmp_path / "cache"

    def built(version: str) -> str:
        code, output = run("index", "build", "--db", str(db), "--data", str(dataset), "--model", version, "--cache", str(cache), *reg)
        assert code == 0, output
        return output.split("--to ")[-1].strip()

    def serving() -> tuple[str | None, str | None]:
        with open_store(db) as store:
            aliases = store.aliases()
        return aliases.get("search"), aliases.get("search" + PREVIOUS)

    code, output = run("models", "promote", "--gate", str(passing_gate), "--serving", str(tmp_path / "nowhere"), *reg)
    assert code == 3 and "no vector database there" in output and not (tmp_path / "nowhere").exists(), output
    first = built("champion")
    assert run("index", "swap", "--db", str(db))[0] == 0
    code, output = run("models", "promote", "--gate", str(passing_gate), "--serving", str(db), *reg)
    assert code == 3 and "no complete index of v2" in output and len(output.strip().splitlines()) == 1, output
    assert ModelRegistry(str(registry_file)).get("champion").number == 1 and serving() == (first, None)  # nothing changed

    second = built("challenger")
    # Ctrl-C as the alias is written, after the registry changed: held back until both are done
    stopped = interrupted(tmp_path, "open", "meta.json", "SIGINT",
                          "models", "promote", "--gate", str(passing_gate), "--serving", str(db), *reg)
    assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr
    assert ModelRegistry(str(registry_file)).get("champion").number == 2 and serving() == (second, first)
    assert f"search -> {second} (was {first})" in stopped.stdout, stopped.stdout
    noted = json.loads(ModelRegistry(str(registry_file)).get("2").tags["harness.serving"])
    assert (noted["event"], noted["collection"], noted["previous"]) == ("promote", second, first)

    code, output = run("models", "rollback", "--reason", "drill", "--serving", str(db), *reg)
    assert code == 0 and "v1 is the champion again" in output and f"search -> {first} (was {second})" in output, output
    assert serving() == (first, second) and ModelRegistry(str(registry_file)).get("champion").number == 1


# ------------------------------------------------------------------------ bad input: one line, exit 3


def test_bad_input_is_one_line_exit_3_before_any_change(
        registry_file: Path, tiny_model: Path, finetuned: Path, passing_gate: Path, tmp_path: Path) -> None:
    reg = ["--registry", str(registry_file)]
    code, output = run("models", "list", "--registry", str(tmp_path / "missing" / "models.db"))
    assert code == 3 and "does not exist" in output and len(output.strip().splitlines()) == 1
    code, output = run("models", "show", "--registry", str(tmp_path / "typo.db"))
    assert code == 3 and "no registry there" in output and not (tmp_path / "typo.db").exists()
    code, output = run("models", "register", str(tmp_path / "nope"), *reg)
    assert code == 3 and "model folder does not exist" in output
    _two_versions(registry_file, tiny_model, finetuned)
    evaluation = passing_gate.parent / "eval" / "result.json"
    code, output = run("models", "promote", "--gate", str(evaluation), *reg)
    assert code == 3 and "not a gate result" in output
    orphan = tmp_path / "orphan" / "gate.json"
    orphan.parent.mkdir()
    shutil.copy(passing_gate, orphan)  # without the evaluation beside it nothing tells which model it judged
    code, output = run("models", "promote", "--gate", str(orphan), *reg)
    assert code == 3 and "is not there" in output and len(output.strip().splitlines()) == 1
    code, output = run("models", "promote", "--gate", str(passing_gate), "--db", str(tmp_path / "no.duckdb"), *reg)
    assert code == 3 and "database does not exist" in output
    code, output = run("models", "show", "7", *reg)
    assert code == 3 and "has no version '7'" in output
    client = _client(registry_file)
    assert int(client.get_model_version_by_alias("embedder", "champion").version) == 1  # nothing changed


def test_models_help_imports_no_mlflow() -> None:
    code = ("import sys\nfrom harness.cli import main\ntry:\n    main(['models', 'promote', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'mlflow' not in sys.modules, 'mlflow imported by --help'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Example" in done.stdout, done.stderr


@requires_minilm
@pytest.mark.minilm
def test_the_real_minilm_registers_as_the_first_champion(registry_file: Path) -> None:
    from harness.adapters.models import fingerprint, load_sentence_transformer, resolve_model_name
    from harness.registry import ModelRegistry

    code, output = run("models", "register", "default", "--alias", "champion", "--registry", str(registry_file))
    assert code == 0 and "registered embedder v1" in output and "champion" in output, output
    champion = ModelRegistry(str(registry_file)).get("champion")
    assert champion.path == str(Path(resolve_model_name("default")).resolve())
    assert champion.fingerprint == fingerprint(load_sentence_transformer("default"))
    assert [e["event"] for e in ModelRegistry(str(registry_file)).history(1)] == ["register", "promote"]
