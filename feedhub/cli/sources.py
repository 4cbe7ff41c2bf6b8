"""Commands that edit the list of sources: add, remove."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from feedhub import operations
from feedhub.cli.common import (
    EXIT_FAILURE,
    Refused,
    config_of,
    entries_text,
    find_source,
    handles_errors,
    interactive,
    refuses,
    run,
)
from feedhub.cli.editing import derive, reload_daemon, show_and_write
from feedhub.config import Config

if TYPE_CHECKING:
    from feedhub.discover import Discovery, Probe
    from feedhub.edit import NewCategory

_FORMATS = {"rss20": "RSS 2.0", "rss10": "RSS 1.0", "rss090": "RSS 0.90", "rss091u": "RSS 0.91",
            "rss091n": "RSS 0.91", "rss092": "RSS 0.92", "rss093": "RSS 0.93", "rss094": "RSS 0.94",
            "atom10": "Atom 1.0", "atom03": "Atom 0.3", "json10": "JSON Feed 1.0",
            "json11": "JSON Feed 1.1"}


@click.command("add")
@click.argument("url")
@click.option("--category", "slug", metavar="SLUG",
              help="Category to add it to (default: the only one; asked on a terminal).")
@click.option("--new-category", "new_slug", metavar="SLUG",
              help="Create this category for it (needs --label).")
@click.option("--label", metavar="LABEL",
              help="The new category's title: the label its entries are tagged with, e.g. 证券时报网新闻.")
@click.option("--name", help="A name for the source (default: the feed's own title).")
@click.option("--interval", metavar="DURATION",
              help="How often to poll it: 30s, 15m, 2h, 1d (default: defaults.interval).")
@click.option("--encoding", metavar="CHARSET",
              help="Read it in this charset when it declares a wrong one, e.g. gb18030.")
@click.option("-y", "--yes", is_flag=True,
              help="Write without asking (never asked when not on a terminal).")
@click.pass_context
@handles_errors
@refuses
def add_command(ctx: click.Context, url: str, slug: str | None, new_slug: str | None,
                label: str | None, name: str | None, interval: str | None, encoding: str | None,
                yes: bool) -> None:
    """Add a source to feeds.yaml, after checking that its feed works.

    URL is a feed, or a web page: its feeds are discovered from its <link
    rel="alternate"> tags, else at the usual /feed, /rss, /atom.xml,
    /index.xml … paths, and listed to choose from (off a terminal, the command
    stops and asks to be run again with the feed's URL, unless there is only
    one). The feed is fetched and parsed like a poll would; its title and
    latest entries are shown. The source is appended to sources: with every
    comment and line of the file kept. Duplicates and unknown categories are
    refused (exit 2). A running daemon is told to reload.
    """
    from feedhub.edit import NewSource
    from feedhub.edit import add as add_to_config

    config = config_of(ctx)
    _refuse_duplicate(config, url)
    category, new_category = _add_category(config, slug, new_slug, label)
    click.echo(f"Fetching {url} …")
    discovery = run(operations.discover_feeds(config, config.expand(url), encoding=encoding))
    probe = _pick_feed(discovery, url)
    feed_url = url if probe is discovery.start and not probe.fetched.moved_to else probe.feed_url
    if feed_url != url:
        _refuse_duplicate(config, feed_url)
    _show_feed(probe, config)
    category = category or _ask_category(config)
    source = NewSource(url=feed_url, category=category, name=name, interval=interval,
                       encoding=encoding)
    text, edit = derive(config, lambda text: add_to_config(
        text, config.path, sources=[source], categories=[new_category] if new_category else []))
    if not show_and_write(config, text, edit, yes, "Adding to"):
        return
    label_text = new_category.title if new_category else config.categories[category].title
    click.echo(click.style(f"Added {feed_url} to {config.path}", fg="green", bold=True)
               + f" (category {category}, {label_text}"
               + (", new" if new_category else "") + ").")
    reload_daemon(config)


@click.command("remove")
@click.argument("source", metavar="URL|NAME")
@click.option("-y", "--yes", is_flag=True,
              help="Write without asking (never asked when not on a terminal).")
@click.pass_context
@handles_errors
@refuses
def remove_command(ctx: click.Context, source: str, yes: bool) -> None:
    """Remove a source from feeds.yaml (the reverse of add), keeping the rest of the file.

    The source is found by its URL or its name. Its stored entries stay until
    `feedhub prune --orphans`; a running daemon is told to reload.
    """
    from feedhub.edit import remove as remove_from_config

    config = config_of(ctx)
    try:
        found = find_source(config, source)
    except click.UsageError as e:
        raise Refused(e.message) from None
    index = config.sources.index(found)
    text, edit = derive(config, lambda text: remove_from_config(text, config.path, [index]))
    if not show_and_write(config, text, edit, yes, "Removing from"):
        return
    click.echo(click.style(f"Removed {found.url} from {config.path}", fg="green", bold=True)
               + "; its stored entries stay until `feedhub prune --orphans`.")
    reload_daemon(config)


def _add_category(config: Config, slug: str | None, new_slug: str | None,
                  label: str | None) -> tuple[str | None, NewCategory | None]:
    """The category a new source goes to (``None``: ask, after the feed is shown), and the
    category to create for it, if any."""
    if label is not None and new_slug is None:
        raise Refused("--label names a new category: use it with --new-category SLUG")
    if new_slug is not None:
        if slug is not None:
            raise Refused("use either --category (an existing category) or --new-category")
        if new_slug in config.categories:
            raise Refused(f"category {new_slug!r} already exists in {config.path}: "
                          f"use --category {new_slug}")
        if not label:
            raise Refused(f"--new-category {new_slug} needs --label, the label its entries are "
                          "tagged with (e.g. --label 证券时报网新闻)")
        from feedhub.edit import NewCategory

        return new_slug, NewCategory(slug=new_slug, title=label)
    choices = ", ".join(f"{c.slug} ({c.title})" for c in config.categories.values())
    if slug is not None:
        if slug not in config.categories:
            raise Refused(f"unknown category {slug!r}; use one of: {choices} — or create one "
                          f"with --new-category {slug} --label LABEL")
        return slug, None
    if len(config.categories) == 1:
        return next(iter(config.categories)), None
    if not interactive():
        raise Refused(f"--category is required: one of {choices} (or --new-category SLUG "
                      "--label LABEL)")
    return None, None


def _ask_category(config: Config) -> str:
    slugs = list(config.categories)
    click.echo(f"Categories in {config.path} (--category SLUG skips this question):")
    for i, c in enumerate(config.categories.values(), 1):
        click.echo(f"  {i}. {c.slug} — {c.title}")
    return slugs[click.prompt("Add it to category", type=click.IntRange(1, len(slugs))) - 1]


def _refuse_duplicate(config: Config, url: str) -> None:
    existing = config.source(config.expand(url))
    if existing is not None:
        raise Refused(f"{url} is already in {config.path} (category {existing.category}"
                      + (f", name {existing.name}" if existing.name else "") + ")")


def _pick_feed(discovery: Discovery, url: str) -> Probe:
    """The one feed to add: the URL itself, the only feed its page leads to, or the operator's pick."""
    if discovery.feeds and not discovery.page:
        return discovery.feeds[0]
    start = discovery.start
    if not discovery.page:
        reason = start.error or "not a feed"
        raise Refused(f"cannot add {url}: {reason}", EXIT_FAILURE)
    if not discovery.feeds:
        tried = "\n".join(f"  {p.url}: {p.error}" for p in discovery.tried)
        raise Refused(f"{url} is a web page and no feed was found behind it; tried:\n{tried}\n"
                      "Give the feed's URL instead.", EXIT_FAILURE)
    feeds = discovery.feeds
    click.echo(f"{url} is a web page; it leads to {len(feeds)} feed{'s' if len(feeds) > 1 else ''}:")
    for i, probe in enumerate(feeds, 1):
        assert probe.feed is not None
        click.echo(f"  {i}. {probe.title} — {probe.feed_url} "
                   f"({_FORMATS.get(probe.feed.version, probe.feed.version)}, "
                   f"{entries_text(len(probe.feed.entries))})")
    if len(feeds) == 1:
        return feeds[0]
    if not interactive():
        raise Refused("several feeds found: run again with the one to add, e.g.\n"
                      f"  feedhub add {feeds[0].feed_url}", EXIT_FAILURE)
    return feeds[click.prompt("Which feed", type=click.IntRange(1, len(feeds))) - 1]


def _show_feed(probe: Probe, config: Config, count: int = 5) -> None:
    feed = probe.feed
    assert feed is not None
    click.echo(click.style(f"Feed: {probe.title}", bold=True)
               + f"  ({_FORMATS.get(feed.version, feed.version)}, {entries_text(len(feed.entries))})")
    click.echo(f"  {probe.feed_url}")
    if probe.fetched.moved_to:
        click.echo(f"  ({probe.url} moved permanently here: the new address is the one added)")
    if not feed.entries:
        click.echo("  It has no entries yet.")
        return
    click.echo("Latest entries:")
    epoch = datetime.min.replace(tzinfo=config.site.timezone)
    latest = sorted(feed.entries, key=lambda e: e.published or e.updated or epoch, reverse=True)
    for e in latest[:count]:
        when = e.published or e.updated
        stamp = when.astimezone(config.site.timezone).strftime("%Y-%m-%d %H:%M") if when \
            else "(no date)       "
        click.echo(f"  {stamp}  {e.title or '(no title)'}")


COMMANDS = (add_command, remove_command)
