"""CPU-bound jobs off the event loop: :class:`Workers`.

Parsing (feedparser holds the GIL) and rendering (feedgen builds lxml trees)
run in worker processes, so a poll of many changed feeds or a full build uses
every core while the event loop keeps fetching, storing and serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
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


class Workers:
    """Runs CPU-bound jobs (parsing, rendering) off the event loop, on every core.

    Both hold the GIL, so a poll of many changed feeds is only as fast as the cores
    it parses on. While jobs come one at a time (a poll of one source, a
    daemon's trickle of changes) they run in a thread, and no worker process is
    started; once two wait at once, a pool of worker processes starts and takes
    them from then on. A pool whose worker died is replaced.
    """

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._in_thread = 0

    async def run(self, job: Callable[[], T]) -> T:
        """``job()``'s result; ``job`` must pickle (a module-level function or a partial)."""
        if self._processes < 2 or (self._pool is None and not self._in_thread):
            self._in_thread += 1
            try:
                return await asyncio.to_thread(job)
            finally:
                self._in_thread -= 1
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
def worker_pool(processes: int | None = None) -> Iterator[Workers]:
    """:class:`Workers` for ``processes`` (default :func:`worker_count`), closed on exit."""
    workers = Workers(processes or worker_count())
    try:
        yield workers
    finally:
        workers.close()
