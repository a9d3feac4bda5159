"""``--device``: one option on every command that loads a model, checked before any work,
and the device recorded in every result. Runs on the CPU; the GPU test runs where CUDA is."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from conftest import requires_minilm
from harness import provenance
from harness.errors import HarnessError

MODEL_COMMANDS = [["eval"], ["gate"], ["finetune"], ["mine"], ["ab", "simulate"], ["ab", "interleave"], ["demo"]]


def _harness(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the harness as the shell does (``harness.cli.main``): exit code and stderr."""
    from harness.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _auto_again():
    yield
    provenance.select_device("auto")  # the next test starts as a fresh process would


def _command(path: list[str]):
    import click

    from harness.cli import cli

    command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)
    return command


def test_every_command_that_loads_a_model_takes_the_one_device_option() -> None:
    from harness.cli.options import device_option

    reference = device_option(lambda: None).__click_params__[0]
    for path in MODEL_COMMANDS:
        options = [p for p in _command(path).params if "--device" in p.opts]
        assert len(options) == 1, path
        assert options[0].help == reference.help and options[0].default == "auto" and options[0].callback is reference.callback


@pytest.mark.parametrize("path", MODEL_COMMANDS, ids=lambda path: " ".join(path))
def test_a_bad_device_name_is_one_line_exit_3_before_any_work(path: list[str], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, err = _harness([*path, "--device", "gpu0", "--out", str(out)], capsys)
    assert code == 3
    assert err.strip() == "error: --device 'gpu0': not a device name (known: auto, cpu, cuda, cuda:N or mps)"
    assert not out.exists()


def test_cuda_where_there_is_none_is_one_line_exit_3(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    for device in ("cuda", "cuda:1"):
        code, err = _harness(["eval", "--data", str(tiny_dataset), "--retriever", "bm25", "--out", str(tmp_path / "e"),
                              "--device", device], capsys)
        assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"error: --device {device}: no CUDA GPU on this machine") and "--device cpu" in err
    assert not (tmp_path / "e").exists()


def test_a_gpu_by_index_is_refused_for_training_before_any_folder(tiny_dataset: Path, tiny_model: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.train.bi_encoder import finetune

    monkeypatch.setattr(provenance, "_selected", "cuda:1")  # as select_device leaves it on a machine with two GPUs
    with pytest.raises(HarnessError, match="CUDA_VISIBLE_DEVICES=1 and --device cuda"):
        finetune(tiny_dataset, str(tiny_model), tmp_path / "ft")
    assert not (tmp_path / "ft").exists() and not (tmp_path / ".ft.partial").exists()


@requires_minilm
def test_device_cpu_is_recorded_in_the_eval_result(tiny_dataset: Path, tiny_cross_encoder: Path, tmp_path: Path, capsys) -> None:
    """MiniLM and a reranker on ``--device cpu``: the result's provenance and each model
    retriever's description say so; a second, fully cached run still says where it ran."""
    out = tmp_path / "eval"
    rerank = f"rerank({tiny_cross_encoder},top=3,first=bm25)"
    args = ["eval", "--data", str(tiny_dataset), "--retriever", "dense", "--retriever", rerank,
            "--out", str(out), "--cache", str(tmp_path / "cache"), "--device", "cpu"]
    for _ in range(2):
        code, err = _harness(args, capsys)
        assert code == 0, err
        result = json.loads((out / "result.json").read_text())
        device = result["provenance"]["device"]
        assert device["requested"] == "cpu" and device["device"] == "cpu" and device["name"]
        # what a speed figure depends on, which the model name does not tell (docs/scaling.md)
        extensions = result["provenance"]["machine"]["vector_extensions"]
        assert extensions is None or set(extensions) <= set(provenance.VECTOR_EXTENSIONS)
        if Path("/proc/cpuinfo").is_file() and platform.machine() == "x86_64":
            flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
            assert extensions == [name for name in provenance.VECTOR_EXTENSIONS if name in flags]
        described = {r["spec"]: r["description"] for r in result["retrievers"]}
        assert described["dense"]["device"] == "cpu"
        assert described[rerank]["device"] == "cpu"
    assert described["dense"]["latency_cached"]


def test_device_cpu_is_recorded_by_mining_and_fine_tuning(tiny_dataset: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    mined = tmp_path / "mined"
    code, err = _harness(["mine", "--data", str(tiny_dataset), "--model", str(tiny_model), "--out", str(mined),
                          "--range-max", "6", "--num-negatives", "2", "--cache", str(tmp_path / "cache"), "--device", "cpu"], capsys)
    assert code == 0, err
    assert json.loads((mined / "mining.json").read_text())["device"] == "cpu"
    ft = tmp_path / "ft"
    code, err = _harness(["finetune", "--data", str(tiny_dataset), "--base", str(tiny_model), "--out", str(ft),
                          "--batch-size", "4", "--range-max", "5", "--relative-margin", "-1", "--cache", str(tmp_path / "cache"),
                          "--device", "cpu"], capsys)
    assert code == 0, err
    card = json.loads((ft / "training_card.json").read_text())
    assert card["provenance"]["device"]["requested"] == "cpu" and card["provenance"]["device"]["device"] == "cpu"
    assert {rec["device"] for rec in card["passes"].values()} == {"cpu"}
    assert card["mining"]["device"] == "cpu"
    readme = (ft / "README.md").read_text()
    assert "- device: cpu (" in readme and ", --device cpu" in readme and "on cpu, finished on " in readme


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_a_gpu_is_used_without_a_flag_and_recorded(tiny_dataset: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    import torch

    spec = f"dense:{tiny_model}"
    code, err = _harness(["eval", "--data", str(tiny_dataset), "--retriever", spec, "--out", str(tmp_path / "e"),
                          "--cache", str(tmp_path / "cache")], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "e" / "result.json").read_text())
    assert result["provenance"]["device"] == {"requested": "auto", "device": "cuda:0", "name": torch.cuda.get_device_name(0),
                                              "cuda": torch.version.cuda}
    assert result["retrievers"][0]["description"]["device"] == "cuda:0"
    from harness.train.bi_encoder import FinetuneConfig, finetune

    card = finetune(tiny_dataset, str(tiny_model), tmp_path / "ft", FinetuneConfig(passes="in-batch", batch_size=4),
                    cache_dir=tmp_path / "cache").card
    assert card["passes"]["pass1"]["device"].startswith("cuda:0")
