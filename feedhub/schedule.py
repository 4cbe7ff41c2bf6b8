"""The daemon's clock: the only module that imports APScheduler (3.x).

A few interval jobs — poll what is due, republish what changed, prune by
retention — each never overlapping itself. Which sources are due is decided
by the store, not here, so a restart neither forgets nor stampedes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feedhub.model import utcnow

log = logging.getLogger("feedhub.schedule")

Job = Callable[[], Awaitable[None]]


class _OverlapIsNoNews(logging.Filter):
    """APScheduler warns of each turn a job skips because its last run is still going.

    The jobs never overlapping themselves is the design (a republish of a cold start
    outlasts its 2 s interval for minutes), so a skip is a debug line, not a warning.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances" not in str(record.msg):
            return True
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        log.debug("%s still running: this turn skipped", getattr(job, "name", "a job"))
        return False


_overlap_is_no_news = _OverlapIsNoNews()


@dataclass(frozen=True, slots=True, kw_only=True)
class Jobs:
    """What the daemon runs on a clock, and how often (seconds)."""

    tick: Job
    republish: Job
    prune: Job
    tick_every: float = 5.0
    republish_every: float = 2.0
    prune_every: float = 3600.0


class Scheduler:
    """Runs :class:`Jobs` on an ``AsyncIOScheduler`` in the running event loop."""

    def __init__(self, jobs: Jobs) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        logging.getLogger("apscheduler.scheduler").addFilter(_overlap_is_no_news)
        self._stopping = False
        now = utcnow()
        for name, func, every in (("tick", jobs.tick, jobs.tick_every),
                                  ("republish", jobs.republish, jobs.republish_every),
                                  ("prune", jobs.prune, jobs.prune_every)):
            self._scheduler.add_job(func, "interval", seconds=every, id=name, name=name,
                                    max_instances=1, coalesce=True, next_run_time=now,
                                    misfire_grace_time=None)

    def start(self) -> None:
        """Start firing jobs (needs a running event loop)."""
        self._scheduler.start()
        log.debug("scheduler started")

    def shutdown(self) -> None:
        """Stop firing jobs; running ones are not waited for. Safe to call twice."""
        # AsyncIOScheduler stops on the loop's next turn, so `running` stays true until
        # then: remember the request instead.
        if self._scheduler.running and not self._stopping:
            self._stopping = True
            self._scheduler.shutdown(wait=False)
