"""Training pairs, mining, fine-tuning and their errors, on the tiny dataset and tiny model.

One end-to-end test fine-tunes the real MiniLM for a few steps (``requires_minilm``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import requires_minilm
from harness.cli import cli
from harness.data import load_dataset
from harness.errors import HarnessError
from harness.train.bi_encoder import FinetuneConfig, finetune
from harness.train.checkpoints import check_checkpoint
from harness.train.cross_encoder import CrossEncoderConfig, finetune_cross_encoder
from harness.train.pairs import pairs_from_qrels, read_pairs, synthetic_pairs, training_data, write_pairs, llm_pairs

FAST = dict(batch_size=4, range_max=5, relative_margin=None, validation_corpus_max=1000)


def _run(args: list[str]) -> tuple[int, str]:
    from harness.cli import main

    runner = CliRunner()
    result = runner.invoke(cli, args, catch_exceptions=True)
    if isinstance(result.exception, HarnessError):
        return 3, str(result.exception)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


# ------------------------------------------------------------------ pairs


def test_pairs_come_from_train_and_validation_from_dev(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    data = training_data(dataset)
    assert {p.query_id for p in data.pairs} == {"q1", "q2", "q5"}
    assert set(data.validation_qrels) == {"q8"}
    assert data.description["validation"]["kind"] == "split"
    assert all(p.positive == dataset.corpus[p.doc_id].content for p in data.pairs)


def test_validation_share_without_dev_is_seeded_and_disjoint(tiny_dataset: Path) -> None:
    (tiny_dataset / "qrels" / "dev.tsv").unlink()
    dataset = load_dataset(tiny_dataset)
    first = training_data(dataset, validation_share=0.34, seed=1)
    again = training_data(load_dataset(tiny_dataset), validation_share=0.34, seed=1)
    assert first.validation_qrels == again.validation_qrels
    assert not set(first.validation_qrels) & {p.query_id for p in first.pairs}
    assert first.description["validation"]["kind"] == "share"


def test_test_split_is_never_used(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    with pytest.raises(HarnessError, match="held out"):
        pairs_from_qrels(dataset, "test")
    with pytest.raises(HarnessError, match="held out"):
        training_data(dataset, validation_split="test")


def test_empty_train_split_is_one_line_error(tiny_dataset: Path, tmp_path: Path) -> None:
    (tiny_dataset / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n", encoding="utf-8")
    code, message = _run(["finetune", "--data", str(tiny_dataset), "--out", str(tmp_path / "m")])
    assert code == 3 and "empty" in message and "\n" not in message
    assert not (tmp_path / "m").exists() and not (tmp_path / ".m.partial").exists()


def test_pairs_file_round_trip_and_unknown_ids(tiny_dataset: Path, tmp_path: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    pairs = pairs_from_qrels(dataset)
    path = write_pairs(tmp_path / "pairs.jsonl", pairs)
    assert read_pairs(path, dataset) == pairs
    assert json.loads(path.read_text().splitlines()[0])["query"]  # readable: texts are in the file
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query_id": "q1", "doc_id": "d0"}\n{"query_id": "q1", "doc_id": "nope"}\n', encoding="utf-8")
    with pytest.raises(HarnessError, match=r"bad.jsonl:2: unknown document id 'nope'"):
        read_pairs(bad, dataset)
    bad.write_text('{"query_id": "qx", "doc_id": "d0"}\n', encoding="utf-8")
    with pytest.raises(HarnessError, match="unknown query id 'qx'"):
        read_pairs(bad, dataset)


def test_self_supervised_pairs(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    title_body = synthetic_pairs(dataset, "title-body", seed=3)
    assert len(title_body) == len(dataset.corpus)
    assert all(p.query == dataset.corpus[p.doc_id].title and p.positive == dataset.corpus[p.doc_id].text for p in title_body)
    with pytest.raises(HarnessError, match="two or more sentences"):
        synthetic_pairs(dataset, "inverse-cloze")  # every tiny document is one sentence
    long = dataset.corpus["d0"]
    object.__setattr__(long, "text", "First sentence is here. Second sentence follows now. Third one closes it.")
    ict = synthetic_pairs(dataset, "inverse-cloze", seed=3)
    assert len(ict) == 1 and ict[0].query not in ict[0].positive and ict[0].source == "inverse-cloze"


def test_llm_endpoint_offline_is_clear_and_keeps_the_key_secret(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = load_dataset(tiny_dataset)
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")
    with pytest.raises(HarnessError) as info:
        llm_pairs(dataset, "http://127.0.0.1:9/v1", "some-model", key_env="TEST_LLM_KEY", max_pairs=1, timeout=2)
    assert "cannot reach" in str(info.value) and "inverse-cloze" in str(info.value)
    assert "sk-secret-value" not in str(info.value)
    with pytest.raises(HarnessError, match="--llm-url"):
        llm_pairs(dataset, None, None)


# ------------------------------------------------------------------ mining


def test_mine_command_writes_negatives_stats_and_audit(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "mined"
    cache = tmp_path / "cache"
    args = ["mine", "--data", str(tiny_dataset), "--model", str(tiny_model), "--out", str(out), "--range-max", "6",
            "--num-negatives", "2", "--audit", "3", "--cache", str(cache)]
    code, output = _run(args)
    assert code == 0, output
    stats = json.loads((out / "mining.json").read_text())
    assert stats["config"]["relative_margin"] == 0.05 and stats["config"]["use_faiss"]
    assert {"positive", "negative", "difference"} <= set(stats["scores"])
    assert "candidates" in stats["removed_by_margin"]
    dataset = load_dataset(tiny_dataset)
    train = dataset.split("train").qrels
    for line in (out / "negatives.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert not set(row["negative_ids"]) & set(train[row["query_id"]])  # known positives excluded
        assert all(row["positive_score"] - s >= abs(row["positive_score"]) * 0.05 - 1e-6 for s in row["negative_scores"])
    audit = (out / "audit.md").read_text()
    assert "Hard-negative audit" in audit and "removed by the relative margin" in audit
    # the second run takes every document vector from the harness cache
    again = [a if a != "3" else "0" for a in args]
    code, output = _run(again)
    assert code == 0 and "9 document vectors from the cache" in output


# ------------------------------------------------------------------ fine-tuning


def test_finetune_two_passes_writes_a_complete_loadable_folder(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    result = finetune(tiny_dataset, str(tiny_model), out, FinetuneConfig(**FAST), cache_dir=tmp_path / "cache")
    assert result.path == out and not (tmp_path / ".ft.partial").exists()
    card = json.loads((out / "training_card.json").read_text())
    assert set(card["passes"]) == {"pass1", "pass2"} and card["seed"] == 42
    assert card["mining"]["mined_with"] == "pass-1 model"
    assert card["training_data"]["pairs_hash"] and card["dataset"]["hash"]
    assert set(card["validation"]["before"]) == set(card["validation"]["after"]) >= {"val_ndcg@10"}
    assert card["parameters"]["learning_rate"] is None and card["parameters"]["warmup_ratio"] == 0.1
    # no --lr: each pass's rate follows from its steps (a tiny set: a few steps, the rule's ceiling)
    from harness.train.bi_encoder import default_learning_rate

    pass1 = card["passes"]["pass1"]
    assert pass1["learning_rate"] == default_learning_rate(pass1["steps"]) == 1e-4 and "default for" in pass1["learning_rate_why"]
    assert default_learning_rate(26) == 1e-4 and default_learning_rate(250) == pytest.approx(4e-5) and default_learning_rate(900) == 2e-5
    log = json.loads((out / "training_log.json").read_text())
    assert log["passes"]["pass1"]["loss_curve"] and "loss" in log["passes"]["pass1"]["loss_curve"][0]
    assert "Validation" in (out / "README.md").read_text()
    # the validation before training left the base's document vectors in the embedding cache,
    # under the key an evaluation of the base reads
    from harness.adapters.cache import EmbeddingCache
    from harness.adapters.models import fingerprint, load_sentence_transformer

    base = load_sentence_transformer(str(tiny_model))
    assert len(EmbeddingCache(tmp_path / "cache", fingerprint(base), "", base.max_seq_length)._load()) >= 1
    # ...and the last validation's, of the weights the model was saved with: its evaluation reads them
    saved = load_sentence_transformer(str(out))
    assert fingerprint(saved) == card["fingerprint"]
    assert len(EmbeddingCache(tmp_path / "cache", card["fingerprint"], "", saved.max_seq_length)._load()) >= 1
    from harness.evaluate import evaluate

    evaluated = evaluate(tiny_dataset, [f"dense:{out}"], cache_dir=tmp_path / "cache")
    assert evaluated.suites[0].aggregates[f"dense:{out}"]["ndcg@10"] >= 0


@pytest.mark.parametrize("loss,extra", [("cmnrl", {"mini_batch_size": 2}), ("triplet", {}), ("mnrl", {"matryoshka_dims": (32, 16, 8)})])
def test_losses(loss: str, extra: dict, tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    passes = "hard-negatives" if loss == "triplet" else "in-batch"
    config = FinetuneConfig(passes=passes, loss=loss, **{**FAST, **extra})
    result = finetune(tiny_dataset, str(tiny_model), tmp_path / "ft", config, cache_dir=tmp_path / "cache")
    label = result.card["passes"]["pass2" if loss == "triplet" else "pass1"]["loss"]
    assert {"cmnrl": "Cached", "triplet": "Triplet", "mnrl": "Matryoshka"}[loss] in label


def test_bad_inputs_are_one_line_errors_and_leave_no_folder(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    code, message = _run(["finetune", "--data", str(tiny_dataset), "--base", str(tmp_path / "missing"), "--out", str(tmp_path / "m")])
    assert code == 3 and "does not exist" in message
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query_id": "q1", "doc_id": "d999"}\n', encoding="utf-8")
    code, message = _run(["finetune", "--data", str(tiny_dataset), "--base", str(tiny_model), "--pairs", str(bad), "--out", str(tmp_path / "m")])
    assert code == 3 and "unknown document id" in message
    with pytest.raises(HarnessError, match="TripletLoss needs"):
        finetune(tiny_dataset, str(tiny_model), tmp_path / "m", FinetuneConfig(passes="in-batch", loss="triplet"))
    assert not (tmp_path / "m").exists() and not (tmp_path / ".m.partial").exists()


def test_interrupt_keeps_checkpoints_and_resume_finishes(tiny_dataset: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ft"
    config = FinetuneConfig(**FAST)
    import harness.train.mining as mining

    original = mining.mine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mining, "mine", interrupted)
    with pytest.raises(HarnessError, match="--resume"):
        finetune(tiny_dataset, str(tiny_model), out, config, cache_dir=tmp_path / "cache")
    work = tmp_path / ".ft.partial"
    assert not out.exists() and (work / "pass1" / "model").is_dir()
    assert list((work / "pass1" / "checkpoints").glob("checkpoint-*"))
    with pytest.raises(HarnessError, match="--resume"):
        finetune(tiny_dataset, str(tiny_model), out, config, cache_dir=tmp_path / "cache")  # not without --resume
    with pytest.raises(HarnessError, match="other data or options"):
        finetune(tiny_dataset, str(tiny_model), out, FinetuneConfig(**{**FAST, "seed": 7}), cache_dir=tmp_path / "cache", resume=True)
    monkeypatch.setattr(mining, "mine", original)
    result = finetune(tiny_dataset, str(tiny_model), out, config, cache_dir=tmp_path / "cache", resume=True)
    assert set(result.card["passes"]) == {"pass1", "pass2"} and not work.exists()


def test_corrupt_checkpoint_is_one_line_error(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    config = FinetuneConfig(passes="in-batch", **FAST)
    finetune(tiny_dataset, str(tiny_model), out, config, cache_dir=tmp_path / "cache")
    # fake an interrupted run whose checkpoint is damaged
    shutil.rmtree(out)
    with pytest.raises(HarnessError, match="nothing to resume"):
        finetune(tiny_dataset, str(tiny_model), out, config, cache_dir=tmp_path / "cache", resume=True)
    checkpoint = tmp_path / "checkpoint-3"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text('{"global_step": 3}')
    (checkpoint / "model.safetensors").write_bytes(b"not a safetensors file")
    (checkpoint / "optimizer.pt").write_bytes(b"")
    with pytest.raises(HarnessError, match="corrupt checkpoint") as info:
        check_checkpoint(checkpoint)
    assert "\n" not in str(info.value)
    (checkpoint / "trainer_state.json").write_text("{broken")
    with pytest.raises(HarnessError, match="trainer_state.json is not valid"):
        check_checkpoint(checkpoint)


def test_reranker_learns_its_first_stage_top_n_and_finishes_on_the_best(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ce"
    config = CrossEncoderConfig(batch_size=1, num_negatives=2, first_stage_top=5, max_length=64, early_stopping_patience=0,
                                min_steps_between_validations=1)
    result = finetune_cross_encoder(tiny_dataset, out, base=str(tiny_model), negatives_model=str(tiny_model), config=config,
                                    cache_dir=tmp_path / "cache")
    card = result.card
    first = f"dense:{tiny_model}"
    assert "untrained one-logit head" in card["base_note"] and "untrained one-logit head" in (out / "README.md").read_text()
    # a new head is served fused with its first stage (RRF), and validated in that order
    assert card["first_stage"] == {"spec": first, "top": 5, "fuse": "rrf", "rerank_spec": f"rerank({out},top=5,first={first},fuse=rrf)"}
    assert card["choices"]["fuse"]["value"] == "rrf" and card["passes"]["reranker"]["loss"] == "LambdaLoss(NDCGLoss2PPScheme)"
    # negatives come from the same first stage's top 5, with no margin: its closest confusions
    assert card["mining"]["config"]["range_max"] == 5 and card["mining"]["config"]["relative_margin"] is None
    assert card["mining"]["mined_with"] == str(tiny_model)
    assert card["choices"]["learning_rate"] == {"value": 1e-4, "why": "default for a new, untrained head"}
    validation = card["validation"]
    assert validation["corpus"] == f"{first} top 5 per query" and set(validation["first_stage"]) == {"val_ndcg@10", "val_mrr@10"}
    assert validation["before"] == {}  # a new head scores at random: not validated before training
    from harness.train.evaluators import first_stage_top, ranking_figures

    dev = training_data(load_dataset(tiny_dataset))
    top = first_stage_top(load_dataset(tiny_dataset), dev.validation_queries, first, 5, tmp_path / "cache")
    assert validation["first_stage"] == ranking_figures(dev.validation_qrels, top)
    # a curve: several validations an epoch, each with the reranker's own order beside the served
    # one; the model is the best of them
    curve = validation["history"]
    assert curve[0]["step"] > 0 and len(curve) >= 3 and [h["step"] for h in curve] == sorted(h["step"] for h in curve)
    assert all({"val_ndcg@10", "val_reranker_only_ndcg@10"} <= set(h) for h in curve)
    reranker = card["passes"]["reranker"]
    assert validation["after"]["val_ndcg@10"] == max(h["val_ndcg@10"] for h in curve) == reranker["best_metric"]
    assert "| val_ndcg@10 | – |" in (out / "README.md").read_text()
    kept = reranker["kept_checkpoints"]
    assert len(kept) == 3 and kept[0]["checkpoint"] == Path(reranker["best_checkpoint"]).name
    readme = (out / "README.md").read_text()
    assert "## Validation curve" in readme and f"Reranks the top 5 of `{first}`" in readme and "## Choices" in readme
    from harness.evaluate import evaluate

    spec = f"rerank({out},top=5,first=bm25)"
    evaluated = evaluate(tiny_dataset, [spec], cache_dir=tmp_path / "cache")
    assert evaluated.suites[0].aggregates[spec]["ndcg@10"] >= 0


def test_validations_are_spread_at_least_the_minimum_steps_apart() -> None:
    from harness.train.trainer import validation_steps

    assert validation_steps(400, 8, 4, 20) == 25  # 50 steps: 2 validations, not 4
    assert validation_steps(400, 8, 4, 1) == 12
    assert validation_steps(100, 8, 4, 20) is None  # 13 steps: the end of the epoch only
    assert validation_steps(4000, 8, 4, 20) == 125 and validation_steps(400, 8, 1, 1) is None


def test_best_three_checkpoints_by_validation_are_kept(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    """Five epochs, no early stopping: the checkpoints left are the three best validations
    (the trainer's own limit would keep the latest ones), and the pass ends on the best."""
    config = FinetuneConfig(passes="in-batch", epochs=5, early_stopping_patience=0, learning_rate=1e-3, **FAST)
    result = finetune(tiny_dataset, str(tiny_model), tmp_path / "ft", config, cache_dir=tmp_path / "cache")
    record = result.card["passes"]["pass1"]
    scores = [(h["val_ndcg@10"], -h["step"]) for h in result.card["validation"]["history"][1:]]
    best_three = sorted(scores, reverse=True)[:3]
    assert [(c["val_ndcg@10"], -c["step"]) for c in record["kept_checkpoints"]] == best_three
    assert record["kept_checkpoints"][0]["checkpoint"] == Path(record["best_checkpoint"]).name
    assert result.card["validation"]["after"]["val_ndcg@10"] == best_three[0][0]
    assert "kept the best 3" in (tmp_path / "ft" / "README.md").read_text()


def test_reranker_trains_with_binary_cross_entropy_in_its_own_order(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ce-bce"
    config = CrossEncoderConfig(loss="bce", fuse="none", batch_size=4, num_negatives=2, first_stage_top=5, max_length=64,
                                evaluations_per_epoch=1)
    card = finetune_cross_encoder(tiny_dataset, out, base=str(tiny_model), negatives_model=str(tiny_model), config=config,
                                  cache_dir=tmp_path / "cache").card
    assert card["passes"]["reranker"]["loss"] == "BinaryCrossEntropyLoss(pos_weight=2)"
    assert card["first_stage"]["rerank_spec"] == f"rerank({out},top=5,first=dense:{tiny_model})"
    assert "val_reranker_only_ndcg@10" not in card["validation"]["before"]


def test_reranker_settings_are_checked_before_any_work(tiny_dataset: Path, tmp_path: Path) -> None:
    code, message = _run(["finetune", "--data", str(tiny_dataset), "--cross-encoder", "--rerank-top", "1", "--out", str(tmp_path / "m")])
    assert code == 3 and "--rerank-top must be at least 2" in message
    code, message = _run(["finetune", "--data", str(tiny_dataset), "--cross-encoder", "--rerank-top", "4", "--num-negatives", "4",
                          "--out", str(tmp_path / "m")])
    assert code == 3 and "leaves no room for 4 negatives" in message
    code, message = _run(["finetune", "--data", str(tiny_dataset), "--cross-encoder", "--loss", "mnrl", "--out", str(tmp_path / "m")])
    assert code == 3 and "--loss mnrl is a loss for a bi-encoder" in message
    code, message = _run(["finetune", "--data", str(tiny_dataset), "--loss", "lambda", "--out", str(tmp_path / "m")])
    assert code == 3 and "--loss lambda is a loss for a reranker: add --cross-encoder" in message
    assert not (tmp_path / "m").exists() and not (tmp_path / ".m.partial").exists()


@requires_minilm
def test_minilm_end_to_end_a_few_steps(tiny_dataset: Path, tmp_path: Path) -> None:
    """The real MiniLM: two passes on the tiny train split, then `dense:OUT` evaluates."""
    out = tmp_path / "minilm-ft"
    result = finetune(tiny_dataset, "default", out, FinetuneConfig(batch_size=3, range_max=5, max_seq_length=64),
                      cache_dir=tmp_path / "cache")
    assert result.card["base_model"] == "all-MiniLM-L6-v2"
    assert result.card["passes"]["pass1"]["steps"] >= 1
    from harness.evaluate import evaluate

    evaluated = evaluate(tiny_dataset, ["dense", f"dense:{out}"], cache_dir=tmp_path / "cache")
    assert evaluated.suites[0].aggregates[f"dense:{out}"]["ndcg@10"] > 0.3


def test_known_positives_from_other_judgements_are_excluded_and_replaced(tiny_dataset: Path, tiny_model: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from harness.train.mining import MiningConfig, mine

    dataset = load_dataset(tiny_dataset)
    pairs = pairs_from_qrels(dataset)
    known = {p.query_id: {"d0", "d1", "d2", "d3"} for p in pairs}
    model = SentenceTransformer(str(tiny_model), device="cpu")
    result = mine(pairs, dataset, model, MiningConfig(range_max=8, relative_margin=None, num_negatives=2), extra_positives=known)
    assert len(result.examples) == len(pairs)
    for example in result.examples:
        assert len(example.negative_ids) == 2
        assert not set(example.negative_ids) & (known[example.query_id] | {example.doc_id})
