"""Commands that move stored data elsewhere: export jekyll, migrate-store."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from feedhub import operations
from feedhub.cli.common import (
    EXIT_FAILURE,
    check_category,
    config_of,
    handles_errors,
    run,
    with_store,
)


@click.group()
def export() -> None:
    """Export stored entries to other formats."""


@export.command("jekyll")
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--category", "slug", metavar="SLUG", help="Only this category.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Only entries published on or after this date (site time zone).")
@click.pass_context
@handles_errors
def export_jekyll_command(ctx: click.Context, out_dir: Path, slug: str | None,
                          since: datetime | None) -> None:
    """One Jekyll post per entry in DIR/_posts, in the hub's original format."""
    from feedhub.publish.jekyll import export_jekyll

    config = config_of(ctx)
    if slug is not None:
        check_category(config, slug)
    start = since.replace(tzinfo=config.site.timezone) if since else None
    result = run(with_store(config, lambda store: export_jekyll(
        store, config, out_dir, category=slug, since=start)))
    click.echo(f"{result.written} posts written, {result.unchanged} unchanged, in {out_dir / '_posts'}")


@click.command("migrate-store")
@click.option("--from", "source_url", required=True, metavar="URL",
              help="Store to copy from: sqlite:///path/feedhub.sqlite3 or postgresql://…")
@click.option("--to", "target_url", required=True, metavar="URL",
              help="Store to copy into (created and migrated as needed).")
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Rows per transaction.")
@handles_errors
def migrate_store(source_url: str, target_url: str, batch: int) -> None:
    """Copy everything from one store to another: sources, entries, documents, polls, events.

    Each batch is an upsert, so an interrupted copy is resumed by running the same
    command again. At the end the rows of each table are counted in both stores;
    exit 1 if they differ. Stop the nodes writing to --from first.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from feedhub.report import make_console
    from feedhub.store import sqlite_path
    from feedhub.store.transfer import TABLES

    if source_url == target_url:
        raise click.UsageError("--from and --to are the same store")
    if source_url.startswith("sqlite:") and not sqlite_path(source_url).is_file():
        raise click.UsageError(f"no SQLite store at {sqlite_path(source_url)}")
    console = make_console()
    with Progress(TextColumn("{task.description:<13}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not console.is_terminal) as bar:
        def start(totals: dict[str, int]) -> Callable[[str, int], None]:
            tasks = {t: bar.add_task(t, total=totals[t]) for t in TABLES}
            return lambda table, rows: bar.advance(tasks[table], rows)

        report = run(operations.migrate(source_url, target_url, batch=batch, start=start))
    for table in TABLES:
        mark = "MISMATCH" if table in report.mismatched else "ok"
        click.echo(f"{table:<13} {report.source[table]:>9} copied, "
                   f"{report.target[table]:>9} in the target  {mark}")
    if report.mismatched:
        click.echo(f"feedhub: counts differ for {', '.join(report.mismatched)}: was the source "
                   "written to meanwhile, or did the target hold other data?", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo("migrate-store: done, counts match")


COMMANDS = (export, migrate_store)
