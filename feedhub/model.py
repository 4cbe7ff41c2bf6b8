"""Frozen value objects that travel between stages.

Each type is named for the boundary it crosses: ``FetchResult`` (fetch →
parse), ``ParsedFeed``/``ParsedEntry`` (parse → normalize), ``Entry``
(normalize → store), ``StoredEntry`` (store → render), ``Document`` (render →
publish/serve), ``SourceState`` (store ↔ pipeline) and ``PollOutcome``
(pipeline → callers). Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

_EMPTY: Mapping[str, str] = {}


def _check_utc(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"{name} must be a UTC datetime, got {value!r}")


class FetchStatus(StrEnum):
    """How one HTTP fetch ended."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    GONE = "gone"
    RATE_LIMITED = "rate_limited"
    HTTP_ERROR = "http_error"
    NETWORK_ERROR = "network_error"
    TOO_LARGE = "too_large"
    NOT_A_FEED = "not_a_feed"


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """What fetching one source produced; failures are values too."""

    status: FetchStatus
    #: The URL the body finally came from (after redirects).
    url: str
    http_status: int | None = None
    body: bytes = b""
    #: Response headers, names lower-cased.
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    etag: str | None = None
    last_modified: str | None = None
    #: Target of a permanent redirect (301/308) the source should be updated to.
    moved_to: str | None = None
    #: Do not ask again before this instant (429/503 ``Retry-After``).
    retry_after: datetime | None = None
    #: Freshness hint from ``Cache-Control: max-age`` / ``Expires``, in seconds.
    max_age: int | None = None
    error: str | None = None
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        _check_utc("retry_after", self.retry_after)


@dataclass(frozen=True, slots=True, kw_only=True)
class Enclosure:
    """A media file attached to an entry."""

    url: str
    type: str = ""
    length: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedEntry:
    """One entry as the source published it, text decoded, dates in UTC, HTML raw."""

    id: str | None
    link: str | None
    title: str
    content_html: str
    published: datetime | None
    updated: datetime | None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    #: What relative URLs in ``content_html`` resolve against (its ``xml:base``);
    #: ``None``: the feed's own URL.
    content_base: str | None = None

    def __post_init__(self) -> None:
        _check_utc("published", self.published)
        _check_utc("updated", self.updated)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFeed:
    """A whole source document after parsing."""

    title: str
    link: str | None
    #: The format feedparser reported (``rss20``, ``atom10``, ``json11`` …).
    version: str
    encoding: str
    entries: tuple[ParsedEntry, ...]
    #: RSS ``<ttl>`` in minutes, when the source gives one.
    ttl_minutes: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NormalizedFeed:
    """A fetched document parsed and normalized: what a poll stores."""

    title: str
    link: str | None
    ttl_minutes: int | None
    entries: list[Entry]


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A normalized entry, ready to be stored under ``(source_url, key)``."""

    source_url: str
    #: Identity within the source: id/guid, else link, else a content hash.
    key: str
    guid: str | None
    link: str | None
    #: ``link`` without tracking parameters and fragment, for cross-source dedupe.
    canonical_link: str | None
    title: str
    content_html: str
    #: The source's date, clamped to ``seen_at`` when in the future.
    published: datetime
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    #: Hash of everything above that a reader sees; a change means "updated".
    content_hash: str

    def __post_init__(self) -> None:
        _check_utc("published", self.published)

    def stored(self, at: datetime) -> StoredEntry:
        """The entry as the store gives it back once first saved at ``at``."""
        return StoredEntry(source_url=self.source_url, key=self.key, guid=self.guid,
                           link=self.link, canonical_link=self.canonical_link, title=self.title,
                           content_html=self.content_html, published=self.published,
                           first_seen=at, updated=self.published, authors=self.authors,
                           categories=self.categories, enclosures=self.enclosures)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEntry:
    """An entry read back from the store."""

    source_url: str
    key: str
    guid: str | None
    link: str | None
    canonical_link: str | None
    title: str
    content_html: str
    published: datetime
    #: When feedhub first stored it; never changes.
    first_seen: datetime
    #: When its title or content last changed (``published`` if never).
    updated: datetime
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]

    def __post_init__(self) -> None:
        for name in ("published", "first_seen", "updated"):
            _check_utc(name, getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceState:
    """What the store remembers about one source between polls."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    #: SHA-256 of the last body parsed, to skip unchanged bodies without validators.
    body_hash: str | None = None
    feed_title: str | None = None
    feed_link: str | None = None
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: str | None = None
    http_status: int | None = None
    error: str | None = None
    failures: int = 0
    next_poll_at: datetime | None = None
    retry_after: datetime | None = None
    moved_to: str | None = None
    #: The fallback URL the last poll was answered from (``urls:``); ``None``: the first URL.
    active_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("last_poll_at", "last_success_at", "next_poll_at", "retry_after"):
            _check_utc(name, getattr(self, name))


class PollStatus(StrEnum):
    """How polling one source ended, as shown to the operator."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    UNCHANGED = "unchanged"
    GONE = "gone"
    RATE_LIMITED = "rate_limited"
    SKIPPED = "skipped"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class PollOutcome:
    """The result of polling one source: a value, never an exception."""

    source_url: str
    status: PollStatus
    http_status: int | None = None
    new: int = 0
    updated: int = 0
    error: str | None = None
    moved_to: str | None = None
    next_poll_at: datetime | None = None
    #: Seconds the fetch took, and body bytes received (0 when nothing was fetched).
    fetch_seconds: float = 0.0
    fetched_bytes: int = 0
    #: The change of the source's state this poll made (``failing``, ``recovered``,
    #: ``moved``, ``gone``), for the health feed; ``None``: none.
    state_change: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the source's republished entries may differ now."""
        return self.new > 0 or self.updated > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One rendered output, addressed by its URL path (without leading slash).

    Kept gzip-compressed, from the render to the client: the compressed bytes are
    what the store holds and what a client that accepts gzip is sent; ``body``
    (the exact bytes of ``public/`` and of an uncompressed answer) is derived.
    """

    path: str
    #: The body as :func:`compress` makes it.
    gzipped: bytes
    content_type: str
    #: Strong ETag of ``body`` (not of the compressed bytes), quoted.
    etag: str
    modified: datetime

    def __post_init__(self) -> None:
        _check_utc("modified", self.modified)

    @classmethod
    def of(cls, *, path: str, body: bytes, content_type: str, etag: str,
           modified: datetime) -> Document:
        """The document of an uncompressed ``body``."""
        return cls(path=path, gzipped=compress(body), content_type=content_type, etag=etag,
                   modified=modified)

    @property
    def body(self) -> bytes:
        """The document's bytes, uncompressed."""
        return gzip.decompress(self.gzipped)


#: zlib level of stored documents. On the benchmark's Chinese news feeds level 1
#: makes them 4.5 times smaller at ~190 MB/s, level 6 6.5 times at ~50 MB/s: at 6,
#: compressing a cold poll's 400 MB of archive pages would cost more than storing them.
GZIP_LEVEL = 1


def compress(body: bytes) -> bytes:
    """``body`` gzip-compressed, the same bytes on every node (no name, no time)."""
    return gzip.compress(body, GZIP_LEVEL, mtime=0)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the one clock seam)."""
    return datetime.now(UTC)


def packed(render: Callable[[], bytes], known: str | None = None) -> tuple[str, bytes | None]:
    """Run ``render``: the ETag of the bytes it made and the bytes compressed, or ``None``
    when the ETag is ``known`` (the store has these bytes: nothing to compress). Run in
    a render worker, so the main process never holds an uncompressed document."""
    body = render()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return etag, None if etag == known else compress(body)
