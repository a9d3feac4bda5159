"""``harness demo``: the whole pipeline on the embedded demo dataset, stage by stage.

Each stage runs the same commands a user would type (see ``commands`` in each stage),
in this process, so models load once; every stage writes into ``--out`` and a second run
reuses what the first one made (the demo dataset, the embedding cache, the fine-tuned
models).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from harness.cli.demo_loop import stage_loop
from harness.cli.options import OutputPath, cache_option, device_option, seed_option
from harness.errors import HarnessError

BASE = "dense"
# the demo trains on the exact-document judgements only (grade 2); its texts are at most 76
# tokens, under MiniLM's 256, so no truncation is asked for: trained at the model's own length,
# a model's vectors before training are cached under the key its evaluation reads them by
DEMO_TRAINING = ("--min-grade", "2")
# round 1 trains one pass, in-batch negatives, on the 1,000 training pairs: the demo's 600 s on
# two cores leave no room for the default second pass on mined hard negatives (about 150 s
# more); round 2 (the loop stage) trains on hard negatives, the logs' skip-above ones
# (docs/finetuning.md, "The demo's budget")
BI_ENCODER_TRAINING = ("--passes", "in-batch")
# the reranker arm reorders the base model's top 10; the reranker is trained on negatives from
# that same top 10 and validated by reranking it (harness finetune --rerank-top), on 200 of the
# 1,000 training queries (200 lists of 5: 25 steps, validated once,
# at the end), which is what the demo's time budget allows; it starts from the fine-tuned
# bi-encoder (a new head on weights that already know the domain's names), which learns
# faster from so few pairs than MiniLM. Such a reranker does not beat its first stage; with all
# 1,000 queries (the command's default, about 500 s of training here) it gains +0.033 on the
# test split (docs/finetuning.md, "How many pairs a reranker with a new head needs")
RERANK_TOP = 10
RERANK_TRAINING = ("--rerank-top", str(RERANK_TOP), "--max-pairs", "200")
# round 1's A/B test: its logs are round 2's training pairs (about 0.4 a user), so the
# number of users sets round 2's training time as well as the test's power
ROUND1_USERS = 2000
GROUPS = ("ab", "models", "index", "datasets")  # commands whose second word names what ran


@dataclass
class DemoState:
    out: Path
    data: Path
    cache_dir: Path
    seed: int
    embedded: bool
    console: object
    device: str = "auto"
    findings: dict[str, str] = field(default_factory=dict)

    @property
    def device_args(self) -> list[str]:
        """``--device`` for the commands that load models, when one was asked for."""
        return [] if self.device == "auto" else ["--device", self.device]

    @property
    def finetuned(self) -> Path:
        return self.out / "models" / "ft-minilm"

    @property
    def reranker(self) -> Path:
        return self.out / "models" / "reranker"

    def suites(self) -> list[str]:
        from harness.data.demo import HELD_OUT_SUBDOMAIN

        held_out = [f"slice:subdomain={HELD_OUT_SUBDOMAIN}"] if self.embedded else []
        disjoint = ["slice:doc-disjoint"] if (self.data / "qrels" / "train.tsv").exists() else []
        return ["heldout", *held_out, *disjoint]

    def arms(self) -> list[str]:
        arms = ["bm25", BASE, f"hybrid(bm25,{BASE})"]
        if self.embedded:  # the demo's queries carry their subdomain: the metadata-filter arm, nothing to train
            arms.append(f"filter(first={BASE},field=subdomain)")
        if (self.reranker / "training_card.json").exists():  # served as validated: its card names the arm
            card = json.loads((self.reranker / "training_card.json").read_text(encoding="utf-8"))
            arms.append(card["first_stage"]["rerank_spec"])
        if self.finetuned.exists():
            arms += [f"dense:{self.finetuned}", f"hybrid(bm25,dense:{self.finetuned})"]
        return arms

    def run(self, *args: str, allowed: tuple[int, ...] = (0,)) -> int:
        """Run one harness command in this process; returns its exit code."""
        from harness.cli import cli

        self.console.print(f"$ harness {shlex.join(args)}", style="cyan", highlight=False)
        started = time.perf_counter()
        try:
            cli.main(args=list(args), standalone_mode=False)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        if code not in allowed:
            raise HarnessError(f"demo: `harness {shlex.join(args)}` exited {code}")
        self.console.print(f"  (harness {args[0]}{' ' + args[1] if args[0] in GROUPS else ''}: {time.perf_counter() - started:.1f} s)",
                           style="dim", highlight=False)
        return code


def stage_dataset(state: DemoState) -> None:
    if (state.data / "corpus.jsonl").exists():
        state.console.print(f"{state.data} exists: reusing it")
        return
    state.run("datasets", "demo", "--out", str(state.data))


def stage_baselines(state: DemoState) -> None:
    out = state.out / "eval-baselines"
    state.run(
        "eval", "--data", str(state.data),
        *_each("--retriever", ["bm25", BASE, f"hybrid(bm25,{BASE})"]),
        *_each("--suite", state.suites()),
        "--out", str(out), "--cache", str(state.cache_dir), "--seed", str(state.seed), *state.device_args,
    )


def stage_finetune(state: DemoState) -> None:
    if (state.finetuned / "training_card.json").exists():
        state.console.print(f"{state.finetuned} exists: reusing it (delete it to train again)")
    else:
        state.run(
            "finetune", "--data", str(state.data), "--base", "default", "--out", str(state.finetuned),
            *DEMO_TRAINING, *BI_ENCODER_TRAINING, "--cache", str(state.cache_dir), "--seed", str(state.seed + 42), *state.device_args,
        )
    if (state.reranker / "training_card.json").exists():
        state.console.print(f"{state.reranker} exists: reusing it")
    else:
        state.run(
            "finetune", "--data", str(state.data), "--cross-encoder", "--base", str(state.finetuned), "--out", str(state.reranker),
            *DEMO_TRAINING, *RERANK_TRAINING, "--cache", str(state.cache_dir), "--seed", str(state.seed + 42), *state.device_args,
        )


def stage_evaluate(state: DemoState) -> None:
    state.run(
        "eval", "--data", str(state.data),
        *_each("--retriever", state.arms()),
        *_each("--suite", [*state.suites(), "mteb:local"]),
        "--out", str(state.out / "eval"), "--cache", str(state.cache_dir), "--seed", str(state.seed), *state.device_args,
    )
    state.run(
        "compare", str(state.out / "eval" / "result.json"), "--baseline", BASE,
        "--metric", "ndcg@10", "--metric", "recall@100", "--out", str(state.out / "compare"),
    )
    compare = json.loads((state.out / "compare" / "compare.json").read_text())
    state.findings["compare"] = _headline_comparison(compare)


def stage_gate(state: DemoState) -> None:
    if not state.finetuned.exists():
        raise HarnessError("demo: the gate stage needs the fine-tuned model: run the finetune stage first")
    policy = Path(__file__).resolve().parents[2] / "examples" / "gate.toml"
    code = state.run(
        "gate", "--policy", str(policy), "--data", str(state.data), "--baseline", BASE,
        "--candidate", f"dense:{state.finetuned}", "--results", str(state.out / "eval" / "result.json"),
        "--out", str(state.out / "gate"), *state.device_args, allowed=(0, 1, 2),
    )
    verdict = {0: "PASS (promote)", 1: "FAIL (do not promote)", 2: "INCONCLUSIVE (hold)"}[code]
    state.findings["gate"] = f"gate, fine-tuned vs base MiniLM: {verdict}, exit {code}"


def stage_ab(state: DemoState) -> None:
    if not state.finetuned.exists():
        raise HarnessError("demo: the A/B stage needs the fine-tuned model: run the finetune stage first")
    ab = state.out / "ab"
    logs = ab / "logs"
    db = ab / "ab.duckdb"
    if db.exists():
        db.unlink()  # a fresh store: the simulation is seeded, so the result is the same
    state.run(
        "ab", "simulate", "--out", str(logs), "--data", str(state.data),
        "--retriever", BASE, "--retriever", f"dense:{state.finetuned}", "--variant", "control", "--variant", "treatment",
        "--users", str(ROUND1_USERS), "--days", "14", "--cache", str(state.cache_dir), "--seed", str(state.seed), *state.device_args,
    )
    state.run("ab", "ingest", "--db", str(db), "--experiment", str(logs / "experiment.json"), str(logs / "*.jsonl"))
    state.run("ab", "analyze", "--db", str(db), "--out", str(ab / "analysis.json"), "--seed", str(state.seed))
    code = state.run(
        "ab", "decide", "--db", str(db), "--analysis", str(ab / "analysis.json"), "--who", "harness demo",
        "--out", str(ab / "decision.json"), allowed=(0, 1, 2),
    )
    decision = json.loads((ab / "decision.json").read_text())
    reason = _first_reason(decision)
    state.findings["ab"] = f"A/B test, fine-tuned vs base: {['PROMOTE', 'ROLL BACK', 'HOLD'][code]}" + (f" ({reason})" if reason else "")


def stage_report(state: DemoState) -> None:
    inputs = [
        path
        for path in (
            state.out / "eval" / "result.json",
            state.out / "compare" / "compare.json",
            state.out / "gate" / "gate.json",
            state.finetuned,
            state.reranker,
            state.out / "ab" / "analysis.json",
            state.out / "ab" / "decision.json",
            state.out / "loop" / "loop.json",
            state.out / "loop" / "compare" / "compare.json",
            state.out / "loop" / "gate" / "gate.json",
            state.out / "models" / "ft-round2",
            state.out / "loop" / "ab" / "decision.json",
        )
        if path.exists()
    ]
    if not inputs:
        inputs = [state.out / "eval-baselines" / "result.json"]
    state.run(
        "report", *map(str, inputs), "--html", str(state.out / "report.html"),
        "--markdown", str(state.out / "report.md"), "--quiet",
    )


STAGES: dict[str, Callable[[DemoState], None]] = {
    "dataset": stage_dataset,
    "baselines": stage_baselines,
    "finetune": stage_finetune,
    "evaluate": stage_evaluate,
    "gate": stage_gate,
    "ab": stage_ab,
    "loop": stage_loop,
    "report": stage_report,
}


def _each(option: str, values: list[str]) -> list[str]:
    return [item for value in values for item in (option, value)]


def _headline_comparison(compare: dict) -> str:
    """One line from the compare result: the best arm against base MiniLM on held-out test."""
    rows = [
        row for row in compare.get("comparisons", [])
        if row.get("metric") == "ndcg@10" and str(row.get("suite", "")).startswith("heldout")
    ]
    if not rows:
        return "compare: no held-out nDCG@10 comparison found"
    best = max(rows, key=lambda row: row["difference"])
    return (
        f"best arm on held-out test: {best['candidate']}, nDCG@10 {best['candidate_mean']:.3f} vs base "
        f"{best['baseline_mean']:.3f} ({best['difference']:+.3f}, 95% CI {best['ci_low']:+.3f} to {best['ci_high']:+.3f}, "
        f"Holm-adjusted p={best['p_adjusted']:.2g})"
    )


def _first_reason(decision: dict) -> str:
    treatments = decision.get("decision", {}).get("treatments") or [{}]
    reasons = treatments[0].get("reasons") or []
    return str(reasons[0]) if reasons else ""


@click.command("demo")
@click.option("--out", type=OutputPath(), default=Path("demo-out"), show_default=True, help="Output folder.")
@click.option("--data", type=click.Path(path_type=Path), help="Run the pipeline on this BEIR folder instead of the embedded demo dataset.")
@click.option("--stage", "stages", multiple=True, type=click.Choice(list(STAGES)), help="Run only these stages (repeatable).")
@cache_option
@seed_option
@device_option
def demo(out: Path, data: Path | None, stages: tuple[str, ...], cache_dir: Path | None, seed: int) -> None:
    """Run the whole pipeline offline: dataset, baselines, fine-tuning, evaluation of every
    arm, the gate, an A/B test, the HTML report; prints each stage's time.

    \b
    Example:
      harness demo --out demo-out
      harness demo --out demo-out --stage gate --stage report
      harness demo --data ../shared/datasets/scifact --out scifact-out --stage baselines
    """
    from rich.console import Console

    from harness.provenance import selected_device

    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    state = DemoState(
        out=out,
        data=data or out / "data",
        cache_dir=cache_dir or out / "cache",
        seed=seed,
        embedded=data is None,
        console=console,
        device=selected_device(),
    )
    # the baselines stage evaluates arms the evaluate stage evaluates again beside the trained
    # ones: the whole run leaves it out (--stage baselines runs it, before anything is trained)
    chosen = [name for name in STAGES if name in stages] if stages else [name for name in STAGES if name != "baselines"]
    if data is not None and "dataset" in chosen:
        chosen.remove("dataset")
    timings: dict[str, float] = {}
    started_all = time.perf_counter()
    for name in chosen:
        console.rule(f"stage: {name}")
        started = time.perf_counter()
        STAGES[name](state)
        timings[name] = time.perf_counter() - started
        console.print(f"stage {name} took {timings[name]:.1f} s", style="bold")
    console.rule("summary")
    for name, seconds in timings.items():
        console.print(f"  {name:<10} {seconds:7.1f} s")
    console.print(f"  {'total':<10} {time.perf_counter() - started_all:7.1f} s")
    for finding in state.findings.values():
        click.echo(f"* {finding}")
    if (out / "report.html").exists() and "report" in chosen:
        click.echo(f"report: {(out / 'report.html').resolve()}")
