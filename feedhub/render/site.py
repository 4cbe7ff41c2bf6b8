"""Render outputs from the store: :func:`render`.

Takes the configuration and the store's entries, yields :class:`Document`
values one at a time (a full build has thousands of archive pages, which must
not all be held at once); it never writes anywhere (see :mod:`feedhub.publish`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from urllib.parse import urlsplit

from feedhub.config import Config, SavedSearch
from feedhub.filters import EntryFilter
from feedhub.health import HEALTH_ENTRIES, HEALTH_STEM, event_entry
from feedhub.model import Document, SourceState, StoredEntry, packed, utcnow
from feedhub.render.feeds import ArchiveLinks, FeedSpec, SourceInfo, render_atom, render_json, render_rss
from feedhub.render.pages import PageSection, SearchLink, render_category_page, render_home, render_opml
from feedhub.store import Store
from feedhub.workers import Workers

__all__ = ["CONTENT_TYPES", "archive_path", "latest_kept", "render", "search_kept"]

CONTENT_TYPES = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "xml": "text/x-opml; charset=utf-8",
}
HOME_ENTRIES = 10


def _document(path: str, etag: str, gzipped: bytes) -> Document:
    return Document(path=path, gzipped=gzipped, etag=etag, modified=utcnow(),
                    content_type=CONTENT_TYPES[path.rsplit(".", 1)[1]])


def _rendered_now(path: str, body: bytes) -> Document:
    etag, gzipped = packed(lambda: body)
    assert gzipped is not None  # nothing known: always compressed
    return _document(path, etag, gzipped)


def _source_infos(config: Config, states: Iterable[SourceState]) -> dict[str, SourceInfo]:
    by_url = {s.url: s for s in states}
    infos = {}
    for source in config.sources:
        state = by_url.get(source.url)
        title = source.name or (state.feed_title if state else None) or urlsplit(source.url).netloc
        infos[source.url] = SourceInfo(url=source.url, title=title,
                                       link=state.feed_link if state else None)
    return infos


async def latest_kept(store: Store, urls: list[str], limit: int, flt: EntryFilter
                      ) -> list[StoredEntry]:
    """The newest ``limit`` entries of ``urls`` that the filters keep, as republished.

    Filtering happens here, at render time, so a changed rule takes effect on the
    next build without re-fetching; more rows are read until enough are kept.
    """
    if not any(flt.filters(url) for url in urls):
        return await store.latest_entries(urls, limit)
    kept: list[StoredEntry] = []
    offset, batch = 0, max(limit * 2, 50)
    while len(kept) < limit:
        rows = await store.latest_entries(urls, batch, offset)
        kept += flt.keep(rows)
        if len(rows) < batch:
            break
        offset += batch
        batch *= 2
    return kept[:limit]


async def search_kept(store: Store, config: Config, search: SavedSearch, limit: int,
                      flt: EntryFilter, since: datetime | None = None) -> list[StoredEntry]:
    """The newest ``limit`` entries a saved (or ad hoc) search finds that the filters keep."""
    urls = [s.url for s in config.searched_sources(search)]
    filtering = any(flt.filters(url) for url in urls)
    found = await store.search(search.query, urls, since=since,
                               limit=limit * 4 if filtering else limit)
    return flt.keep(found)[:limit] if filtering else found


async def render(store: Store, config: Config, slugs: Iterable[str] | None = None,
                 workers: Workers | None = None) -> AsyncGenerator[Document, None]:
    """Render the feeds of ``slugs`` (default: every category and ``all``) and the pages.

    Documents are yielded as they are rendered, so a caller storing each (or each
    small batch) before asking for the next holds only a few in memory. A feed or
    archive page whose bytes the store already has is not yielded (nor compressed). With
    ``slugs`` given, only the open (newest) archive page of those feeds is rendered,
    with any full page not yet stored with the page after it (full pages are
    immutable); without, every page is (a build, changed filters). With
    ``workers``, feeds and archive pages are rendered a few at once on every core,
    and still yielded in order.

    Raises:
        StoreError: the store cannot be read.
    """
    site = config.site
    full = slugs is None
    wanted = list(dict.fromkeys(slugs)) if slugs is not None else ["all", *config.categories]
    infos = _source_infos(config, await store.source_states())
    labels = {s.url: config.categories[s.category].title for s in config.sources}
    flt = config.entry_filter()
    known = await store.document_etags("feeds/")
    for slug in wanted:
        if slug == "all":
            title, description, home = site.title, site.title, site.base_url
        elif slug in config.categories:
            cat = config.categories[slug]
            title, description = cat.title, cat.description
            home = f"{site.base_url}category/{slug}.html"
        else:
            continue
        urls = [s.url for s in config.sources_in(slug)]
        spec = FeedSpec(stem=f"feeds/{slug}", title=title, description=description,
                        home_url=home, base_url=site.base_url, timezone=site.timezone,
                        labels=labels, sources=infos, hubs=site.websub_hubs)
        jobs = _archive(store, config, spec, urls, set() if full else set(known), flt)
        async for doc in _rendered(jobs, workers, known):
            yield doc
    if full or "all" in wanted:  # "all" changes whenever any entry does
        for search in config.queries.values():
            for doc in await _search_feed(store, config, search, infos, flt):
                yield doc
    for doc in await _pages(store, config, infos, flt):
        yield doc
    yield await _health(store, config, infos)


async def _health(store: Store, config: Config, infos: dict[str, SourceInfo]) -> Document:
    """``/feeds/_health.atom``: the latest source state changes, newest first."""
    site = config.site
    events = await store.source_events(HEALTH_ENTRIES)
    entries = [event_entry(e, infos[e.source_url].title if e.source_url in infos
                           else e.source_url) for e in events]
    spec = FeedSpec(stem=HEALTH_STEM, title=f"{site.title} · health",
                    description="Sources that started failing, recovered, moved or are gone",
                    home_url=site.base_url, base_url=site.base_url, timezone=site.timezone,
                    labels={}, sources=infos)
    return _rendered_now(f"{HEALTH_STEM}.atom", render_atom(spec, entries))


async def _search_feed(store: Store, config: Config, search: SavedSearch,
                       infos: dict[str, SourceInfo], flt: EntryFilter) -> list[Document]:
    """``/feeds/q/{name}.*``: a saved search's newest entries, tagged with its title."""
    site = config.site
    entries = await search_kept(store, config, search, config.max_entries, flt)
    stem = f"feeds/q/{search.name}"
    spec = FeedSpec(stem=stem, title=search.title,
                    description=search.description or f"{site.title} · {search.query.text}",
                    home_url=site.base_url, base_url=site.base_url, timezone=site.timezone,
                    labels={s.url: search.title for s in config.searched_sources(search)},
                    sources=infos, hubs=site.websub_hubs)
    return [_rendered_now(f"{stem}.atom", render_atom(spec, entries)),
            _rendered_now(f"{stem}.rss", render_rss(spec, entries)),
            _rendered_now(f"{stem}.json", render_json(spec, entries))]


def archive_path(slug: str, page: int) -> str:
    """The URL path of archive page ``page`` (1 is the oldest) of a feed."""
    return f"feeds/{slug}/archive/{page}.atom"


async def _archive(store: Store, config: Config, spec: FeedSpec, urls: list[str],
                   stored: set[str], flt: EntryFilter) -> AsyncGenerator[_Job, None]:
    """A feed's subscription documents and its RFC 5005 archive pages, to render
    (``stored``: the paths of pages that need not be, empty for a full render).

    Archive pages hold ``max_entries`` stored entries each in storage order, so a full
    page never changes; together they hold every entry exactly once. Entries the
    filters drop are left out of their page (a full build re-renders every page).
    """
    size = config.max_entries
    # One list for every page of this render: polls that commit meanwhile do not make
    # each page read the whole archive again.
    ids = await store.archive_ids(urls)
    pages = -(-len(ids) // size) if len(ids) > size else 0
    slug = spec.stem.removeprefix("feeds/")
    base = config.site.base_url
    entries = await latest_kept(store, urls, size, flt)
    head = _trimmed(spec, entries)
    history = ArchiveLinks(current=None, next_archive=None,
                           prev_archive=f"{base}{archive_path(slug, pages)}" if pages else None)
    yield f"{spec.stem}.atom", partial(render_atom, replace(head, archive=history), entries)
    yield f"{spec.stem}.rss", partial(render_rss, head, entries)
    yield f"{spec.stem}.json", partial(render_json, head, entries)
    # A full page is final once the page after it exists (its next-archive link): it
    # was rendered then and is never rendered, read or compared again.
    for page in range(1, pages + 1):
        path = archive_path(slug, page)
        if page < pages and path in stored and archive_path(slug, page + 1) in stored:
            continue
        links = ArchiveLinks(
            current=f"{base}{spec.stem}.atom",
            prev_archive=f"{base}{archive_path(slug, page - 1)}" if page > 1 else None,
            next_archive=f"{base}{archive_path(slug, page + 1)}" if page < pages else None)
        page_entries = flt.keep(await store.entries_by_id(ids[(page - 1) * size:page * size]))
        newest_first = sorted(page_entries, key=lambda e: (e.published, e.first_seen), reverse=True)
        page_spec = replace(_trimmed(spec, newest_first), stem=path.removesuffix(".atom"),
                            archive=links, title=f"{spec.title} · 存档 {page}")
        yield path, partial(render_atom, page_spec, newest_first)


def _trimmed(spec: FeedSpec, entries: Sequence[StoredEntry]) -> FeedSpec:
    """``spec`` knowing only the sources of ``entries``: less to send to a worker."""
    urls = {e.source_url for e in entries}
    return replace(spec, labels={u: v for u, v in spec.labels.items() if u in urls},
                   sources={u: v for u, v in spec.sources.items() if u in urls})


#: Documents rendered at once by :func:`_rendered` (their entries are in memory).
RENDER_AHEAD = 4

_Job = tuple[str, Callable[[], bytes]]
#: What :func:`~feedhub.model.packed` gives: the ETag, and the gzip (``None``: already stored).
_Packed = tuple[str, bytes | None]


async def _rendered(jobs: AsyncIterator[_Job], workers: Workers | None,
                    known: Mapping[str, str]) -> AsyncGenerator[Document, None]:
    """The documents ``jobs`` render whose ETag is not the ``known`` one of their path, in
    order; with ``workers``, a few at once."""
    run = workers.run if workers is not None else _inline
    ahead = RENDER_AHEAD if workers is not None else 1
    pending: deque[tuple[str, asyncio.Future[_Packed]]] = deque()
    try:
        async for path, job in jobs:
            pending.append((path, asyncio.ensure_future(run(partial(packed, job, known.get(path))))))
            if len(pending) >= ahead and (doc := await _next_changed(pending)) is not None:
                yield doc
        while pending:
            if (doc := await _next_changed(pending)) is not None:
                yield doc
    finally:
        for _, body in pending:
            body.cancel()
        await asyncio.gather(*(body for _, body in pending), return_exceptions=True)


async def _inline(job: Callable[[], _Packed]) -> _Packed:
    """``job()`` here, in the event loop (no workers: a test or a one-off render)."""
    return job()


async def _next_changed(pending: deque[tuple[str, asyncio.Future[_Packed]]]
                        ) -> Document | None:
    """The first pending document, or ``None`` when its bytes were already stored."""
    path, result = pending.popleft()
    etag, gzipped = await result
    return None if gzipped is None else _document(path, etag, gzipped)


async def _pages(store: Store, config: Config, infos: dict[str, SourceInfo],
                 flt: EntryFilter) -> list[Document]:
    site = config.site
    names = {url: info.title for url, info in infos.items()}
    sections = []
    for slug, cat in config.categories.items():
        urls = [s.url for s in config.sources_in(slug)]
        sections.append(PageSection(slug=slug, title=cat.title, description=cat.description,
                                    entries=await latest_kept(store, urls, config.max_entries,
                                                              flt)))
    searches = [SearchLink(name=q.name, title=q.title, query=q.query.text)
                for q in config.queries.values()]
    docs = [_rendered_now("index.html", render_home(
        site_title=site.title, base_url=site.base_url, tz=site.timezone, sources=names,
        sections=[PageSection(slug=s.slug, title=s.title, description=s.description,
                              entries=s.entries[:HOME_ENTRIES]) for s in sections],
        searches=searches))]
    docs += [_rendered_now(f"category/{s.slug}.html", render_category_page(
        site_title=site.title, base_url=site.base_url, tz=site.timezone, section=s, sources=names))
        for s in sections]
    docs.append(_rendered_now("opml.xml", render_opml(site_title=site.title, base_url=site.base_url,
                                                  sections=sections, searches=searches,
                                                  health=f"{site.title} · health")))
    return docs
