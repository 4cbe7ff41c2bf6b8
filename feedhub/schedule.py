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
