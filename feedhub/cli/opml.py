"""Commands that move subscriptions in and out as OPML: import-opml, export-opml."""

from __future__ import annotations

from pathlib import Path

import click

from feedhub import operations
from feedhub.cli.common import (
    Refused,
    check_category,
    config_of,
    handles_errors,
    interactive,
    refuses,
    run,
    with_store,
)
from feedhub.cli.editing import derive, reload_daemon, write
from feedhub.model import SourceState, utcnow


@click.command("import-opml")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--category", "slug", metavar="SLUG",
              help="Put every feed in this category (created if missing) instead of one "
                   "category per folder.")
@click.option("--label", metavar="LABEL",
              help="With --category: the title of that category if it is created.")
@click.option("--dry-run", is_flag=True, help="Show what would be added; write nothing.")
@click.option("-y", "--yes", is_flag=True,
              help="Write without asking (never asked when not on a terminal).")
@click.pass_context
@handles_errors
@refuses
def import_opml_command(ctx: click.Context, file: Path, slug: str | None, label: str | None,
                        dry_run: bool, yes: bool) -> None:
    """Add the feeds of an OPML file (a feed reader's export) to feeds.yaml.

    Each feed's innermost folder becomes its category: an existing one with
    the folder's name as title (or slug), else a new one titled like the
    folder — ASCII names become slugs (Tech News → tech-news), others a
    stable cat-<hash>. Feeds in no folder go to 'uncategorized'. Feeds
    already configured, listed twice, or without an xmlUrl are skipped and
    listed. The feeds are not fetched: `feedhub poll` reports any that fail.
    A running daemon is told to reload.
    """
    from feedhub.edit import add as add_to_config
    from feedhub.opml import plan_import, read_opml

    config = config_of(ctx)
    if label is not None and slug is None:
        raise Refused("--label titles the category given with --category")
    doc = read_opml(file.read_bytes())
    plan = plan_import(doc, config, category=slug, label=label)
    click.echo(f"{file}: {doc.title or 'untitled'} — {len(doc.feeds)} feeds")
    titles = {**{c.slug: c.title for c in config.categories.values()},
              **{c.slug: c.title for c in plan.categories}}
    if plan.categories:
        click.echo("New categories:")
        for c in plan.categories:
            click.echo(click.style(f"  + {c.slug}", fg="green") + f"  {c.title}")
    if plan.sources:
        click.echo("Sources to add:")
        for category, sources in plan.by_category():
            click.echo(f"  {category} ({titles.get(category, '')}):")
            for s in sources:
                click.echo(click.style(f"    + {s.url}", fg="green")
                           + (f"  {s.name}" if s.name else ""))
    if plan.skipped:
        click.echo("Skipped:")
        for what, why in plan.skipped:
            click.echo(f"  - {what}: {why}")
    if not plan.sources:
        click.echo("Nothing to import.")
        return
    summary = (f"{len(plan.sources)} sources and {len(plan.categories)} new categories")
    if dry_run:
        click.echo(f"Dry run: would add {summary}; nothing written.")
        return
    text, edit = derive(config, lambda text: add_to_config(
        text, config.path, sources=[s for s, _ in plan.sources], categories=plan.categories))
    if not yes and interactive() and not click.confirm(f"Add {summary} to {config.path}?",
                                                       default=True):
        click.echo("Nothing written.")
        return
    write(config, text, edit)
    click.echo(click.style(f"Added {summary} to {config.path}", fg="green", bold=True)
               + f" (from line {edit.line}).")
    reload_daemon(config)


@click.command("export-opml")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (replaced atomically) instead of standard output.")
@click.option("--category", "slug", metavar="SLUG", help="Only the sources of this category.")
@click.pass_context
@handles_errors
def export_opml_command(ctx: click.Context, output: Path | None, slug: str | None) -> None:
    """Write the configured sources as OPML 2.0, one folder per category.

    For moving subscriptions to a feed reader or another feedhub (import-opml
    keeps the category slugs). Feed titles and home pages come from the store
    when the sources have been polled. This is the list of sources feedhub
    follows; /opml.xml on the server lists the feeds it republishes.
    """
    from feedhub.edit import write_bytes_atomically
    from feedhub.opml import export_groups, write_opml

    config = config_of(ctx)
    if slug is not None:
        check_category(config, slug)
    states: dict[str, SourceState] = {}
    if operations.store_exists(config):  # never create a store just for this
        states = run(with_store(config, operations.source_states))
    groups = export_groups(config, states, slug)
    body = write_opml(title=f"{config.site.title} — sources", groups=groups, created=utcnow())
    if output is None:
        click.echo(body.decode("utf-8"), nl=False)
        return
    write_bytes_atomically(output, body)
    click.echo(f"wrote {sum(len(g[2]) for g in groups)} sources in {len(groups)} categories "
               f"to {output}", err=True)


COMMANDS = (import_opml_command, export_opml_command)
