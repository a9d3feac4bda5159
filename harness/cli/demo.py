"""``harness demo``: the whole pipeline on the embedded demo dataset, stage by stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from harness.cli.options import cache_option, seed_option


@dataclass
class DemoState:
    out: Path
    data: Path
    cache_dir: Path | None
    seed: int
    held_out_slice: str | None
    findings: list[str] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)


def stage_dataset(state: DemoState) -> None:
    from harness.data.demo import HELD_OUT_SUBDOMAIN, write_demo_dataset

    if not (state.data / "corpus.jsonl").exists():
        write_demo_dataset(state.data, seed=13)
    state.held_out_slice = f"subdomain={HELD_OUT_SUBDOMAIN}"


def stage_baselines(state: DemoState) -> None:
    from harness.evaluate import evaluate
    from reports.terminal import print_eval

    suites = ["heldout", "slice:doc-disjoint"]
    if state.held_out_slice:
        suites.insert(1, f"slice:{state.held_out_slice}")
    result = evaluate(
        state.data,
        ["bm25", "dense", "hybrid(bm25,dense)"],
        suites,
        out=state.out / "eval-baselines",
        cache_dir=state.cache_dir,
        seed=state.seed,
    )
    print_eval(result)
    heldout = result.suite(suites[0]).aggregates
    best = max(heldout, key=lambda spec: heldout[spec]["ndcg@10"])
    state.findings.append(
        f"baselines on held-out test: "
        + ", ".join(f"{spec} nDCG@10 {values['ndcg@10']:.3f}" for spec, values in heldout.items())
        + f"; best: {best}"
    )
    state.artifacts["baselines"] = state.out / "eval-baselines" / "result.json"


STAGES: dict[str, Callable[[DemoState], None]] = {
    "dataset": stage_dataset,
    "baselines": stage_baselines,
}


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True, help="Output folder.")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Run the pipeline on this BEIR folder instead of the embedded demo dataset.",
)
@click.option("--stage", "stages", multiple=True, type=click.Choice(list(STAGES)), help="Run only these stages (repeatable).")
@cache_option
@seed_option
def demo(out: Path, data: Path | None, stages: tuple[str, ...], cache_dir: Path | None, seed: int) -> None:
    """Run the whole pipeline on the embedded demo dataset, offline, printing each stage's time.

    \b
    Example:
      harness demo --out demo-out
      harness demo --data ../shared/datasets/scifact --stage baselines
    """
    from rich.console import Console

    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    state = DemoState(
        out=out,
        data=data or out / "data",
        cache_dir=cache_dir or out / "cache",
        seed=seed,
        held_out_slice=None,
    )
    chosen = [name for name in STAGES if not stages or name in stages]
    if data is not None and "dataset" in chosen:
        chosen.remove("dataset")
    timings: dict[str, float] = {}
    total_started = time.perf_counter()
    for name in chosen:
        console.rule(f"stage: {name}")
        started = time.perf_counter()
        STAGES[name](state)
        timings[name] = time.perf_counter() - started
        console.print(f"stage {name} took {timings[name]:.1f} s", style="bold")
    console.rule("summary")
    for name, seconds in timings.items():
        console.print(f"  {name:<12} {seconds:7.1f} s")
    console.print(f"  {'total':<12} {time.perf_counter() - total_started:7.1f} s")
    for finding in state.findings:
        click.echo(f"- {finding}")
