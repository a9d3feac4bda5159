"""Write the CLI reference (Markdown) from click's own help: ``python -m harness.cli.reference``."""

from __future__ import annotations

import click

from harness.cli import cli


def _walk(command: click.Command, path: list[str]) -> list[tuple[str, str]]:
    context = click.Context(command, info_name=" ".join(path))
    pages = [(" ".join(path), command.get_help(context))]
    if isinstance(command, click.Group):
        for name in command.list_commands(context):
            pages += _walk(command.get_command(context, name), [*path, name])
    return pages


def reference() -> str:
    parts = ["# CLI reference", "", "Generated from click by `python -m harness.cli.reference`.", ""]
    for name, text in _walk(cli, ["harness"]):
        parts += [f"## `{name}`", "", "```", text.rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference())
