"""Poll sources: the only module that knows the order of the stages.

fetch → parse → normalize → store, for one source (:func:`poll_source`) or
many at once (:func:`poll_sources`), then :func:`republish` what changed.
A failing source is a :class:`PollOutcome`, never an exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from feedhub.config import Config, Source
from feedhub.errors import SourceError, StoreError
from feedhub.fetch import Fetcher
from feedhub.health import QUIET_KINDS, RHYTHM_ENTRIES, quiet_changes, state_change
from feedhub.model import (
    Document,
    Entry,
    FetchResult,
    FetchStatus,
    NormalizedFeed,
    PollOutcome,
    PollStatus,
    SourceState,
    utcnow,
)
from feedhub.policy import next_poll_at
from feedhub.publish.webhooks import deliveries
from feedhub.store import Store
from feedhub.workers import Workers

log = logging.getLogger("feedhub.pipeline")

#: Sources polled at once by :func:`poll_sources`: enough to keep the fetcher's
#: connections and every parser busy, few enough to bound the bodies held.
POLLS_IN_FLIGHT = 24

_FAILED = {
    FetchStatus.HTTP_ERROR, FetchStatus.NETWORK_ERROR, FetchStatus.TOO_LARGE,
    FetchStatus.NOT_A_FEED}


@dataclass(frozen=True, slots=True, kw_only=True)
class Deps:
    """What polling needs: the configuration, the store, an HTTP client."""

    config: Config
    store: Store
    fetcher: Fetcher
    #: Where parsing runs (a process pool spreads it over cores).
    workers: Workers = field(default_factory=lambda: Workers(1))
    #: The current instant (tests inject a fixed one to check schedules).
    clock: Callable[[], datetime] = utcnow
    #: The node whose leases the polls run under (``feedhub run``); ``None``: no leases.
    node: str | None = None


async def _parse(deps: Deps, fetched: FetchResult, source: Source, now: datetime
                 ) -> NormalizedFeed:
    from feedhub.normalize import parse_and_normalize  # the parser: only for a changed body

    return await deps.workers.run(partial(
        parse_and_normalize, fetched.body, url=fetched.url, headers=fetched.headers,
        timezone=source.timezone, encoding=source.encoding, source_url=source.url, seen_at=now,
        scrape_rules=source.scrape))


async def poll_source(deps: Deps, source: Source, *, force: bool = False,
                      state: SourceState | None = None) -> PollOutcome:
    """Fetch, parse and store one source now; the result is an outcome value.

    A source that answered 410 Gone, or is under a ``Retry-After``, is skipped
    unless ``force`` is set. ``state``: the source's stored state, when the
    caller already read it (else it is read here).
    """
    now = deps.clock()
    if state is None:
        state = await deps.store.source_state(source.url) or SourceState(url=source.url)
    if not force:
        if state.last_status == PollStatus.GONE:
            return PollOutcome(source_url=source.url, status=PollStatus.SKIPPED,
                               error="410 Gone: update or remove it in feeds.yaml (--force polls)")
        if state.retry_after and state.retry_after > now:
            return PollOutcome(source_url=source.url, status=PollStatus.SKIPPED,
                               error=f"server asked to wait until {state.retry_after:%H:%M:%S} UTC",
                               next_poll_at=state.retry_after)
    fetched = await deps.fetcher.fetch(source.url, state, page=source.scrape is not None)
    status, error, parsed = _status(fetched), _explain(fetched), None
    body_hash = state.body_hash
    if status is PollStatus.OK:
        body_hash = hashlib.sha256(fetched.body).hexdigest()
        if body_hash == state.body_hash and not force:
            status = PollStatus.UNCHANGED
        else:
            try:
                parsed = await _parse(deps, fetched, source, now)
            except SourceError as e:
                status, error, body_hash = PollStatus.ERROR, e.message, state.body_hash
    active = None
    failed = status in (PollStatus.ERROR, PollStatus.RATE_LIMITED, PollStatus.GONE)
    if source.fallbacks and (failed or (parsed is not None and not parsed.entries)):
        found = await _fail_over(deps, source, now, error or "an empty feed")
        if found is not None:
            active, fetched, parsed = found
            status, error, body_hash = PollStatus.OK, None, None
    note, stored = None, None
    announced = any(w.wants(source.category) for w in deps.config.webhooks)
    if parsed is not None and parsed.entries and (source.full_text is not None or announced):
        stored = await deps.store.entry_hashes(source.url, [e.key for e in parsed.entries])
    if source.full_text is not None and parsed is not None and stored is not None:
        from feedhub.fulltext import add_full_text  # extraction: only for full-text sources

        filled = await add_full_text(parsed.entries, stored, source_url=source.url,
                                     rules=source.full_text, encoding=source.encoding,
                                     fetcher=deps.fetcher, workers=deps.workers,
                                     allow_private=deps.config.fetch.private_links)
        parsed, note = replace(parsed, entries=filled.entries), filled.note()
    outcome = await _save(deps, source, replace(state, active_url=active), fetched, status,
                          error, parsed, body_hash, now, note)
    if announced and parsed is not None and stored is not None and outcome.new:
        await _announce(deps, source, [e for e in parsed.entries if e.key not in stored], now)
    return outcome


async def _announce(deps: Deps, source: Source, new: Sequence[Entry], now: datetime) -> None:
    """Queue the webhook deliveries of a poll's new entries (sent by the daemon)."""
    try:
        await deps.store.queue_notifications(deliveries(deps.config, source, new, now), now)
    except StoreError as e:  # the entries are stored: the poll itself succeeded
        log.error("cannot queue webhook deliveries for %s: %s", source.url, e)


async def _fail_over(deps: Deps, source: Source, now: datetime, why: str
                     ) -> tuple[str, FetchResult, NormalizedFeed] | None:
    """The first fallback URL that answers with entries: (URL, fetch, parsed), or ``None``.

    Fallbacks are fetched without validators, and their entries are stored under the
    source's first URL, so switching never duplicates an entry. The first URL is tried
    again on the next poll (the body hash is not kept, so it is parsed then).
    """
    for url in source.fallbacks:
        fetched = await deps.fetcher.fetch(url, SourceState(url=url), page=source.scrape is not None)
        if _status(fetched) is not PollStatus.OK:
            continue
        try:
            parsed = await _parse(deps, fetched, source, now)
        except SourceError:
            continue
        if parsed.entries:
            log.warning("%s failed (%s); polled its fallback %s", source.url, why, url)
            # Its validators belong to the fallback, not to the first URL.
            return url, replace(fetched, etag=None, last_modified=None, moved_to=None), parsed
    return None


def _explain(fetched: FetchResult) -> str | None:
    """The fetch's error, with the feeds an HTML page links to when it is one."""
    if fetched.status is FetchStatus.NOT_A_FEED and fetched.body:
        from feedhub.discover import alternate_links  # imports the parser: only when needed

        links = [url for url, _ in alternate_links(fetched.body, fetched.url,
                                                  fetched.headers.get("content-type", ""))]
        if links:
            return f"{fetched.error}; it links to the feeds {', '.join(links[:3])}"
    return fetched.error


def _status(fetched: FetchResult) -> PollStatus:
    if fetched.status is FetchStatus.OK:
        return PollStatus.OK
    if fetched.status is FetchStatus.NOT_MODIFIED:
        return PollStatus.NOT_MODIFIED
    if fetched.status is FetchStatus.GONE:
        return PollStatus.GONE
    if fetched.status is FetchStatus.RATE_LIMITED:
        return PollStatus.RATE_LIMITED
    return PollStatus.ERROR


async def _save(deps: Deps, source: Source, state: SourceState, fetched: FetchResult,
                status: PollStatus, error: str | None, parsed: NormalizedFeed | None,
                body_hash: str | None, now: datetime, note: str | None = None) -> PollOutcome:
    """Store the poll's result; ``note``: what a successful poll still reports (full text)."""
    failed = status in (PollStatus.ERROR, PollStatus.RATE_LIMITED)
    failures = state.failures + 1 if failed else 0
    hints = [timedelta(seconds=fetched.max_age)] if fetched.max_age else []
    if parsed and parsed.ttl_minutes:
        hints.append(timedelta(minutes=parsed.ttl_minutes))
    due = next_poll_at(now=now, schedule=source.schedule, status=status, failures=failures,
                       hint=max(hints) if hints else None, retry_after=fetched.retry_after)
    succeeded = status in (PollStatus.OK, PollStatus.NOT_MODIFIED, PollStatus.UNCHANGED)
    new_state = replace(
        state,
        etag=fetched.etag or state.etag if succeeded else state.etag,
        last_modified=fetched.last_modified or state.last_modified if succeeded
        else state.last_modified,
        body_hash=body_hash,
        feed_title=parsed.title if parsed and parsed.title else state.feed_title,
        feed_link=parsed.link if parsed and parsed.link else state.feed_link,
        last_poll_at=now,
        last_success_at=now if succeeded else state.last_success_at,
        last_status=status.value,
        http_status=fetched.http_status,
        error=note if succeeded else error,
        failures=failures,
        next_poll_at=due,
        retry_after=fetched.retry_after,
        moved_to=fetched.moved_to or (state.moved_to if not succeeded else None),
    )
    event = state_change(state, new_state)
    # Shielded: a stop that cancels this poll still lets its transaction complete.
    result = await asyncio.shield(
        deps.store.save_poll(new_state, parsed.entries if parsed else [], now, event,
                             node=deps.node))
    outcome = PollOutcome(source_url=source.url, status=status, http_status=fetched.http_status,
                          new=result.new, updated=result.updated, error=new_state.error,
                          moved_to=new_state.moved_to, next_poll_at=due,
                          fetch_seconds=fetched.elapsed, fetched_bytes=len(fetched.body),
                          state_change=event.kind if event else None)
    _log(outcome)
    return outcome


def _log(outcome: PollOutcome) -> None:
    extra = {"source": outcome.source_url, "status": outcome.status.value,
             "http_status": outcome.http_status, "new": outcome.new, "updated": outcome.updated,
             "next_poll": outcome.next_poll_at.isoformat() if outcome.next_poll_at else None}
    if outcome.status in (PollStatus.ERROR, PollStatus.RATE_LIMITED, PollStatus.GONE):
        log.warning("poll failed: %s: %s", outcome.source_url, outcome.error, extra=extra)
    else:
        log.info("polled %s: %s, %d new, %d updated", outcome.source_url, outcome.status.value,
                 outcome.new, outcome.updated, extra=extra)


async def poll_sources(deps: Deps, sources: Sequence[Source], *, force: bool = False,
                       on_done: Callable[[PollOutcome], None] | None = None) -> list[PollOutcome]:
    """Poll several sources concurrently (bounded by the fetcher's limits), in order.

    ``on_done`` is called with each outcome as soon as its source is done (for progress).
    :data:`POLLS_IN_FLIGHT` pollers take the sources in turn, so bodies waiting for a
    parser never pile up in memory and no task exists per source, however many sources.
    """
    states = {s.url: s for s in await deps.store.source_states()}  # one query, not one each
    outcomes: list[PollOutcome | None] = [None] * len(sources)
    turns = iter(enumerate(sources))

    async def poller() -> None:
        # The iterator is shared: each source goes to the first poller free.
        for i, source in turns:
            outcome = await poll_source(deps, source, force=force,
                                        state=states.get(source.url) or SourceState(url=source.url))
            outcomes[i] = outcome
            if on_done is not None:
                on_done(outcome)

    pollers = [asyncio.create_task(poller()) for _ in range(min(POLLS_IN_FLIGHT, len(sources)))]
    try:
        await asyncio.gather(*pollers)
    except BaseException:
        # A store failure (or a stop) ends the other pollers too, and is raised as is.
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        raise
    return [o for o in outcomes if o is not None]


def changed_categories(config: Config, outcomes: Iterable[PollOutcome]) -> set[str]:
    """The categories whose merged feeds may differ after these outcomes."""
    slugs = {s.category for o in outcomes if o.changed if (s := config.source(o.source_url))}
    health = {"_health"} if any(o.state_change for o in outcomes) else set()
    return (slugs | {"all"} if slugs else set()) | health


#: Rendered bytes stored (and written) at once by :func:`republish`: bounds its memory
#: whatever the number of archive pages, while keeping transactions few.
REPUBLISH_BATCH_BYTES = 4 << 20


async def republish(store: Store, config: Config, slugs: Iterable[str] | None = None,
                    out_dir: Path | None = None, *, lock_wait: float | None = None,
                    workers: Workers | None = None) -> list[str]:
    """Render ``slugs`` (default: everything), store what changed, write it to ``out_dir``.

    Documents are stored (and written) in small batches as they are rendered, so
    memory does not grow with the number of pages; one batch is stored and written
    while the next is rendered. Returns the paths of the documents whose bytes
    changed, in rendering order. A file that cannot be written does not stop the
    rest from being rendered and stored. ``lock_wait``: how long to wait for another
    node's render to finish (default: as long as it takes); ``workers``: where feeds
    are rendered (default: inline).

    Raises:
        StoreError, PublishError: the store or the disk failed, or another node was
            still rendering after ``lock_wait`` seconds.
    """
    from feedhub.publish.static import PublishError, write_documents
    from feedhub.render.site import render

    changed: list[str] = []
    unwritten: list[PublishError] = []

    async def keep(batch: list[Document]) -> None:
        stored = await store.put_documents(batch)
        changed.extend(doc.path for doc in stored)
        if out_dir is not None and not unwritten:
            try:
                # In a thread: fsync waits for the disk, rendering need not.
                await asyncio.to_thread(write_documents, stored, out_dir)
            except PublishError as e:
                unwritten.append(e)

    # One render at a time among nodes sharing the store, so an older render never
    # overwrites a newer one, and only the node whose bytes changed the store reports
    # (and so pings WebSub hubs about) the change.
    async with store.lock("republish", wait=True, timeout=lock_wait) as held:
        if not held:
            raise StoreError(f"another node was still rendering after {lock_wait:g}s")
        if slugs is not None:
            # Also any feed never rendered (a new category): pages and OPML link to it.
            existing = set(await store.document_paths("feeds/"))
            slugs = set(slugs) | {slug for slug in ("all", *config.categories)
                                  if f"feeds/{slug}.atom" not in existing}
        batch: list[Document] = []
        size = 0
        keeping: asyncio.Task[None] | None = None
        try:
            async with aclosing(render(store, config, slugs, workers)) as docs:
                async for doc in docs:
                    batch.append(doc)
                    size += len(doc.gzipped)
                    if size >= REPUBLISH_BATCH_BYTES:
                        if keeping is not None:
                            await keeping  # at most two batches in memory
                        keeping = asyncio.create_task(keep(batch))
                        batch, size = [], 0
            if keeping is not None:
                await keeping
            await keep(batch)
        finally:
            if keeping is not None and not keeping.done():
                # Rendering failed: the batch being stored still completes.
                await asyncio.gather(keeping, return_exceptions=True)
    if unwritten:
        raise unwritten[0]
    return changed


async def record_quiet(store: Store, config: Config, now: datetime) -> int:
    """Record sources that went quiet or publish again (health feed); how many changed.

    Raises:
        StoreError: the store failed.
    """
    configured = {s.url for s in config.sources}
    states = [s for s in await store.source_states() if s.url in configured]
    events = quiet_changes(now=now, states=states,
                           times=await store.entry_times(RHYTHM_ENTRIES),
                           last=await store.last_events(QUIET_KINDS),
                           factor=config.quiet_factor, minimum=config.quiet_after)
    if events:
        await store.record_events(events)
        for event in events:
            log.info("source %s: %s", event.kind, event.source_url,
                     extra={"source": event.source_url, "event": event.kind})
    return len(events)


async def apply_retention(store: Store, config: Config) -> int:
    """Delete entries beyond the configured retention; how many were deleted.

    Raises:
        StoreError: the store failed.
    """
    if config.retention_days is None and config.retention_entries is None:
        return 0
    older = utcnow() - timedelta(days=config.retention_days) if config.retention_days else None
    return await store.prune(older_than=older, keep_per_source=config.retention_entries)
