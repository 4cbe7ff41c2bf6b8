"""POST new entries to webhooks (``notify.webhooks``), from a queue kept in the store.

A poll that stores new entries in a category queues one JSON document per
webhook that wants the category (:func:`deliveries`); :class:`WebhookSender`
sends what is due in the background, retrying with exponential backoff, so a
down receiver never slows polling and a restart loses nothing. The body::

    {"category": "zhengquanshibaowang", "label": "证券时报网新闻",
     "feed": "https://hub.example.org/feeds/zhengquanshibaowang.atom",
     "entries": [{"id": ..., "title": ..., "link": ..., "published": "2022-05-06T07:47:00Z",
                  "source": "https://example.org/news.xml"}]}

With a ``secret``, ``X-Feedhub-Signature: sha256=<hex>`` carries the
HMAC-SHA256 of the exact body bytes under it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import httpx

from feedhub import metrics
from feedhub.config import Category, Config, Source, Webhook
from feedhub.errors import StoreError
from feedhub.filters import EntryFilter
from feedhub.model import Entry, StoredEntry, utcnow
from feedhub.store import Store
from feedhub.store.base import Notification
from feedhub.urls import derived_id, is_absolute_iri

log = logging.getLogger("feedhub.webhooks")

SIGNATURE_HEADER = "X-Feedhub-Signature"
#: The wait before the first retry; it doubles with each failed attempt…
FIRST_RETRY = timedelta(seconds=1)
#: …up to this,
LONGEST_RETRY = timedelta(hours=1)
#: and a delivery is given up after this many attempts (about six hours in all).
ATTEMPTS = 16
#: How long a claimed delivery is held for its sender before it is due again
#: (the sender died): longer than a request may take.
HOLD = timedelta(minutes=2)
#: How often the sender looks for due deliveries when nothing woke it.
IDLE_SECONDS = 1.0
#: Deliveries sent at once, at most.
IN_FLIGHT = 8


def _entry_id(entry: StoredEntry) -> str:
    """The entry's id as the Atom feeds give it."""
    if entry.guid:
        return entry.guid if is_absolute_iri(entry.guid) else derived_id(entry.source_url,
                                                                          entry.key)
    return entry.link or derived_id(entry.source_url, entry.key)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payload(category: Category, feed_url: str, entries: Sequence[StoredEntry]) -> bytes:
    """The JSON document announcing ``entries``, new in ``category``."""
    return json.dumps({
        "category": category.slug, "label": category.title, "feed": feed_url,
        "entries": [{"id": _entry_id(e), "title": e.title, "link": e.link,
                     "published": _stamp(e.published), "source": e.source_url}
                    for e in entries],
    }, ensure_ascii=False).encode()


def deliveries(config: Config, source: Source, entries: Sequence[Entry],
               at: datetime) -> list[tuple[str, bytes]]:
    """What to queue for ``entries``, new from ``source`` in the poll at ``at``: (webhook
    URL, body). Entries the filters drop are left out, titles rewritten as republished."""
    hooks = [w for w in config.webhooks if w.wants(source.category)]
    category = config.categories.get(source.category)
    if not hooks or category is None:
        return []
    rules = EntryFilter({source.url: (source.rules, category.rules)})
    kept = rules.keep(e.stored(at) for e in entries)
    if not kept:
        return []
    body = payload(category, f"{config.site.base_url}feeds/{category.slug}.atom", kept)
    return [(hook.url, body) for hook in hooks]


def signature(secret: str, body: bytes) -> str:
    """The ``X-Feedhub-Signature`` value of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_at(now: datetime, attempts: int) -> datetime | None:
    """When to try again after ``attempts`` failed attempts; ``None``: give up."""
    if attempts >= ATTEMPTS:
        return None
    return now + min(FIRST_RETRY * (1 << (attempts - 1)), LONGEST_RETRY)


async def deliver_now(store: Store, webhooks: Sequence[Webhook], agent: str,
                      timeout: float = 10.0) -> None:
    """Send the deliveries due now, once each, as User-Agent ``agent``, waiting at most
    ``timeout`` seconds (``feedhub poll``); what fails stays queued for the daemon."""
    if not webhooks:
        return
    sender = WebhookSender(store, webhooks, agent, timeout=timeout)
    try:
        await asyncio.wait_for(sender.send_due(), timeout)
    except TimeoutError:
        log.warning("webhooks: deliveries still pending after %.0fs, left to the daemon", timeout)
    finally:
        await sender.aclose()


class WebhookSender:
    """Sends the store's due deliveries: :meth:`run` in the background, or :meth:`send_due`."""

    def __init__(self, store: Store, webhooks: Sequence[Webhook], agent: str, *,
                 timeout: float = 10.0) -> None:
        self.store = store
        #: Replaced on reload (secrets are looked up by URL at send time).
        self.webhooks = tuple(webhooks)
        self._client = httpx.AsyncClient(timeout=timeout,
                                         headers={"User-Agent": agent})
        self._wake = asyncio.Event()
        self._stopping = False

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def poke(self) -> None:
        """Look for due deliveries now (a poll queued some)."""
        self._wake.set()

    async def stop(self, task: asyncio.Task[None], grace: float) -> None:
        """End :meth:`run` (its ``task``) once the deliveries in flight are settled, waiting
        at most ``grace`` seconds; a delivery cut short is retried after :data:`HOLD`."""
        self._stopping = True
        self._wake.set()
        _done, pending = await asyncio.wait([task], timeout=grace)
        for late in pending:
            late.cancel()
            with suppress(asyncio.CancelledError):
                await late

    async def run(self) -> None:
        """Send due deliveries as they come, until :meth:`stop`; store failures are logged."""
        while not self._stopping:
            try:
                await self.send_due()
                await self.update_gauges()
            except StoreError as e:  # the sender outlives a store hiccup: retried next round
                log.error("webhooks: %s", e)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
            self._wake.clear()

    async def send_due(self) -> int:
        """Send the deliveries due when called, once each; how many were accepted (one
        that fails waits for its retry time, in a later call)."""
        accepted, started = 0, utcnow()
        while not self._stopping:
            # Due as of the start, so a delivery that just failed is not taken again; held
            # from now, however long the earlier batches took.
            hold = HOLD + (utcnow() - started)
            batch = await self.store.claim_notifications(started, IN_FLIGHT, hold)
            if not batch:
                break
            accepted += sum(await asyncio.gather(*(self._send(n) for n in batch)))
        return accepted

    async def update_gauges(self) -> None:
        """Set the pending/given-up gauges from the store."""
        counts = (await self.store.notification_counts()).values()
        metrics.WEBHOOK_PENDING.labels("pending").set(sum(c.pending for c in counts))
        metrics.WEBHOOK_PENDING.labels("given_up").set(sum(c.given_up for c in counts))

    async def _send(self, delivery: Notification) -> bool:
        hook = next((w for w in self.webhooks if w.url == delivery.webhook_url), None)
        if hook is None:  # removed from feeds.yaml since: its receiver is no longer wanted
            await self.store.settle_notification(delivery.id, error=None, retry_at=None)
            log.info("webhook: dropped a delivery to %s (no longer configured)",
                     delivery.webhook_url)
            return False
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if hook.secret:
            headers[SIGNATURE_HEADER] = signature(hook.secret, delivery.body)
        error = None
        try:
            response = await self._client.post(delivery.webhook_url, content=delivery.body,
                                               headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        attempts = delivery.attempts + 1
        again = retry_at(utcnow(), attempts) if error else None
        await self.store.settle_notification(delivery.id, error=error, retry_at=again)
        if error is None:
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            log.info("webhook: delivered to %s", delivery.webhook_url)
            return True
        if again is None:
            metrics.WEBHOOK_DELIVERIES.labels("given_up").inc()
            log.error("webhook: giving up on %s after %d attempts: %s", delivery.webhook_url,
                      attempts, error)
        else:
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            log.warning("webhook: %s failed (%s), retrying at %s", delivery.webhook_url, error,
                        again.strftime("%H:%M:%S"))
        return False
