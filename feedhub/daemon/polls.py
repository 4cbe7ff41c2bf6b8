"""The daemon's polls: due sources claimed under a lease, at most a bound in flight.

While more sources are due than may be in flight, each finished poll makes room for
the next at once: the tick only starts the polls that came due, it does not pace them.

A poll that saved nothing gives its lease back at once; a store that cannot be
written pauses polling (with backoff) while serving goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

from feedhub import metrics
from feedhub.config import Config, Source
from feedhub.errors import FeedhubError, StoreError
from feedhub.fetch import Fetcher
from feedhub.model import PollOutcome, PollStatus, utcnow
from feedhub.pipeline import Deps, poll_source
from feedhub.store import Store
from feedhub.workers import Workers

log = logging.getLogger("feedhub.daemon")

#: Sources polled at the same time, at most.
MAX_IN_FLIGHT = 20
#: Free places that make a claim worth its query while more sources are due.
REFILL_AT = 5
_SUCCEEDED = frozenset({PollStatus.OK, PollStatus.NOT_MODIFIED, PollStatus.UNCHANGED})


class Polls:
    """Starts the polls that are due and keeps track of those in flight.

    ``on_outcome`` hears of every finished poll (the daemon marks what to render).
    """

    def __init__(self, config: Config, store: Store, fetcher: Fetcher, workers: Workers,
                 on_outcome: Callable[[PollOutcome], None]) -> None:
        #: Replaced on reload.
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.workers = workers
        self.on_outcome = on_outcome
        #: Who holds this node's leases in a shared store.
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self.in_flight: dict[str, asyncio.Task[PollOutcome | None]] = {}
        self.last_tick = time.monotonic()
        self.last_cycle = "-"
        self._store_backoff = 0.0
        self._paused_until = 0.0
        #: Whether the last claim filled every free place (more may be due), and the
        #: task that claims again as polls finish.
        self._backlog = False
        self._refill: asyncio.Task[None] | None = None
        self._refill_wanted = False
        self._stopping: asyncio.Event | None = None
        self._claiming = asyncio.Lock()

    async def tick(self, stopping: asyncio.Event) -> None:
        """Start polls for the sources that are due, up to the in-flight bound."""
        self._stopping = stopping
        self.last_tick = time.monotonic()
        await self._claim(stopping)

    async def _claim(self, stopping: asyncio.Event) -> None:
        async with self._claiming:  # the clock's tick and a refill never claim at once
            room = MAX_IN_FLIGHT - len(self.in_flight)
            if room > 0 and not stopping.is_set() and time.monotonic() >= self._paused_until:
                await self._start_due(stopping, room)

    async def _start_due(self, stopping: asyncio.Event, room: int) -> None:
        candidates = [s.url for s in self.config.sources if s.url not in self.in_flight]
        try:
            # Claimed with a lease: nodes sharing the store never poll a source twice,
            # and a dead node's claims lapse when the lease runs out.
            due = await self.store.claim_sources(candidates, utcnow(), room, node=self.node,
                                                 lease=self.config.storage.lease)
        except StoreError as e:
            self._store_trouble(e)
            return
        self._backlog = len(due) >= room
        if stopping.is_set():  # stopping meanwhile: these would never be polled
            await self.release(due)
            return
        if due:
            log.info("tick: polling %d due sources (%d already in flight)", len(due),
                     len(self.in_flight))
        for url in due:
            source = self.config.source(url)
            if source is not None:
                task = asyncio.create_task(self._poll(source), name=f"poll {url}")
                self.in_flight[url] = task
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[PollOutcome | None]) -> None:
        url = task.get_name().removeprefix("poll ")
        self.in_flight.pop(url, None)
        if self._backlog and MAX_IN_FLIGHT - len(self.in_flight) >= REFILL_AT:
            self._refill_wanted = True
            if self._refill is None or self._refill.done():
                self._refill = asyncio.create_task(self._refilled(), name="refill polls")

    async def _refilled(self) -> None:
        """Claim again for the places finished polls freed, while more are due."""
        while self._refill_wanted and self._backlog and self._stopping is not None:
            self._refill_wanted = False
            await self._claim(self._stopping)

    async def _poll(self, source: Source) -> PollOutcome | None:
        deps = Deps(config=self.config, store=self.store, fetcher=self.fetcher,
                    workers=self.workers, node=self.node)
        try:
            # The pipeline skips gone/rate-limited sources itself; the store's
            # next_poll_at already honours both, so polling here is never forced.
            outcome = await poll_source(deps, source)
        except StoreError as e:
            self._store_trouble(e)
            return None
        except FeedhubError as e:
            log.error("poll of %s failed: %s", source.url, e)
            await self.release([source.url])
            return None
        if outcome.status is PollStatus.SKIPPED:  # nothing saved: the lease is still ours
            await self.release([source.url])
        self._store_backoff = 0.0
        self._record(outcome)
        return outcome

    def _store_trouble(self, error: StoreError) -> None:
        """Pause polling while the store cannot be written (disk full, read-only…).

        Serving goes on from what the store already holds; polling resumes by itself.
        """
        self._store_backoff = min(max(self._store_backoff * 2, 1.0), 60.0)
        self._paused_until = time.monotonic() + self._store_backoff
        log.error("the store cannot be written (%s); polling paused for %.0fs", error,
                  self._store_backoff)

    def _record(self, outcome: PollOutcome) -> None:
        metrics.POLLS.labels(outcome.status.value).inc()
        metrics.ENTRIES.labels("new").inc(outcome.new)
        metrics.ENTRIES.labels("updated").inc(outcome.updated)
        if outcome.fetch_seconds:
            metrics.FETCH_SECONDS.observe(outcome.fetch_seconds)
        metrics.FETCHED_BYTES.inc(outcome.fetched_bytes)
        source = self.config.source(outcome.source_url)
        if source is not None and outcome.status in _SUCCEEDED:
            metrics.LAST_SUCCESS.labels(source.category).set(time.time())
        self.on_outcome(outcome)
        self.last_cycle = utcnow().strftime("%H:%M:%S UTC")

    # --- leases -------------------------------------------------------------------------

    async def release(self, urls: list[str]) -> None:
        """Give up this node's leases on ``urls`` (their polls saved nothing)."""
        if not urls:
            return
        try:
            await self.store.release_sources(urls, self.node)
        except FeedhubError as e:  # the leases run out by themselves
            log.warning("cannot release leases on %d sources: %s", len(urls), e)

    async def release_dead_leases(self) -> None:
        """End the leases of earlier processes on this host that are gone (killed, crashed).

        Without this, a restart after SIGKILL would wait out the lease before polling.
        """
        host = socket.gethostname()
        for owner in await self.store.lease_owners():
            owner_host, _, pid = owner.rpartition(":")
            if owner_host == host and pid.isdigit() and not _alive(int(pid)):
                await self.store.release_node(owner)
                log.info("released the leases of %s, which is no longer running", owner)

    async def release_all(self) -> None:
        """End every lease this node still holds (polls cut short by the stop saved
        nothing): other nodes may take those sources at once, not after the lease."""
        if self._refill is not None:  # a claim under way when the stop came
            await asyncio.gather(self._refill, return_exceptions=True)
        try:
            await self.store.release_node(self.node)
        except FeedhubError as e:  # the leases run out by themselves
            log.warning("cannot release this node's leases: %s", e)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
