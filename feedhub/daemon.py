"""``feedhub run``: the scheduler, the pipeline and the HTTP server in one process.

Lifecycle: open the store, HTTP client and server, start the scheduler, then
tell systemd ``READY=1``. ``SIGHUP`` reloads ``feeds.yaml`` (keeping the old
configuration if the new one is invalid); ``SIGTERM``/``SIGINT`` stop
scheduling, let running jobs and in-flight polls finish (bounded), give up the
leases left, render what changed (waiting a few seconds at most for another
node's render), stop the server and close the store. The watchdog is fed only
while the store answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from feedhub import metrics
from feedhub.config import Config, Source, load_config
from feedhub.errors import ConfigError, FeedhubError, StoreError
from feedhub.fetch import Fetcher, limits_for
from feedhub.model import PollOutcome, PollStatus, utcnow
from feedhub.pidfile import pid_path, remove_pid_file, write_pid_file
from feedhub.pipeline import (
    Deps,
    apply_retention,
    changed_categories,
    poll_source,
    record_quiet,
    republish,
)
from feedhub.policy import first_poll_at
from feedhub.publish.static import write_stored
from feedhub.publish.websub import WebSubPublisher
from feedhub.schedule import Jobs, Scheduler
from feedhub.server import HttpServer, create_app
from feedhub.store import Store, open_store
from feedhub.systemd import Notifier, watchdog_interval
from feedhub.workers import Workers, worker_pool

log = logging.getLogger("feedhub.daemon")

#: Sources polled at the same time, at most.
MAX_IN_FLIGHT = 20
_SUCCEEDED = frozenset({PollStatus.OK, PollStatus.NOT_MODIFIED, PollStatus.UNCHANGED})
#: How long in-flight polls (and running jobs) may take to finish on stop; the rest are
#: cancelled (their store transactions still complete), their leases released, and
#: their sources polled by another node (or after restart).
STOP_GRACE = 3.0
#: How long the last render on stop waits for another node's render to end (the nodes
#: sharing a PostgreSQL store render one at a time): stopping must not hang on a node
#: rendering a large backlog, or one that froze holding the lock.
STOP_RENDER_WAIT = 5.0
#: How long the last render on stop may take in all, waiting included: a backlog (after
#: a cold poll) takes longer, and is rendered by the next node to start instead.
STOP_RENDER_TIME = 10.0


@dataclass(slots=True, kw_only=True)
class DaemonOptions:
    """How ``feedhub run`` was started."""

    config_path: Path
    listen: tuple[str, int] | None = None
    tick_every: float = 5.0
    #: Never-polled sources are spread over this window (or their interval, if shorter).
    first_poll_window: timedelta = timedelta(minutes=1)


@dataclass(slots=True)
class _Stats:
    last_tick: float = field(default_factory=time.monotonic)
    last_cycle: str = "-"


class Daemon:
    """One running feedhub: owns the configuration, the store and the jobs."""

    def __init__(self, config: Config, options: DaemonOptions, notifier: Notifier) -> None:
        self.config = config
        self.options = options
        self.notifier = notifier
        self.store: Store | None = None
        self.fetcher: Fetcher | None = None
        #: Where bodies are parsed: a process per core (see pipeline.Workers).
        self.workers = Workers(1)
        self.websub: WebSubPublisher | None = None
        #: Who holds this node's leases in a shared store.
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self._in_flight: dict[str, asyncio.Task[PollOutcome | None]] = {}
        #: Scheduled jobs running now, so that stopping can wait for them.
        self._jobs: set[asyncio.Task[object]] = set()
        self._dirty: set[str] = set()
        self._stop = asyncio.Event()
        self._stats = _Stats()
        self._store_backoff = 0.0
        self._paused_until = 0.0
        self._public_stale = False
        self.port: int | None = None

    # --- jobs -----------------------------------------------------------------------

    async def tick(self) -> None:
        """Start polls for the sources that are due, up to the in-flight bound."""
        self._stats.last_tick = time.monotonic()
        if self._stop.is_set() or self.store is None or self._stats.last_tick < self._paused_until:
            return
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            return
        candidates = [s.url for s in self.config.sources if s.url not in self._in_flight]
        try:
            # Claimed with a lease: nodes sharing the store never poll a source twice,
            # and a dead node's claims lapse when the lease runs out.
            due = await self.store.claim_sources(candidates, utcnow(), room, node=self.node,
                                                 lease=self.config.storage.lease)
        except StoreError as e:
            self._store_trouble(e)
            return
        if self._stop.is_set():  # stopping meanwhile: these would never be polled
            await self._release(due)
            return
        if due:
            log.info("tick: polling %d due sources (%d already in flight)", len(due),
                     len(self._in_flight))
        for url in due:
            source = self.config.source(url)
            if source is not None:
                task = asyncio.create_task(self._poll(source), name=f"poll {url}")
                self._in_flight[url] = task
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[PollOutcome | None]) -> None:
        url = task.get_name().removeprefix("poll ")
        self._in_flight.pop(url, None)

    async def _poll(self, source: Source) -> PollOutcome | None:
        assert self.store is not None and self.fetcher is not None
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
            await self._release([source.url])
            return None
        if outcome.status is PollStatus.SKIPPED:  # nothing saved: the lease is still ours
            await self._release([source.url])
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

    async def _release_dead_leases(self) -> None:
        """End the leases of earlier processes on this host that are gone (killed, crashed).

        Without this, a restart after SIGKILL would wait out the lease before polling.
        """
        assert self.store is not None
        host = socket.gethostname()
        for owner in await self.store.lease_owners():
            owner_host, _, pid = owner.rpartition(":")
            if owner_host == host and pid.isdigit() and not _alive(int(pid)):
                await self.store.release_node(owner)
                log.info("released the leases of %s, which is no longer running", owner)

    async def _release(self, urls: list[str]) -> None:
        """Give up this node's leases on ``urls`` (their polls saved nothing)."""
        if self.store is None or not urls:
            return
        try:
            await self.store.release_sources(urls, self.node)
        except FeedhubError as e:  # the leases run out by themselves
            log.warning("cannot release leases on %d sources: %s", len(urls), e)

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
        self._dirty |= changed_categories(self.config, [outcome])
        self._stats.last_cycle = utcnow().strftime("%H:%M:%S UTC")

    async def republish(self, *, lock_wait: float | None = None) -> None:
        """Render and publish the categories whose entries changed.

        ``lock_wait``: how long to wait for another node's render (default: as long as
        it takes); after that the categories stay to be rendered.
        """
        if (not self._dirty and not self._public_stale) or self.store is None:
            return
        slugs, self._dirty = self._dirty, set()
        try:
            changed = (await republish(self.store, self.config, slugs, lock_wait=lock_wait,
                                       workers=self.workers) if slugs else [])
        except FeedhubError as e:
            self._dirty |= slugs  # try again on the next run
            log.error("republish failed: %s", e)
            return
        except asyncio.CancelledError:
            self._dirty |= slugs  # cut short by a stop: the last republish renders them
            raise
        try:
            # After a failed write (disk full…) every file is rewritten, not just the
            # changed ones: the store already holds the new bytes.
            await write_stored(self.store, await self.store.document_paths()
                               if self._public_stale else changed, self.config.public_dir)
            self._public_stale = False
        except FeedhubError as e:
            if not self._public_stale:
                log.error("cannot write %s, serving from the store until it can: %s",
                          self.config.public_dir, e)
            self._public_stale = True
        metrics.DOCUMENTS.inc(len(changed))
        if self.websub is not None:
            self.websub.announce(changed)
        if changed:
            log.info("republished %d documents (%s)", len(changed), ", ".join(sorted(slugs)))
        await self._report_status()

    async def prune(self) -> None:
        """Apply the retention settings, and note sources that went quiet (hourly)."""
        config = self.config
        if self.store is None:
            return
        try:
            async with self.store.lock("prune") as held:
                if not held:  # another node is pruning the shared store
                    return
                deleted = await apply_retention(self.store, config)
                quiet = await record_quiet(self.store, config, utcnow())
        except FeedhubError as e:
            log.error("prune failed: %s", e)
            return
        if deleted:
            log.info("pruned %d entries by retention", deleted)
            self._dirty |= {"all", *config.categories}
        if quiet:
            self._dirty.add("_health")

    # --- configuration ----------------------------------------------------------------

    async def schedule_new_sources(self, window: timedelta) -> None:
        """Give never-polled sources a first poll time, spread over ``window``."""
        assert self.store is not None
        now = utcnow()
        added = await self.store.ensure_sources(
            {s.url: first_poll_at(now=now, url=s.url,
                                   interval=min(s.schedule.interval_at(now), window))
             for s in self.config.sources})
        if added:
            log.info("scheduled %d new sources", added)

    async def reload(self) -> None:
        """Re-read feeds.yaml; on error keep the running configuration."""
        self.notifier.reloading()
        try:
            new = load_config(self.options.config_path)
        except ConfigError as e:
            log.error("reload failed, keeping the running configuration:\n%s", e)
            self.notifier.ready(f"reload failed: {e.issues[0]}")
            return
        old, self.config = self.config, new
        assert self.store is not None
        await self.schedule_new_sources(self.options.first_poll_window)
        now = utcnow()
        for source in new.sources:
            before = old.source(source.url)
            if before is not None and before.schedule != source.schedule:
                state = await self.store.source_state(source.url)
                if state and state.last_poll_at and state.next_poll_at:
                    due = max(now, source.schedule.due_after(state.last_poll_at))
                    await self.store.reschedule(source.url, min(state.next_poll_at, due))
        self._dirty |= {"all", *new.categories}
        added = len({s.url for s in new.sources} - {s.url for s in old.sources})
        removed = len({s.url for s in old.sources} - {s.url for s in new.sources})
        log.info("reloaded %s: %d sources (%d added, %d removed)", new.path, len(new.sources),
                 added, removed)
        self.notifier.ready(await self._status_line())

    # --- health -------------------------------------------------------------------------

    async def health(self) -> dict[str, object]:
        """What ``/healthz`` reports; ``status`` is ``ok`` only when all is well."""
        assert self.store is not None
        writable = True
        try:
            await asyncio.wait_for(self.store.ping(), timeout=5)
        except (FeedhubError, TimeoutError):
            writable = False
        states = await self.store.source_states() if writable else []
        configured = {s.url for s in self.config.sources}
        states = [s for s in states if s.url in configured]
        failing = sum(s.last_status in (PollStatus.ERROR, PollStatus.RATE_LIMITED) for s in states)
        gone = sum(s.last_status == PollStatus.GONE for s in states)
        ok = len(states) - failing - gone
        for name, value in (("ok", ok), ("failing", failing), ("gone", gone),
                            ("never_polled", len(configured) - len(states))):
            metrics.SOURCES.labels(name).set(value)
        tick_age = time.monotonic() - self._stats.last_tick
        scheduler_ok = tick_age < max(60.0, self.options.tick_every * 6)
        return {
            "status": "ok" if writable and scheduler_ok else "unhealthy",
            "store_writable": writable,
            "scheduler_ok": scheduler_ok,
            "last_tick_seconds_ago": round(tick_age, 1),
            "sources": {"total": len(configured), "ok": ok,
                        "failing": failing, "gone": gone,
                        "never_polled": len(configured) - len(states)},
            "in_flight": len(self._in_flight),
        }

    async def _status_line(self) -> str:
        report = await self.health()
        sources = report["sources"]
        assert isinstance(sources, dict)
        return (f"{sources['total']} sources: {sources['ok']} ok, {sources['failing']} failing, "
                f"{sources['gone']} gone; last poll {self._stats.last_cycle}")

    async def _report_status(self) -> None:
        self.notifier.status(await self._status_line())

    async def _watchdog(self, every: float) -> None:
        assert self.store is not None
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self.store.ping(), timeout=every)
            except (FeedhubError, TimeoutError) as e:
                log.error("watchdog: the store does not answer (%s); not feeding the watchdog", e)
            else:
                self.notifier.watchdog()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=every)

    # --- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the daemon to stop gracefully."""
        self._stop.set()

    async def run(self) -> None:
        """Run until stopped.

        Raises:
            FeedhubError: the store or the server cannot start.
        """
        loop = asyncio.get_running_loop()
        async with AsyncExitStack() as stack:
            self.store = await open_store(self.config.store_url,
                                          pool_size=self.config.storage.pool_size)
            stack.push_async_callback(self.store.close)
            self._write_pid_file(stack)
            self.fetcher = await stack.enter_async_context(Fetcher(self.config.site.base_url,
                                                                   limits_for(self.config.fetch)))
            self.workers = stack.enter_context(worker_pool())
            # Hubs are read at startup; a reload that changes them applies after a restart.
            self.websub = await stack.enter_async_context(
                WebSubPublisher(self.config.site.websub_hubs, self.config.site.base_url))
            await self.schedule_new_sources(self.options.first_poll_window)
            await self._release_dead_leases()
            # Everything, not just what is missing: a crash may have come between
            # storing entries and republishing them, or between storing and writing files.
            await republish(self.store, self.config, workers=self.workers)
            await write_stored(self.store, await self.store.document_paths(),
                               self.config.public_dir)
            host, port = self.options.listen or (self.config.listen_host, self.config.listen_port)
            server = HttpServer(create_app(self.store, self.health), host, port)
            await server.start()
            self.port = server.port
            stack.push_async_callback(server.stop)
            scheduler = Scheduler(Jobs(tick=self._job(self.tick),
                                       republish=self._job(self.republish),
                                       prune=self._job(self.prune),
                                       tick_every=self.options.tick_every))
            scheduler.start()
            stack.callback(scheduler.shutdown)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
            stack.callback(self._remove_signal_handlers, loop)
            log.info("feedhub running: %d sources, serving http://%s:%d/",
                     len(self.config.sources), host, server.port)
            self.notifier.ready(await self._status_line())
            every = watchdog_interval()
            if every:
                watchdog = asyncio.create_task(self._watchdog(every))
                stack.push_async_callback(_cancel, watchdog)
            await self._stop.wait()
            self.notifier.stopping()
            log.info("stopping: waiting for %d polls in flight", len(self._in_flight))
            scheduler.shutdown()
            await self._drain(list(self._jobs), "scheduled jobs")
            await self._drain(list(self._in_flight.values()), "polls")
            await self._release_all()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.republish(lock_wait=STOP_RENDER_WAIT),
                                       STOP_RENDER_TIME)
            if self._dirty:
                log.warning("stopped without rendering %s: the next node to start renders "
                            "everything", ", ".join(sorted(self._dirty)))
        log.info("stopped")

    def _job(self, func: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``func`` as a scheduled job that stopping waits for (a job left running would
        be cancelled at exit, after the store is closed)."""
        async def job() -> None:
            task = asyncio.current_task()
            assert task is not None  # APScheduler runs each coroutine job as a task
            self._jobs.add(task)
            try:
                await func()
            except asyncio.CancelledError:
                if not self._stop.is_set():
                    raise
                # Cut short by the stop, which redoes what it must: not a job failure.
            finally:
                self._jobs.discard(task)
        return job

    @staticmethod
    async def _drain(tasks: list[asyncio.Task[Any]], what: str) -> None:
        """Let ``tasks`` finish for up to STOP_GRACE seconds, then cancel the rest."""
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            log.info("cancelled %d %s still running after %.0fs", len(pending), what, STOP_GRACE)
            await asyncio.wait(pending, timeout=5)

    async def _release_all(self) -> None:
        """End every lease this node still holds (polls cut short by the stop saved
        nothing): other nodes may take those sources at once, not after the lease."""
        if self.store is None:
            return
        try:
            await self.store.release_node(self.node)
        except FeedhubError as e:  # the leases run out by themselves
            log.warning("cannot release this node's leases: %s", e)

    def _write_pid_file(self, stack: AsyncExitStack) -> None:
        """``<data_dir>/feedhub.pid`` while running: feedhub add/remove send it SIGHUP."""
        path = pid_path(self.config.site.data_dir)
        try:
            write_pid_file(path)
        except OSError as e:
            log.warning("cannot write the pid file %s (%s): feedhub add cannot reload this daemon",
                        path, e)
            return
        stack.callback(remove_pid_file, path)

    @staticmethod
    def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


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


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def run(options: DaemonOptions) -> None:
    """Load the configuration and run the daemon until it is stopped.

    Raises:
        ConfigError: the configuration is invalid at startup.
        FeedhubError: the store or the server cannot start.
    """
    config = load_config(options.config_path)
    await Daemon(config, options, Notifier()).run()
