"""The ``feedhub`` command line: check, poll, build, serve, status and the rest.

This module only builds the command group; each command lives with its kin in
a submodule and calls the stages (mostly through :mod:`feedhub.operations`).
Each command imports what only it needs (the HTTP client, the parser, the
renderer, the server, rich…) when it runs: ``feedhub --help``, ``check`` or a
poll of 304s should not pay for every other command's libraries.

Exit codes: 0 success, 2 bad configuration or usage, 1 anything else.
"""

from __future__ import annotations

from pathlib import Path

import click

from feedhub import __version__
from feedhub.cli import maintain, opml, poll, preview, serve, sources, status
from feedhub.config import DEFAULT_PATH
from feedhub.log import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), envvar="FEEDHUB_CONFIG",
              default=DEFAULT_PATH, show_default=True, help="feeds.yaml to use ($FEEDHUB_CONFIG).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default: WARNING; "
              "for run, server.log_level).",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.version_option(__version__, prog_name="feedhub")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, log_level: str | None) -> None:
    """feedhub: follow RSS/Atom sources and republish them as merged per-category feeds."""
    setup_logging(log_level or "WARNING")
    ctx.ensure_object(dict)
    ctx.obj["path"] = config_path
    ctx.obj["log_level"] = log_level


for _group in (poll, serve, status, sources, preview, opml, maintain):
    for _command in _group.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


__all__ = ["cli", "main"]
