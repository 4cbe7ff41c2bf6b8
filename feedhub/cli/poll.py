"""Commands that run the stages once: check, poll, build, prune."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click

from feedhub import operations
from feedhub.cli.common import config_of, handles_errors, run, with_store


@click.command()
@click.pass_context
@handles_errors
def check(ctx: click.Context) -> None:
    """Validate feeds.yaml; exit 0, or 2 with the errors."""
    config = config_of(ctx)
    click.echo(f"{config.path}: ok — {len(config.categories)} categories, "
               f"{len(config.sources)} sources")


@click.command()
@click.option("--source", "source_url", metavar="URL", help="Poll only this source.")
@click.option("--force", is_flag=True, help="Poll gone and rate-limited sources too, and "
              "re-read unchanged bodies.")
@click.pass_context
@handles_errors
def poll(ctx: click.Context, source_url: str | None, force: bool) -> None:
    """Fetch every (or one) source now, store, and republish what changed.

    On a terminal: a progress bar, then a table of what changed or failed.
    Otherwise: one line per source and a total.
    """
    from feedhub.summary import describe_outcome, is_terminal, poll_total

    config = config_of(ctx)
    sources = config.sources
    if source_url is not None:
        sources = tuple(s for s in sources if s.url == source_url)
        if not sources:
            raise click.UsageError(f"no source with URL {source_url} in {config.path}")

    console = progress = None
    if is_terminal():  # Rich (its progress bar and tables) only for a terminal
        from feedhub.report import PollProgress, make_console

        console = make_console()
        progress = PollProgress(console, len(sources)) if console.is_terminal else None
    with progress or nullcontext():
        outcomes = run(with_store(config, lambda store: operations.poll_now(
            store, config, sources, force=force, on_done=progress.done if progress else None)))
    if console is not None and console.is_terminal:
        from feedhub.report import render_poll_summary

        render_poll_summary(console, outcomes)
        return
    for o in outcomes:
        click.echo(describe_outcome(o))
    click.echo(poll_total(outcomes))


@click.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder to write into (default: <data_dir>/public).")
@click.pass_context
@handles_errors
def build(ctx: click.Context, out_dir: Path | None) -> None:
    """Render every output from the store into a folder, each file atomically."""
    config = config_of(ctx)
    target = out_dir or config.public_dir
    count = run(with_store(config, lambda store: operations.build(store, config, target)))
    click.echo(f"wrote {count} files to {target}")


@click.command()
@click.option("--orphans", is_flag=True,
              help="Also delete the entries of sources no longer in feeds.yaml.")
@click.pass_context
@handles_errors
def prune(ctx: click.Context, orphans: bool) -> None:
    """Apply the retention settings now (and forget removed sources with --orphans)."""
    config = config_of(ctx)
    by_retention, by_orphans = run(with_store(config, lambda store: operations.prune(
        store, config, orphans=orphans)))
    click.echo(f"deleted {by_retention} entries by retention, {by_orphans} of removed sources")


COMMANDS = (check, poll, build, prune)
