"""``harness datasets``: the demo dataset, downloads and validation."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import out_option, seed_option, unknown_docs_option


@click.group("datasets")
def datasets() -> None:
    """Write the embedded demo dataset, download BEIR datasets, validate a folder.

    \b
    Example:
      harness datasets demo --out data/demo
      harness datasets validate --data data/demo
    """


@datasets.command("demo")
@out_option
@click.option("--seed", type=int, default=13, show_default=True, help="Generator seed; the same seed gives byte-identical files.")
def demo_dataset(out: Path, seed: int) -> None:
    """Write the synthetic domain dataset (codenames, lookalikes, colloquial queries).

    \b
    Example:
      harness datasets demo --out data/demo --seed 13
    """
    from harness.data.demo import write_demo_dataset

    path = write_demo_dataset(out, seed=seed)
    click.echo(f"wrote the demo dataset to {path}")


@datasets.command("download")
@click.argument("name")
@out_option
@click.option("--url", help="Download from this address instead of the BEIR mirror.")
def download(name: str, out: Path, url: str | None) -> None:
    """Download a public BEIR dataset by NAME (needs internet), checked and unpacked into OUT/NAME.

    \b
    Example:
      harness datasets download scifact --out data
    """
    from harness.data.download import download_beir

    path = download_beir(name, out, url=url)
    click.echo(f"downloaded {name} to {path}")


@datasets.command("validate")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="A dataset folder in BEIR format.")
@unknown_docs_option
def validate(data: Path, unknown_docs: str) -> None:
    """Check a BEIR folder and print its counts and hashes (exit 3 on the first problem).

    \b
    Example:
      harness datasets validate --data ../shared/datasets/scifact
      harness datasets validate --data data/nfcorpus --unknown-docs keep
    """
    import json

    from harness.data import load_dataset

    dataset = load_dataset(data, unknown_docs=unknown_docs)
    click.echo(json.dumps(dataset.provenance(dataset.available_splits()), indent=1))
