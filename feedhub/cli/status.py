"""Commands that read the store: status, search."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from feedhub import operations
from feedhub.cli.common import (
    check_category,
    config_of,
    entries_text,
    find_source,
    handles_errors,
    run,
    with_store,
)
from feedhub.config import SavedSearch
from feedhub.model import utcnow
from feedhub.store.base import POLL_HISTORY

if TYPE_CHECKING:
    from feedhub.model import StoredEntry
    from feedhub.report import StatusRow
    from feedhub.store import Store
    from feedhub.store.base import DeliveryCounts, PollRecord


@click.command()
@click.argument("source", metavar="[URL|NAME]", required=False)
@click.option("--category", "slug", metavar="SLUG", help="Only the sources of this category.")
@click.option("--limit", type=click.IntRange(1, POLL_HISTORY), default=20, show_default=True,
              help="With URL|NAME: how many past polls to show.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output (a stable schema, listed in the README).")
@click.pass_context
@handles_errors
def status(ctx: click.Context, source: str | None, slug: str | None, limit: int,
           as_json: bool) -> None:
    """One row per source: last poll, result, new entries, next poll, error.

    Failing and gone sources are highlighted. With URL|NAME, that source's
    details and its last polls (up to 50 are kept) instead.
    """
    from feedhub.report import make_console, render_history, render_status

    config = config_of(ctx)
    if slug is not None:
        check_category(config, slug)
    sources = config.sources_in(slug) if slug else config.sources
    if source is not None:
        sources = (find_source(config, source),)
    now = utcnow()

    async def work(store: Store) -> tuple[list[StatusRow], list[PollRecord],
                                          dict[str, DeliveryCounts]]:
        rows = await operations.status_rows(store, config, sources, now)
        history = await store.poll_history(sources[0].url, limit) if source is not None else []
        return rows, history, await store.notification_counts()

    rows, history, deliveries = run(with_store(config, work))
    if as_json:
        data: Any = [r.as_json() for r in rows]
        if source is not None:
            data = {"source": data[0], "history": [
                {"at": p.at.isoformat(), "status": p.status, "http_status": p.http_status,
                 "new": p.new, "updated": p.updated, "error": p.error} for p in history]}
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = make_console()
    if source is not None:
        render_history(console, rows[0], history, now, config.site.timezone)
    else:
        render_status(console, rows, now, f"{config.site.title} — {config.path}")
        for hook in dict.fromkeys([*(w.url for w in config.webhooks), *deliveries]):
            counts = deliveries.get(hook)
            line = f"webhook {hook}: " + (
                f"{counts.pending} pending, {counts.given_up} given up" if counts
                else "nothing pending")
            if counts and counts.last_error:
                line += f" (last error: {counts.last_error})"
            console.print(line, style="red" if counts and counts.given_up else None,
                          highlight=False, soft_wrap=True)


@click.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--category", "slugs", metavar="SLUG", multiple=True,
              help="Only entries of this category (repeat for several).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%d %H:%M"]),
              help="Only entries published on or after this date (YYYY-MM-DD or "
              "'YYYY-MM-DD HH:MM', in site.timezone).")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="How many entries to show, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry, in a list.")
@click.pass_context
@handles_errors
def search(ctx: click.Context, query: tuple[str, ...], slugs: tuple[str, ...],
           since: datetime | None, limit: int, as_json: bool) -> None:
    """Search stored entries: words all found, OR between alternatives, -word excluded.

    Words match anywhere in a title or text (no word boundaries, so 腾讯 and
    600519 work); "quoted phrases" keep spaces. Quote the whole query when it
    has an exclusion: feedhub search '腾讯 -广告'. Entries the filters drop are
    not shown, as they are not republished.
    """
    from feedhub.search import parse_query

    config = config_of(ctx)
    text = " ".join(query)
    try:
        parsed = parse_query(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="QUERY") from None
    for slug in slugs:
        check_category(config, slug)
    after = since.replace(tzinfo=config.site.timezone) if since else None
    wanted = SavedSearch(name="search", query=parsed, title=text, description="",
                         categories=slugs)

    async def work(store: Store) -> list[StoredEntry]:
        from feedhub.render.site import search_kept

        return await search_kept(store, config, wanted, limit, config.entry_filter(), after)

    found = run(with_store(config, work))
    tz = config.site.timezone
    categories = {s.url: s.category for s in config.sources}
    if as_json:
        click.echo(json.dumps([{"title": hit.title, "link": hit.link, "source": hit.source_url,
                                "category": categories.get(hit.source_url),
                                "published": hit.published.astimezone(tz).isoformat()}
                               for hit in found], ensure_ascii=False, indent=2))
        return
    for hit in found:
        category = categories.get(hit.source_url)
        label = config.categories[category].title if category else ""
        click.echo(f"{hit.published.astimezone(tz):%Y-%m-%d %H:%M}  [{label}] {hit.title}")
        click.echo(f"    {hit.link or hit.source_url}")
    click.echo(f"{entries_text(len(found))} found for {parsed.text}", err=True)


COMMANDS = (status, search)
