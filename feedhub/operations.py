"""One-off runs of the stages, as the commands start them (the daemon has its own loop).

Each function takes an open store and the loaded configuration and returns plain
values for the caller to show; none of them prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from feedhub.config import Config, Source
from feedhub.model import PollOutcome, SourceState, utcnow

if TYPE_CHECKING:
    from feedhub.discover import Discovery
    from feedhub.filters import EntryFilter
    from feedhub.model import NormalizedFeed
    from feedhub.report import StatusRow
    from feedhub.selectors import FullText, ScrapeRules
    from feedhub.store import Store
    from feedhub.store.transfer import CopyReport

#: Entries read at a time when counting what the filters drop.
_BATCH = 1000


async def poll_now(store: Store, config: Config, sources: Sequence[Source], *, force: bool,
                   on_done: Callable[[PollOutcome], None] | None = None) -> list[PollOutcome]:
    """Poll ``sources`` once, then republish the categories that changed, ping the hubs
    and send the webhook deliveries due."""
    from feedhub.fetch import Fetcher, limits_for, user_agent
    from feedhub.pipeline import Deps, changed_categories, poll_sources, record_quiet, republish
    from feedhub.publish.webhooks import deliver_now
    from feedhub.publish.websub import announce_now
    from feedhub.workers import worker_pool

    # Parsing and rendering run in a process per core.
    with worker_pool() as workers:
        async with Fetcher(config.site.base_url, limits_for(config.fetch)) as fetcher:
            deps = Deps(config=config, store=store, fetcher=fetcher, workers=workers)
            outcomes = await poll_sources(deps, sources, force=force, on_done=on_done)
        slugs = changed_categories(config, outcomes)
        if await record_quiet(store, config, utcnow()):
            slugs.add("_health")
        if slugs or not await store.document_paths("feeds/all.atom"):
            changed = await republish(store, config, slugs or None, config.public_dir,
                                      workers=workers)
            await announce_now(config, changed)
    await deliver_now(store, config.webhooks, user_agent(config.site.base_url))
    return outcomes


async def discover_feeds(config: Config, url: str, *, encoding: str | None) -> Discovery:
    """The feed at ``url``, or the feeds its web page leads to (for ``add``)."""
    from feedhub.discover import discover
    from feedhub.fetch import Fetcher, limits_for

    async with Fetcher(config.site.base_url, limits_for(config.fetch)) as fetcher:
        return await discover(fetcher, url, config.site.timezone, encoding=encoding)


async def preview(config: Config, url: str, *, scrape: ScrapeRules | None,
                  encoding: str | None, full_text: FullText | None = None,
                  limit: int = 20) -> tuple[NormalizedFeed, str | None]:
    """What a source at ``url`` would give (a feed, or a page read with ``scrape``),
    fetched, parsed and normalized as a poll would, and not stored; with
    ``full_text``, the newest ``limit`` entries' articles fetched too. Also returns
    what failed of the full text (``None``: nothing).

    Raises:
        SourceError: the fetch failed, or the body could not be read.
    """
    from feedhub.errors import SourceError
    from feedhub.fetch import Fetcher, limits_for
    from feedhub.model import FetchStatus
    from feedhub.normalize import parse_and_normalize

    async with Fetcher(config.site.base_url, limits_for(config.fetch)) as fetcher:
        fetched = await fetcher.fetch(url, page=scrape is not None)
        if fetched.status is not FetchStatus.OK:
            raise SourceError(url, fetched.error or fetched.status.value)
        feed = parse_and_normalize(fetched.body, url=fetched.url, headers=fetched.headers,
                                   timezone=config.site.timezone, encoding=encoding,
                                   source_url=url, seen_at=utcnow(), scrape_rules=scrape)
        feed = replace(feed, entries=sorted(feed.entries, key=lambda e: e.published,
                                            reverse=True))
        if full_text is None:
            return feed, None
        from feedhub.fulltext import add_full_text
        from feedhub.workers import Workers

        filled = await add_full_text(feed.entries[:limit], {}, source_url=url, rules=full_text,
                                     encoding=encoding, fetcher=fetcher, workers=Workers(1),
                                     allow_private=config.fetch.private_links)
    return replace(feed, entries=filled.entries + feed.entries[limit:]), filled.note()


async def build(store: Store, config: Config, target: Path) -> int:
    """Render every output and write it to ``target``; how many files were written."""
    from feedhub.pipeline import republish
    from feedhub.publish.static import write_stored
    from feedhub.workers import worker_pool

    with worker_pool() as workers:
        await republish(store, config, workers=workers)
    return await write_stored(store, await store.document_paths(), target)


async def ensure_published(store: Store, config: Config) -> None:
    """Render the outputs if the store holds none yet (a server needs something to serve)."""
    from feedhub.pipeline import republish

    if not await store.document_paths("feeds/all.atom"):
        await republish(store, config)


async def prune(store: Store, config: Config, *, orphans: bool) -> tuple[int, int]:
    """Apply retention (and forget removed sources); entries deleted by each, republished."""
    from feedhub.pipeline import apply_retention, republish

    by_retention = await apply_retention(store, config)
    by_orphans = await store.forget_sources(s.url for s in config.sources) if orphans else 0
    if by_retention or by_orphans:
        await republish(store, config, None, config.public_dir)
    return by_retention, by_orphans


async def status_rows(store: Store, config: Config, sources: Sequence[Source],
                      now: datetime) -> list[StatusRow]:
    """What ``status`` shows of each source: its state, entry counts and filtered entries."""
    from feedhub.report import StatusRow

    states = await source_states(store)
    counts = await store.entry_counts()
    fresh = await store.new_entries_since(now - timedelta(hours=24))
    flt = config.entry_filter()
    return [StatusRow(source=s, state=states.get(s.url), entries=counts.get(s.url, 0),
                      new_24h=fresh.get(s.url, 0),
                      filtered=await filtered(store, flt, s.url) if flt.filters(s.url) else {})
            for s in sources]


async def filtered(store: Store, flt: EntryFilter, url: str) -> dict[str, int]:
    """How many of a source's stored entries each rule keeps out of the outputs."""
    counts: dict[str, int] = {}
    offset = 0
    while True:
        rows = await store.latest_entries([url], _BATCH, offset)
        for entry in rows:
            if (rule := flt.dropped_by(entry)) is not None:
                counts[rule] = counts.get(rule, 0) + 1
        if len(rows) < _BATCH:
            return counts
        offset += _BATCH


async def source_states(store: Store) -> dict[str, SourceState]:
    """Every stored source state, by URL."""
    return {s.url: s for s in await store.source_states()}


def store_exists(config: Config) -> bool:
    """Whether the configured store is there to read (a server store is assumed to be)."""
    return config.store_url != f"sqlite://{config.store_path}" or config.store_path.exists()


async def migrate(source_url: str, target_url: str, *, batch: int,
                  start: Callable[[dict[str, int]], Callable[[str, int], None]]) -> CopyReport:
    """Copy one store into another; ``start(rows per table)`` returns the progress callback."""
    from feedhub.store import open_store
    from feedhub.store.transfer import copy_store

    source = await open_store(source_url)
    try:
        target = await open_store(target_url)
        try:
            progress = start(await source.table_counts())
            return await copy_store(source, target, batch=batch, progress=progress)
        finally:
            await target.close()
    finally:
        await source.close()
