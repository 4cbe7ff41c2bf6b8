"""The daemon's rendering: categories marked dirty by polls, rendered and published.

Also the hourly retention job, which marks what it pruned. Documents reach
``public/`` after the store holds them; a failed write (disk full…) rewrites
every file on the next run, serving going on from the store meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from feedhub import metrics
from feedhub.config import Config
from feedhub.errors import FeedhubError
from feedhub.model import utcnow
from feedhub.pipeline import apply_retention, record_quiet, republish
from feedhub.publish.static import write_stored
from feedhub.publish.websub import WebSubPublisher
from feedhub.store import Store
from feedhub.workers import Workers

log = logging.getLogger("feedhub.daemon")


class Publishing:
    """Renders what changed since the last run; ``after`` runs once something was."""

    def __init__(self, config: Config, store: Store, workers: Workers,
                 websub: WebSubPublisher | None, after: Callable[[], Awaitable[None]]) -> None:
        #: Replaced on reload.
        self.config = config
        self.store = store
        self.workers = workers
        self.websub = websub
        self.after = after
        #: Categories (slugs) whose documents are out of date.
        self.dirty: set[str] = set()
        self._public_stale = False

    def mark(self, slugs: Iterable[str]) -> None:
        """Have ``slugs`` rendered on the next run."""
        self.dirty |= set(slugs)

    async def everything(self) -> None:
        """Render every category and write every stored document to ``public/``."""
        await republish(self.store, self.config, workers=self.workers)
        await write_stored(self.store, await self.store.document_paths(), self.config.public_dir)

    async def republish(self, *, lock_wait: float | None = None) -> None:
        """Render and publish the categories whose entries changed.

        ``lock_wait``: how long to wait for another node's render (default: as long as
        it takes); after that the categories stay to be rendered.
        """
        if not self.dirty and not self._public_stale:
            return
        slugs, self.dirty = self.dirty, set()
        try:
            changed = (await republish(self.store, self.config, slugs, lock_wait=lock_wait,
                                       workers=self.workers) if slugs else [])
        except FeedhubError as e:
            self.dirty |= slugs  # try again on the next run
            log.error("republish failed: %s", e)
            return
        except asyncio.CancelledError:
            self.dirty |= slugs  # cut short by a stop: the last republish renders them
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
        await self.after()

    async def prune(self) -> None:
        """Apply the retention settings, and note sources that went quiet (hourly)."""
        config = self.config
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
            self.dirty |= {"all", *config.categories}
        if quiet:
            self.dirty.add("_health")
