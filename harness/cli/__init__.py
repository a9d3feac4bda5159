"""The ``harness`` command line. Subcommands live in their own modules and load lazily,
so ``harness --help`` answers without importing torch."""

from __future__ import annotations

import importlib
import sys

import click

from harness.errors import HarnessError

# exit codes shared by every command
EXIT_OK = 0
EXIT_FAIL = 1
EXIT_INCONCLUSIVE = 2
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C

COMMANDS = {
    "datasets": ("harness.cli.datasets", "datasets"),
    "eval": ("harness.cli.evaluate", "eval_command"),
    "demo": ("harness.cli.demo", "demo"),
    "compare": ("harness.cli.compare", "compare"),
    "gate": ("harness.cli.gate", "gate"),
    "mine": ("harness.cli.train", "mine"),
    "finetune": ("harness.cli.train", "finetune"),
    "ab": ("harness.cli.ab", "ab"),
    "report": ("harness.cli.report", "report"),
    "models": ("harness.cli.models", "models"),
    "index": ("harness.cli.index", "index"),
    "embed": ("harness.cli.embed", "embed"),
}

SUMMARIES = {
    "datasets": "Write the demo dataset, download BEIR datasets, validate a folder.",
    "eval": "Evaluate retrievers on a dataset's suites and write a result.",
    "demo": "Run the whole pipeline on the embedded demo dataset.",
    "compare": "Compare candidates with a baseline using paired statistics.",
    "gate": "Decide from a policy whether a candidate may be promoted.",
    "mine": "Mine hard negatives for training pairs.",
    "finetune": "Fine-tune a bi-encoder or a cross-encoder reranker.",
    "ab": "Online A/B tests: ingest logs, analyse, decide, interleave.",
    "report": "Render results as HTML, Markdown or terminal text.",
    "models": "Model versions in MLflow: register, promote after a gate, roll back.",
    "index": "Serving indexes in a vector database: plan, build, swap, roll back, prune.",
    "embed": "Encode a corpus into Parquet shards (locally or on Spark) that dense reads.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module_name, attr = COMMANDS[name]
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES[name]) for name in self.list_commands(ctx)]
        if not rows:
            return
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _available(name: str) -> bool:
    return importlib.util.find_spec(COMMANDS[name][0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="embedding-harness")
def cli() -> None:
    """Evaluate, gate and A/B-test domain fine-tuned embedding models.

    Exit codes, the same for every command: 0 success or pass, 1 fail (or roll back),
    2 inconclusive (or hold), 3 error; 130 when stopped by Ctrl-C.

    \b
    Example:
      harness datasets demo --out data/demo
      harness eval --data data/demo --retriever bm25 --retriever dense --out out/eval
    """


def main(argv: list[str] | None = None) -> None:
    import warnings

    # ranx's numba kernels warn about their own integer casts on every first call
    warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
    try:
        cli.main(args=argv, standalone_mode=False)
    except HarnessError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into its own Abort; an Abort of its own (a declined prompt) stays an error
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted()
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C outside click's own handling
        _interrupted()
    except Exception as exc:  # an error never passes: anything unexpected exits 3
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        if "--debug" in sys.argv or __import__("os").environ.get("HARNESS_DEBUG"):
            raise
        sys.exit(EXIT_ERROR)


def _interrupted() -> None:
    """Ctrl-C: one line, and the shell's exit code for it; the outputs are as they were
    (``harness.files.staged`` holds the signal back while they are put in place)."""
    click.echo("interrupted", err=True)
    sys.exit(EXIT_INTERRUPTED)
