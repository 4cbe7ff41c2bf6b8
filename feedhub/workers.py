"""CPU-bound jobs off the event loop: :class:`Workers`.

Parsing (feedparser holds the GIL) and rendering (feedgen builds lxml trees)
run in worker processes, so a poll of many changed feeds or a full build uses
every core while the event loop keeps fetching, storing and serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # imported with the first pool: a poll of 304s never loads them (~20 ms)
    from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger("feedhub.workers")

T = TypeVar("T")

#: What worker processes import before the first job: the parser, the sanitizer and
#: the feed renderer, nothing else of feedhub (config, store, HTTP client).
WORKER_MODULES = ("feedhub.normalize", "feedhub.render.feeds")


def worker_count() -> int:
    """How many worker processes: ``$FEEDHUB_PARSE_WORKERS``, else one per core.

    ``1`` parses and renders in a thread of the main process instead (the least
    memory: a worker costs ~15 MB).
    """
    wanted = os.environ.get("FEEDHUB_PARSE_WORKERS", "auto").strip()
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    if wanted != "auto":
        log.warning("FEEDHUB_PARSE_WORKERS=%s is not a number or 'auto'; one worker per core",
                    wanted)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Seconds of work done in the thread before a pool is worth starting (about what
#: starting one costs): a poll of a few sources and its republish never start one.
POOL_AFTER = 0.25


class Workers:
    """Runs CPU-bound jobs (parsing, rendering) off the event loop, on every core.

    Both hold the GIL, so a poll of many changed feeds is only as fast as the cores
    it parses on. Jobs first run one at a time in a thread, and no worker process is
    started: starting a pool costs more than a small poll's whole work. Once jobs
    wait for each other and the thread has worked ``pool_after`` seconds, a pool of
    worker processes starts and takes them from then on. A pool whose worker died is
    replaced.
    """

    def __init__(self, processes: int, *, pool_after: float = POOL_AFTER) -> None:
        self._processes = processes
        self._pool_after = pool_after
        self._pool: ProcessPoolExecutor | None = None
        self._in_thread = 0
        #: Seconds the thread has run jobs (finished ones), and when the running one began.
        self._thread_busy = 0.0
        self._thread_since = 0.0
        self._thread_free = asyncio.Event()

    async def run(self, job: Callable[[], T]) -> T:
        """``job()``'s result; ``job`` must pickle (a module-level function or a partial)."""
        if self._processes < 2:
            return await asyncio.to_thread(job)
        while self._pool is None:
            if not self._in_thread:
                return await self._in_the_thread(job)
            busy = self._thread_busy + time.monotonic() - self._thread_since
            if busy >= self._pool_after:
                break
            self._thread_free.clear()
            # Woken when the thread is free, or when its job has run long enough.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._thread_free.wait(), self._pool_after - busy)
        pool = self._pool = self._pool or _process_pool(self._processes)
        from concurrent.futures.process import BrokenProcessPool

        try:
            # Submitted from a thread: a process pool starts its workers inside submit()
            # (through the forkserver, ~1 s the first time), which must not stall the
            # loop that also serves HTTP and feeds the watchdog.
            future = await asyncio.to_thread(pool.submit, job)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): this job runs here instead, and
            # the next ones in a new pool.
            log.warning("a worker process died; running its job in the main process")
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            return await asyncio.to_thread(job)

    async def _in_the_thread(self, job: Callable[[], T]) -> T:
        self._in_thread += 1
        self._thread_since = time.monotonic()
        try:
            return await asyncio.to_thread(job)
        finally:
            self._in_thread -= 1
            self._thread_busy += time.monotonic() - self._thread_since
            self._thread_free.set()

    @property
    def started(self) -> bool:
        """Whether worker processes are running (or starting)."""
        return self._pool is not None

    def close(self) -> None:
        """Stop the worker processes, once their jobs are done."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _process_pool(processes: int) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        # Workers fork from a clean process with only what their jobs need imported:
        # the rest of feedhub would add ~30 MB to each.
        context.set_forkserver_preload(list(WORKER_MODULES))
    # A Ctrl-C reaches the whole foreground process group: the parent decides when
    # workers stop. SIGTERM keeps its default: when a worker dies, the pool ends the
    # others with it, and one that ignored it (blocked sending a result nobody reads
    # any more) was waited for forever, hanging the poll. (A partial of builtins: a
    # function of ours would make each worker import its whole module.)
    return ProcessPoolExecutor(max_workers=processes, mp_context=context,
                               initializer=partial(signal.signal, signal.SIGINT, signal.SIG_IGN))


@contextmanager
def worker_pool(processes: int | None = None, *,
                pool_after: float = POOL_AFTER) -> Iterator[Workers]:
    """:class:`Workers` for ``processes`` (default :func:`worker_count`), closed on exit."""
    workers = Workers(processes or worker_count(), pool_after=pool_after)
    try:
        yield workers
    finally:
        workers.close()
