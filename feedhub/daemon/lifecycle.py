"""The running daemon: start everything in order, reload on SIGHUP, stop gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from feedhub.config import Config, load_config
from feedhub.daemon.polls import Polls
from feedhub.daemon.publishing import Publishing
from feedhub.daemon.watch import feed_watchdog, health_report, status_line
from feedhub.errors import ConfigError
from feedhub.fetch import Fetcher, limits_for, user_agent
from feedhub.model import PollOutcome, utcnow
from feedhub.pidfile import pid_path, remove_pid_file, write_pid_file
from feedhub.pipeline import changed_categories
from feedhub.policy import first_poll_at
from feedhub.publish.webhooks import WebhookSender
from feedhub.publish.websub import WebSubPublisher
from feedhub.schedule import Jobs, Scheduler
from feedhub.server import HttpServer, create_app
from feedhub.store import Store, open_store
from feedhub.systemd import Notifier, watchdog_interval
from feedhub.workers import worker_pool

log = logging.getLogger("feedhub.daemon")

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


class Daemon:
    """One running feedhub: owns the configuration, the store and the jobs."""

    def __init__(self, config: Config, options: DaemonOptions, notifier: Notifier) -> None:
        self.config = config
        self.options = options
        self.notifier = notifier
        self.port: int | None = None
        self._stop = asyncio.Event()
        #: Scheduled jobs running now, so that stopping can wait for them.
        self._jobs: set[asyncio.Task[object]] = set()
        # Set by run(), once the store is open.
        self._store: Store | None = None
        self._polls: Polls | None = None
        self._publishing: Publishing | None = None
        self._webhooks: WebhookSender | None = None

    @property
    def store(self) -> Store:
        """The open store (only while running)."""
        assert self._store is not None, "the daemon is not running"
        return self._store

    @property
    def polls(self) -> Polls:
        """The polls in flight (only while running)."""
        assert self._polls is not None, "the daemon is not running"
        return self._polls

    @property
    def publishing(self) -> Publishing:
        """What renders and publishes (only while running)."""
        assert self._publishing is not None, "the daemon is not running"
        return self._publishing

    def stop(self) -> None:
        """Ask the daemon to stop gracefully."""
        self._stop.set()

    async def health(self) -> dict[str, object]:
        """What ``/healthz`` reports."""
        return await health_report(self.store, self.config, last_tick=self.polls.last_tick,
                                   tick_every=self.options.tick_every,
                                   in_flight=len(self.polls.in_flight))

    async def schedule_new_sources(self, window: timedelta) -> None:
        """Give never-polled sources a first poll time, spread over ``window``."""
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
        self.polls.config = self.publishing.config = new
        if self._webhooks is not None:
            self._webhooks.webhooks = new.webhooks
        await self.schedule_new_sources(self.options.first_poll_window)
        now = utcnow()
        for source in new.sources:
            before = old.source(source.url)
            if before is not None and before.schedule != source.schedule:
                state = await self.store.source_state(source.url)
                if state and state.last_poll_at and state.next_poll_at:
                    due = max(now, source.schedule.due_after(state.last_poll_at))
                    await self.store.reschedule(source.url, min(state.next_poll_at, due))
        self.publishing.mark({"all", *new.categories})
        added = len({s.url for s in new.sources} - {s.url for s in old.sources})
        removed = len({s.url for s in old.sources} - {s.url for s in new.sources})
        log.info("reloaded %s: %d sources (%d added, %d removed)", new.path, len(new.sources),
                 added, removed)
        self.notifier.ready(await self._status_line())

    async def run(self) -> None:
        """Run until stopped.

        Raises:
            FeedhubError: the store or the server cannot start.
        """
        loop = asyncio.get_running_loop()
        async with AsyncExitStack() as stack:
            self._store = store = await open_store(self.config.store_url,
                                                   pool_size=self.config.storage.pool_size)
            stack.push_async_callback(store.close)
            self._write_pid_file(stack)
            fetcher = await stack.enter_async_context(Fetcher(self.config.site.base_url,
                                                              limits_for(self.config.fetch)))
            workers = stack.enter_context(worker_pool())
            # Hubs are read at startup; a reload that changes them applies after a restart.
            websub = await stack.enter_async_context(
                WebSubPublisher(self.config.site.websub_hubs, self.config.site.base_url))
            self._publishing = Publishing(self.config, store, workers, websub,
                                          after=self._report_status)
            self._polls = Polls(self.config, store, fetcher, workers, self._polled)
            await self.schedule_new_sources(self.options.first_poll_window)
            await self.polls.release_dead_leases()
            # Everything, not just what is missing: a crash may have come between
            # storing entries and republishing them, or between storing and writing files.
            await self.publishing.everything()
            host, port = self.options.listen or (self.config.listen_host, self.config.listen_port)
            server = HttpServer(create_app(store, self.health), host, port)
            await server.start()
            self.port = server.port
            stack.push_async_callback(server.stop)
            self._webhooks = sender = WebhookSender(store, self.config.webhooks,
                                                    user_agent(self.config.site.base_url))
            stack.push_async_callback(sender.aclose)
            sending = asyncio.create_task(sender.run(), name="webhooks")
            stack.push_async_callback(sender.stop, sending, STOP_GRACE)
            scheduler = Scheduler(Jobs(tick=self._job(lambda: self.polls.tick(self._stop)),
                                       republish=self._job(self.publishing.republish),
                                       prune=self._job(self.publishing.prune),
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
                watchdog = asyncio.create_task(feed_watchdog(store, self.notifier, every,
                                                             self._stop))
                stack.push_async_callback(_cancel, watchdog)
            await self._stop.wait()
            await self._shut_down(scheduler)
        log.info("stopped")

    async def _shut_down(self, scheduler: Scheduler) -> None:
        """Stop scheduling, let what runs finish (bounded), give up leases, render last."""
        self.notifier.stopping()
        log.info("stopping: waiting for %d polls in flight", len(self.polls.in_flight))
        scheduler.shutdown()
        await _drain(list(self._jobs), "scheduled jobs")
        await _drain(list(self.polls.in_flight.values()), "polls")
        await self.polls.release_all()
        with suppress(TimeoutError):
            await asyncio.wait_for(self.publishing.republish(lock_wait=STOP_RENDER_WAIT),
                                   STOP_RENDER_TIME)
        if self.publishing.dirty:
            log.warning("stopped without rendering %s: the next node to start renders "
                        "everything", ", ".join(sorted(self.publishing.dirty)))

    def _polled(self, outcome: PollOutcome) -> None:
        self.publishing.mark(changed_categories(self.config, [outcome]))
        if outcome.new and self._webhooks is not None:
            self._webhooks.poke()  # the poll may have queued deliveries

    async def _status_line(self) -> str:
        return status_line(await self.health(), self.polls.last_cycle)

    async def _report_status(self) -> None:
        self.notifier.status(await self._status_line())

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


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
