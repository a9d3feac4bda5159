"""Options shared by every command, so each is spelled and documented once."""

from __future__ import annotations

from pathlib import Path

import click


class OutputPath(click.Path):
    """A path the command writes (a folder, or a file with ``folder=False``), checked as the
    option is read, so a file in the way or an unwritable place is a one-line error (exit 3)
    before any work starts (``harness.files.check_writable``)."""

    def __init__(self, folder: bool = True) -> None:
        super().__init__(path_type=Path)
        self.folder = folder

    def convert(self, value, param, ctx) -> Path:
        from harness.files import check_writable

        path = super().convert(value, param, ctx)
        return check_writable(path, folder=self.folder, option=param.opts[0] if param else "output")


data_option = click.option(
    "--data", "data", required=True, type=click.Path(path_type=Path), help="A dataset folder in BEIR format."
)
retriever_option = click.option(
    "--retriever",
    "retrievers",
    multiple=True,
    required=True,
    help="A retriever spec (repeatable): bm25, dense[:MODEL], hybrid(A,B), rerank(CE,top=N,first=SPEC).",
)
suite_option = click.option(
    "--suite",
    "suites",
    multiple=True,
    help="What to measure (repeatable): heldout[:SPLIT], slice:KEY=VALUE, slice:doc-disjoint, mteb:TASK. Default: heldout.",
)
out_option = click.option("--out", "out", type=OutputPath(), required=True, help="Output folder.")
cache_option = click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=Path),
    envvar="HARNESS_CACHE",
    help="Cache folder for embeddings and indexes (default ~/.cache/embedding-harness, or $HARNESS_CACHE).",
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed, recorded in the result.")
metric_option = click.option(
    "--metric", "metrics", multiple=True, help="Metric (repeatable), e.g. ndcg@10, recall@100, mrr@10, judged@10."
)
unknown_docs_option = click.option(
    "--unknown-docs",
    "unknown_docs",
    type=click.Choice(["error", "keep"]),
    default="error",
    show_default=True,
    help="A judgement for a document missing from the corpus: an error, or kept as BEIR and MTEB keep it "
    "(relevant, never retrievable; counted in the result).",
)


def _select_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from harness.provenance import select_device

    return select_device(value)


# checked and made the process's device as the option is read, before any work starts; the
# commands read it where models load (harness.adapters.models), so no command takes a value
device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    expose_value=False,
    callback=_select_device,
    help="Where models encode, rerank and train: auto (a GPU where there is one), cpu, cuda, cuda:N or mps.",
)
