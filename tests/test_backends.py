"""Encoding backends as arms: OpenVINO fp32 and static int8 against the torch arm they come from.

The OpenVINO tests need the openvino extra (``make openvino``, its own environment) and skip
without it; the option checks run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.adapters import build_retriever
from harness.adapters.backends import EncodingBackend, calibration_sample
from harness.data import load_dataset
from harness.errors import HarnessError
from conftest import requires_minilm

OPENVINO_INSTALLED = all(importlib.util.find_spec(module) is not None for module in ("openvino", "optimum", "nncf"))
requires_openvino = pytest.mark.skipif(not OPENVINO_INSTALLED, reason="the openvino extra is not installed (make openvino)")


@pytest.fixture
def corpus(tiny_dataset: Path):
    return load_dataset(tiny_dataset).corpus


@pytest.mark.parametrize("options, message", [
    ("backend=onnx", "dense: backend=onnx is not available: sentence-transformers loads ONNX through optimum-onnx"),
    ("backend=tensorrt", "dense: unknown backend 'tensorrt' (known: torch, openvino, onnx)"),
    ("quant=int8", "dense: quant=int8 needs backend=openvino"),
    ("backend=openvino,quant=int4", "dense: unknown quant 'int4' (known: int8)"),
])
def test_backend_options_are_refused_in_one_line_before_any_model_loads(options: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as error:
        build_retriever(f"dense:/no/such/model({options})", tmp_path)
    assert str(error.value).startswith(message)


@pytest.mark.skipif(OPENVINO_INSTALLED, reason="the openvino extra is installed")
def test_openvino_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"dense: backend=openvino needs .*make openvino"):
        build_retriever("dense:/no/such/model(backend=openvino)", tmp_path)


def test_the_torch_arm_keeps_its_cache_namespace_and_says_its_backend(corpus, tiny_model: Path, tmp_path: Path) -> None:
    arm = build_retriever(f"dense:{tiny_model}", tmp_path)
    arm.build(corpus)
    info = arm.describe()
    assert (info["backend"], info["quantisation"]) == ("torch", None) and "calibration" not in info
    # the key the embedding cache had before backends existed: earlier caches stay valid
    assert arm.encoder_key == info["fingerprint"]


def test_calibration_is_a_seeded_sample_of_distinct_corpus_texts() -> None:
    texts = [f"text {i}" for i in range(1000)] + ["text 1", "  "]
    sample = calibration_sample(texts, size=300)
    assert len(sample) == 300 == len(set(sample)) and sample == calibration_sample(texts, size=300)
    assert sample == sorted(sample, key=texts.index)  # corpus order
    assert calibration_sample(["a", "a", "b", ""]) == ["a", "b"]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@requires_openvino
def test_openvino_fp32_is_torch_exported_once_by_fingerprint(corpus, tiny_model: Path, tmp_path: Path) -> None:
    torch_arm = build_retriever(f"dense:{tiny_model}", tmp_path)
    torch_arm.build(corpus)
    reference = torch_arm.embed_documents(corpus)
    arm = build_retriever(f"dense:{tiny_model}(backend=openvino)", tmp_path)
    arm.build(corpus)
    info = arm.describe()
    fingerprint = torch_arm.describe()["fingerprint"]
    assert (info["backend"], info["quantisation"], info["fingerprint"]) == ("openvino", None, fingerprint)
    assert info["encoded_documents"] == len(corpus)  # its own cache namespace, not the torch arm's vectors
    assert _cosines(arm.embed_documents(corpus), reference).min() > 0.9999
    exported = tmp_path / "backends" / f"{fingerprint}+openvino" / "openvino" / "openvino_model.xml"
    stamp = exported.stat().st_mtime_ns
    again = build_retriever(f"dense:{tiny_model}(backend=openvino)", tmp_path)
    assert _cosines(again.model.encode(["forgot my password"]), arm.model.encode(["forgot my password"]))[0] > 0.99999
    assert exported.stat().st_mtime_ns == stamp  # loaded from the cache, not exported again
    run = arm.search({"q": "forgot my password"}, 3)
    assert run.ranking("q") == torch_arm.search({"q": "forgot my password"}, 3).ranking("q")


@requires_openvino
def test_int8_is_calibrated_on_the_corpus_and_is_an_arm_of_its_own(corpus, tiny_model: Path, tmp_path: Path) -> None:
    spec = f"dense:{tiny_model}(backend=openvino,quant=int8)"
    torch_arm = build_retriever(f"dense:{tiny_model}", tmp_path)
    reference = torch_arm.embed_documents(corpus)
    arm = build_retriever(spec, tmp_path)
    arm.build(corpus)
    info = arm.describe()
    texts = [doc.content for doc in corpus.values()]
    assert (info["backend"], info["quantisation"]) == ("openvino", "int8")
    assert info["calibration"]["texts"] == len(texts) and info["calibration"]["source"] == "the evaluated corpus"
    assert arm.encoder_key == f"{info['fingerprint']}+openvino+int8+{info['calibration']['sha256']}"
    folder = tmp_path / "backends" / arm.encoder_key
    assert sorted(p.name for p in (folder / "openvino").iterdir()) == ["openvino_model_qint8_quantized.bin",
                                                                       "openvino_model_qint8_quantized.xml"]
    export = json.loads((folder / "harness_export.json").read_text())
    assert export["source_fingerprint"] == info["fingerprint"] and export["calibration"] == info["calibration"]
    vectors = arm.embed_documents(corpus)
    assert not np.allclose(vectors, reference)  # int8 vectors, never the torch arm's
    assert _cosines(vectors, reference).mean() > 0.9
    cached = build_retriever(spec, tmp_path)
    cached.build(corpus)
    assert cached.describe()["encoded_documents"] == 0 and np.array_equal(cached.embed_documents(corpus), vectors)


@requires_openvino
def test_int8_of_another_corpus_is_calibrated_again(corpus, tiny_model: Path, tmp_path: Path) -> None:
    first = build_retriever(f"dense:{tiny_model}(backend=openvino,quant=int8)", tmp_path)
    first.build(corpus)
    smaller = dict(list(corpus.items())[:5])
    second = build_retriever(f"dense:{tiny_model}(backend=openvino,quant=int8)", tmp_path)
    second.build(smaller)
    assert second.describe()["calibration"]["texts"] == 5 and second.encoder_key != first.encoder_key


@requires_openvino
def test_an_int8_arm_must_see_its_corpus_before_it_encodes(tiny_model: Path, tmp_path: Path) -> None:
    arm = build_retriever(f"dense:{tiny_model}(backend=openvino,quant=int8)", tmp_path)
    with pytest.raises(HarnessError, match="calibrates on the evaluated corpus"):
        arm.model


@requires_openvino
@requires_minilm
@pytest.mark.minilm
def test_minilm_on_openvino_stays_close_to_torch_on_demo_documents(tmp_path: Path) -> None:
    from harness.data.demo import write_demo_dataset

    data = load_dataset(write_demo_dataset(tmp_path / "demo"))
    corpus = dict(list(data.corpus.items())[:200])
    reference = build_retriever("dense", tmp_path).embed_documents(corpus)
    # floors of cosine to torch (mean, min); measured on SciFact: fp32 0.99998 / 0.99997, int8 0.997 / 0.991
    for spec, mean_floor, min_floor in (("dense(backend=openvino)", 0.9999, 0.9999),
                                        ("dense(backend=openvino,quant=int8)", 0.99, 0.97)):
        cosines = _cosines(build_retriever(spec, tmp_path).embed_documents(corpus), reference)
        assert cosines.mean() > mean_floor and cosines.min() > min_floor, (spec, cosines.mean(), cosines.min())


@pytest.mark.skipif(OPENVINO_INSTALLED, reason="the openvino extra is installed")
def test_finetune_export_without_the_extra_fails_before_any_training(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    result = _harness("finetune", "--data", str(tiny_dataset), "--base", str(tiny_model), "--out", str(out),
                      "--export", "openvino", "--cache", str(tmp_path / "cache"))
    assert result.returncode == 3 and "--export openvino: backend=openvino needs" in result.stderr
    assert "make openvino" in result.stderr and not out.exists() and not (tmp_path / ".ft.partial").exists()


@pytest.mark.parametrize("options, message", [
    (["--quant", "int8"], "--quant int8 needs --export openvino"),
    (["--cross-encoder", "--export", "openvino"], "--export applies to a bi-encoder"),
])
def test_finetune_export_options_are_refused_in_one_line(options: list[str], message: str, tiny_dataset: Path,
                                                        tiny_model: Path, tmp_path: Path) -> None:
    result = _harness("finetune", "--data", str(tiny_dataset), "--base", str(tiny_model), "--out", str(tmp_path / "ft"), *options)
    assert result.returncode == 3 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ft").exists()


def _harness(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600)


@requires_openvino
def test_finetune_ends_by_exporting_to_int8_with_its_validation_cost(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    """The export lands in the model folder and in the cache the dense arm reads: evaluating
    dense:OUT(backend=openvino,quant=int8) afterwards exports nothing and serves its vectors."""
    from harness.train.bi_encoder import FinetuneConfig, finetune
    from harness.train.export import export_backend

    out, cache = tmp_path / "ft", tmp_path / "cache"
    config = FinetuneConfig(passes="in-batch", batch_size=4, validation_corpus_max=1000)
    result = finetune(tiny_dataset, str(tiny_model), out, config, cache_dir=cache, export=export_backend("openvino", "int8"))
    card = result.card
    export = card["export"]
    assert (export["backend"], export["quantisation"]) == ("openvino", "int8")
    assert export["calibration"]["source"] == "the evaluated corpus"
    assert set(export["validation"]) == set(export["torch_validation"]) >= {"val_ndcg@10"}
    assert export["cost"]["val_ndcg@10"] == pytest.approx(export["validation"]["val_ndcg@10"] - card["validation"]["after"]["val_ndcg@10"])
    assert (out / "openvino" / "openvino_model_qint8_quantized.xml").is_file() and (out / "openvino" / "harness_export.json").is_file()
    assert "## Export" in (out / "README.md").read_text()
    assert export["key"] == f"{card['fingerprint']}+openvino+int8+{export['calibration']['sha256']}"
    arm = build_retriever(f"dense:{out}(backend=openvino,quant=int8)", cache)
    arm.build(load_dataset(tiny_dataset).corpus)
    assert arm.encoder_key == export["key"]
    assert (cache / "backends" / export["key"] / "openvino").is_dir()
