"""Tell WebSub hubs that a feed changed (the publisher side of W3C WebSub, §7).

After a republish, each changed feed URL is POSTed to every hub as
``hub.mode=publish&hub.url=<feed>``. Pings run in the background with
retries and exponential backoff, so a slow or failing hub never holds up
polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from types import TracebackType

import httpx

from feedhub.config import Config
from feedhub.fetch import user_agent

log = logging.getLogger("feedhub.websub")

#: Documents whose change is announced: the subscription feeds, not pages or archives.
_TOPIC_SUFFIXES = (".atom", ".rss", ".json")


def topics(base_url: str, changed: Iterable[str]) -> list[str]:
    """The feed URLs among ``changed`` document paths that subscribers follow."""
    return [f"{base_url}{path}" for path in changed
            if path.startswith("feeds/") and "/archive/" not in path
            and path.endswith(_TOPIC_SUFFIXES)]


async def announce_now(config: Config, changed: Iterable[str], timeout: float = 15.0) -> None:
    """Ping the configured hubs about the ``changed`` feeds (document paths) and wait
    (bounded) for it."""
    if not config.site.websub_hubs:
        return
    async with WebSubPublisher(config.site.websub_hubs, config.site.base_url, attempts=3,
                               first_delay=0.5) as publisher:
        publisher.announce(changed)
        await publisher.drain(timeout)


class WebSubPublisher:
    """Pings hubs from a background task; use as an async context manager."""

    def __init__(self, hubs: Iterable[str], base_url: str, *, attempts: int = 5,
                 first_delay: float = 1.0, timeout: float = 10.0) -> None:
        self.hubs = tuple(hubs)
        self._base_url = base_url
        self._attempts = attempts
        self._first_delay = first_delay
        self._timeout = timeout
        self._queue: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()
        self._client: httpx.AsyncClient | None = None
        self._worker: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> WebSubPublisher:
        if self.hubs:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, headers={"User-Agent": user_agent(self._base_url)})
            self._worker = asyncio.create_task(self._run(), name="websub")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.drain(timeout=5.0)
        for task in [*self._retries, *([self._worker] if self._worker else [])]:
            task.cancel()
        await asyncio.gather(*self._retries, *([self._worker] if self._worker else []),
                             return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def announce(self, changed: Iterable[str]) -> None:
        """Queue pings for the feeds among ``changed`` document paths; returns at once."""
        for topic in topics(self._base_url, changed):
            for hub in self.hubs:
                self._queue.put_nowait((hub, topic, 1))

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until queued pings have been tried."""
        if self._worker is None:
            return
        try:
            await asyncio.wait_for(self._settled(), timeout)
        except TimeoutError:
            log.warning("websub: %d pings still pending", self._queue.qsize() + len(self._retries))

    async def _settled(self) -> None:
        while True:
            await self._queue.join()
            if not self._retries:
                return
            await asyncio.wait(set(self._retries))

    async def _run(self) -> None:
        while True:
            hub, topic, attempt = await self._queue.get()
            try:
                if not await self._ping(hub, topic) and attempt < self._attempts:
                    delay = self._first_delay * 2 ** (attempt - 1)
                    task = asyncio.create_task(self._retry_later(hub, topic, attempt + 1, delay))
                    self._retries.add(task)
                    task.add_done_callback(self._retries.discard)
                elif attempt >= self._attempts:
                    log.error("websub: giving up on %s for %s after %d attempts", hub, topic,
                              attempt)
            finally:
                self._queue.task_done()

    async def _retry_later(self, hub: str, topic: str, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        self._queue.put_nowait((hub, topic, attempt))

    async def _ping(self, hub: str, topic: str) -> bool:
        assert self._client is not None
        try:
            response = await self._client.post(hub, data={"hub.mode": "publish", "hub.url": topic})
        except httpx.HTTPError as e:
            log.warning("websub: %s unreachable for %s: %s", hub, topic, e)
            return False
        if 200 <= response.status_code < 300:
            log.info("websub: %s notified of %s", hub, topic)
            return True
        log.warning("websub: %s answered %d for %s", hub, response.status_code, topic)
        return False
