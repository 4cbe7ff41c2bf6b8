"""Changing feeds.yaml from a command: derive the edit, show it, confirm, write, reload."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from feedhub.cli.common import Refused, interactive
from feedhub.config import Config
from feedhub.errors import ConfigError

if TYPE_CHECKING:
    from feedhub.edit import Edit


def derive(config: Config, make: Callable[[str], Edit]) -> tuple[str, Edit]:
    """The file's text and the edit ``make`` derives from it; an invalid result is refused."""
    from feedhub.edit import read_text

    text = read_text(config.path)
    try:
        return text, make(text)
    except ConfigError as e:
        raise Refused(f"the change would make {config.path} invalid, so nothing was "
                      f"written:\n{e}") from None


def show_and_write(config: Config, old_text: str, edit: Edit, yes: bool, verb: str) -> bool:
    """Show the change, ask unless ``yes`` or not interactive, write it; whether it was written."""
    adding = verb == "Adding to"
    click.echo(f"{verb} {config.path} (line {edit.line}):")
    for line in edit.lines:
        click.echo(click.style(("+ " if adding else "- ") + line, fg="green" if adding else "red"))
    if not yes and interactive() and not click.confirm("Write this change?", default=True):
        click.echo("Nothing written.")
        return False
    write(config, old_text, edit)
    return True


def write(config: Config, old_text: str, edit: Edit) -> None:
    """Replace feeds.yaml with the edited text, unless someone changed it meanwhile."""
    from feedhub.edit import write_atomically

    write_atomically(config.path, edit.text, expected=old_text)


def reload_daemon(config: Config) -> None:
    """Tell a running daemon to re-read feeds.yaml, and say what happened."""
    from feedhub.pidfile import reload_daemon as signal_daemon

    click.echo(signal_daemon(config.site.data_dir).message)
