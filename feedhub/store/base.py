"""The store interface: the only state shared between stages.

Implementations: :mod:`feedhub.store.sqlite` (embedded default) and
:mod:`feedhub.store.postgres` (shared by several nodes). Any method can raise
:class:`~feedhub.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from feedhub.model import Document, Entry, SourceState, StoredEntry
from feedhub.search import Query

#: Polls remembered per source for ``feedhub status URL``.
POLL_HISTORY = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveResult:
    """What applying one poll result changed."""

    new: int
    updated: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PollRecord:
    """One past poll of a source, as ``feedhub status URL`` shows it."""

    source_url: str
    #: When the poll started (UTC).
    at: datetime
    #: A :class:`~feedhub.model.PollStatus` value.
    status: str
    http_status: int | None
    new: int
    updated: int
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceEvent:
    """A change of a source's state, as the health feed (``/feeds/_health.atom``) reports it."""

    source_url: str
    #: When the poll that changed it started (UTC).
    at: datetime
    #: ``failing``, ``recovered``, ``moved``, ``gone``, ``quiet`` or ``resumed``.
    kind: str
    #: The failure's reason, or where the source moved.
    detail: str | None = None
    #: Storage order, set by the store (0 until stored).
    id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """A webhook delivery waiting in the store."""

    id: int
    webhook_url: str
    #: The JSON document to POST.
    body: bytes
    #: Deliveries tried before this one.
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedNotification:
    """A webhook delivery with everything needed to copy it to another store."""

    webhook_url: str
    body: bytes
    #: When the poll that queued it ran.
    created: datetime
    attempts: int
    #: When it is due; ``None``: given up.
    next_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryCounts:
    """One webhook's deliveries not accepted yet, as ``feedhub status`` shows them."""

    pending: int
    #: Deliveries given up after every retry failed.
    given_up: int
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryRecord:
    """A stored entry with everything needed to copy it to another store."""

    entry: StoredEntry
    content_hash: str


class Store(Protocol):
    """Persistent state of a feedhub instance.

    Lifecycle: ``close``, ``ping``.
    Sources: ``source_state``, ``source_states``, ``ensure_sources``, ``due_sources``,
    ``reschedule``.
    Poll results: ``save_poll`` applies one source's result atomically; ``poll_history``,
    ``source_events``.
    Entries: ``latest_entries``, ``archive_ids``, ``entries_by_id``, ``entry_counts``,
    ``prune``, ``forget_sources``.
    Documents: ``put_documents``, ``document``, ``document_paths``, ``document_etags``,
    ``documents``.
    Webhooks: ``queue_notifications``, ``claim_notifications``, ``settle_notification``,
    ``notification_counts``.
    Many nodes: ``claim_sources``, ``release_sources``, ``lock``.
    Copying between stores: ``table_counts``, ``export_entries``, ``import_entries``,
    ``import_sources``, ``export_polls``, ``import_polls``, ``export_notifications``,
    ``import_notifications``, ``export_events``,
    ``import_events``.
    """

    async def close(self) -> None:
        """Release the store; further calls fail."""

    async def ping(self) -> None:
        """Check that the store answers and is writable.

        Raises:
            StoreError: it does not.
        """

    async def source_state(self, url: str) -> SourceState | None:
        """What is remembered about one source, or ``None`` if never polled."""

    async def source_states(self) -> list[SourceState]:
        """Every source ever polled, ordered by URL."""

    async def ensure_sources(self, first_polls: Mapping[str, datetime]) -> int:
        """Start remembering sources never seen before, due at the given instants.

        Known sources are left as they are. Returns how many were added.
        """

    async def due_sources(self, urls: Iterable[str], now: datetime, limit: int) -> list[str]:
        """Up to ``limit`` of ``urls`` due at ``now``, the longest overdue first."""

    async def reschedule(self, url: str, when: datetime) -> None:
        """Move a source's next poll to ``when`` (an interval changed)."""

    async def save_poll(self, state: SourceState, entries: Sequence[Entry],
                        seen_at: datetime, event: SourceEvent | None = None, *,
                        node: str | None = None) -> SaveResult:
        """Store a source's new state and its entries in one transaction.

        ``event``: the change of the source's state this poll made, recorded with it.
        ``node``: the node that polled it under a lease (:meth:`claim_sources`).

        Entries are upserted by ``(source_url, key)``: new ones are inserted with
        ``first_seen = seen_at`` and ``updated = published``; changed ones (by
        ``content_hash``) are updated in
        place with ``updated = seen_at``; unchanged ones are not written. A
        ``published`` later than the stored ``first_seen`` is clamped to it.

        When ``state`` records a poll (``last_poll_at`` and ``last_status`` set), the
        poll is added to the source's history in the same transaction; only the
        last :data:`POLL_HISTORY` polls of each source are kept. ``node``'s lease on
        the source ends; a lease another node holds stays (``node``'s ran out during a
        slow poll and the source was claimed again), as does any lease when ``node``
        is ``None`` (a poll outside any daemon).
        """

    async def entry_hashes(self, source_url: str, keys: Sequence[str]) -> dict[str, str]:
        """The stored ``content_hash`` of each of these keys the source has (others absent)."""

    async def poll_history(self, url: str, limit: int) -> list[PollRecord]:
        """The last ``limit`` polls of one source (at most :data:`POLL_HISTORY`), newest first."""

    async def source_events(self, limit: int) -> list[SourceEvent]:
        """The last ``limit`` source state changes (:meth:`save_poll`), newest first."""

    async def last_events(self, kinds: Sequence[str]) -> dict[str, SourceEvent]:
        """Each source's latest event of one of these kinds."""

    async def record_events(self, events: Sequence[SourceEvent]) -> None:
        """Add source state changes found outside a poll (a source went quiet)."""

    async def entry_times(self, per_source: int) -> dict[str, list[tuple[datetime, datetime]]]:
        """Each source's newest ``per_source`` entries as (published, first seen), newest
        first."""

    async def latest_entries(self, source_urls: Iterable[str], limit: int,
                             offset: int = 0) -> list[StoredEntry]:
        """The newest entries of these sources, one per canonical link, newest first."""

    async def archive_ids(self, source_urls: Iterable[str]) -> Sequence[int]:
        """The ids of these sources' entries in storage order (oldest first), one per
        canonical link: how many there are, and what each archive page holds.

        A slice of this order never changes once full: the basis of archived feeds. Read
        it once per render: every page is then a slice of the same list.
        """

    async def entries_by_id(self, ids: Sequence[int]) -> list[StoredEntry]:
        """The entries with these ids that are still stored, in storage order."""

    async def search(self, query: Query, source_urls: Iterable[str], *,
                     since: datetime | None = None, limit: int = 50) -> list[StoredEntry]:
        """Entries of these sources matching ``query`` (:meth:`Query.matches` semantics:
        substrings of the title or content text), published at or after ``since``, newest
        first, one per canonical link."""

    async def entry_counts(self) -> dict[str, int]:
        """Stored entries per source URL."""

    async def new_entries_since(self, since: datetime) -> dict[str, int]:
        """Entries first seen at or after ``since``, per source URL (absent: none)."""

    async def prune(self, *, older_than: datetime | None, keep_per_source: int | None) -> int:
        """Delete entries published before ``older_than``, and all but the newest
        ``keep_per_source`` of each source. Returns how many were deleted.
        """

    async def forget_sources(self, keep: Iterable[str]) -> int:
        """Delete every source not in ``keep``, with its entries, polls and events.

        Returns how many entries were deleted.
        """

    async def put_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Store rendered documents; return those whose bytes changed (as stored).

        Bytes are compared by ETag, in the database: no stored body is read.
        """

    async def document(self, path: str) -> Document | None:
        """One rendered document by URL path."""

    async def document_paths(self, prefix: str = "") -> list[str]:
        """The URL paths of the stored documents that start with ``prefix``, sorted.

        Reads no body: for knowing what exists, and for going through every
        document one at a time (:meth:`document`) without holding them all.
        """

    async def document_etags(self, prefix: str = "") -> dict[str, str]:
        """Path → ETag of the stored documents whose path starts with ``prefix``, without
        reading any body."""

    async def documents(self) -> list[Document]:
        """Every rendered document."""

    # --- webhook deliveries -----------------------------------------------------------

    async def queue_notifications(self, items: Sequence[tuple[str, bytes]],
                                  at: datetime) -> None:
        """Keep deliveries (webhook URL, JSON body) until a receiver accepts them; due at
        ``at``."""

    async def claim_notifications(self, now: datetime, limit: int,
                                  hold: timedelta) -> list[Notification]:
        """Up to ``limit`` deliveries due at ``now``, oldest first, held for ``hold``.

        A held delivery is not due again until ``now + hold``, so a delivery in flight is
        never claimed twice, and one whose sender died is retried once the hold ends.
        """

    async def settle_notification(self, id: int, *, error: str | None,
                                  retry_at: datetime | None) -> None:
        """Record an attempt: ``error`` ``None`` means accepted (the delivery is dropped);
        else it is retried at ``retry_at``, or kept as given up when that is ``None``."""

    async def notification_counts(self) -> dict[str, DeliveryCounts]:
        """Deliveries not accepted yet, per webhook URL (absent: none)."""

    # --- many nodes -------------------------------------------------------------------

    async def claim_sources(self, urls: Iterable[str], now: datetime, limit: int, *,
                            node: str, lease: timedelta) -> list[str]:
        """Claim up to ``limit`` of ``urls`` that are due at ``now`` for ``node``.

        A source is claimable when it is due and nobody holds a lease on it, or the
        lease expired (its node died). Claimed sources are leased to ``node`` until
        ``now + lease``; no other node can claim them meanwhile. Saving the poll
        (:meth:`save_poll` with ``node``) or :meth:`release_sources` ends the lease. The longest
        overdue come first.
        """

    async def release_sources(self, urls: Iterable[str], node: str) -> None:
        """End ``node``'s leases on ``urls`` without saving a poll (it was skipped or cancelled)."""

    async def lease_owners(self) -> set[str]:
        """The nodes holding a lease on some source right now (expired or not)."""

    async def release_node(self, node: str) -> None:
        """End every lease ``node`` holds (it is known to be dead)."""

    def lock(self, name: str, *, wait: bool = False,
             timeout: float | None = None) -> AbstractAsyncContextManager[bool]:
        """Hold the store-wide lock ``name`` for a singleton job (pruning, republishing).

        Yields whether it is held: with ``wait`` it waits for the lock (at most
        ``timeout`` seconds, when given) and yields ``True`` (``False`` if it timed out);
        without, ``False`` when another node (or task) holds it. The lock is released
        on exit, and by the database when the holder dies.
        """

    # --- copying between stores ------------------------------------------------------

    async def table_counts(self) -> dict[str, int]:
        """Rows per table: ``sources``, ``entries``, ``documents``, ``polls``, ``source_events``."""

    async def export_entries(self, after: int, limit: int) -> tuple[list[EntryRecord], int]:
        """Up to ``limit`` entries in storage order after the cursor ``after`` (0: from the
        start), and the cursor to pass next (unchanged when there are no more)."""

    async def import_entries(self, records: Sequence[EntryRecord]) -> None:
        """Upsert entries exactly as given (dates, hash), appended in storage order."""

    async def import_sources(self, states: Sequence[SourceState]) -> None:
        """Upsert source states exactly as given, without recording polls."""

    async def export_polls(self, after: int, limit: int) -> tuple[list[PollRecord], int]:
        """Up to ``limit`` poll records in storage order after the cursor ``after``."""

    async def import_polls(self, records: Sequence[PollRecord]) -> None:
        """Add poll records not stored yet (same source, instant and status)."""

    async def export_notifications(self, after: int,
                                   limit: int) -> tuple[list[QueuedNotification], int]:
        """Up to ``limit`` webhook deliveries in storage order after the cursor ``after``."""

    async def import_notifications(self, items: Sequence[QueuedNotification]) -> None:
        """Add deliveries not queued yet (same webhook, poll instant and body), in order."""

    async def export_events(self, after: int, limit: int) -> tuple[list[SourceEvent], int]:
        """Up to ``limit`` source events in storage order after the cursor ``after``."""

    async def import_events(self, events: Sequence[SourceEvent]) -> None:
        """Add source events not stored yet (same source, instant, kind and detail), in order.

        Their ``id`` is ignored: the target numbers them in its own storage order.
        """
