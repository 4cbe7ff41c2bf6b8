"""The configuration as the rest of feedhub reads it: frozen, validated, resolved."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from feedhub.config.values import expand_rsshub
from feedhub.filters import NO_RULES, EntryFilter, RuleSet
from feedhub.policy import Schedule
from feedhub.search import Query
from feedhub.selectors import FullText, ScrapeRules

DEFAULT_PATH = Path("feeds.yaml")


RESERVED_SLUGS = frozenset({"all", "q"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """Who the hub is and where readers reach it."""

    title: str
    #: Absolute http(s) URL ending in ``/``; ids and self links derive from it.
    base_url: str
    timezone: ZoneInfo
    data_dir: Path
    #: Base URL that ``rsshub:/route`` source URLs expand against.
    rsshub: str
    #: WebSub hubs to announce in feeds and to ping when a feed changes.
    websub_hubs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    """A group of sources republished as one feed."""

    slug: str
    #: The label every entry republished here is tagged with.
    title: str
    description: str
    #: ``include``/``exclude``/``rewrite`` rules for every entry republished here.
    rules: RuleSet = NO_RULES


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedSearch:
    """A search republished as a feed, ``/feeds/q/{name}.atom`` (``queries:``)."""

    name: str
    query: Query
    #: The feed's title and the label every entry republished in it is tagged with.
    title: str
    description: str
    #: The categories searched, all of them when empty.
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Storage:
    """Where the store is, and how nodes sharing it behave."""

    #: ``postgresql://…`` for a shared PostgreSQL, ``sqlite:///path``; ``None``: the SQLite
    #: file in the data directory.
    url: str | None = None
    #: How long a node may poll a source it claimed before another node may take it over.
    lease: timedelta = timedelta(minutes=5)
    #: Database connections one node keeps open, at most (PostgreSQL).
    pool_size: int = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One feed to poll, with its settings resolved against the defaults."""

    url: str
    category: str
    name: str | None
    #: How often it is polled (an interval, or intervals by time window).
    schedule: Schedule
    timezone: ZoneInfo
    encoding: str | None
    #: ``include``/``exclude``/``rewrite`` rules for this source's entries.
    rules: RuleSet = NO_RULES
    #: URLs tried in order when ``url`` fails or is empty (``urls:`` after the first).
    fallbacks: tuple[str, ...] = ()
    #: Set for an HTML page with no feed: how to read entries off it.
    scrape: ScrapeRules | None = None
    #: Set when each new entry's link is fetched for the whole article.
    full_text: FullText | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """Where new entries are POSTed (``notify.webhooks``)."""

    url: str
    #: The categories (slugs) whose new entries are sent; ``None``: all.
    categories: frozenset[str] | None = None
    #: Signs each body: ``X-Feedhub-Signature: sha256=<HMAC-SHA256 hex>``.
    secret: str | None = None

    def wants(self, slug: str) -> bool:
        """Whether new entries of category ``slug`` go to this webhook."""
        return self.categories is None or slug in self.categories


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSettings:
    """How much fetching one source may cost, and how many fetches run at once."""

    #: Longest a whole fetch may take, however slowly the server sends.
    timeout: timedelta = timedelta(seconds=60)
    #: Largest body accepted, counted before and after decompression.
    max_body_bytes: int = 16 * 1024 * 1024
    max_redirects: int = 5
    #: Fetches at once to one host, and in all.
    per_host: int = 2
    concurrency: int = 10
    #: Fetch entry links (full text) whose host has a private, loopback or link-local
    #: address: off, so a feed cannot make feedhub reach into the network it runs in.
    private_links: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A validated ``feeds.yaml``."""

    path: Path
    site: Site
    listen_host: str
    listen_port: int
    log_level: str
    max_entries: int
    #: Delete entries published longer ago than this (``None``: keep everything).
    retention_days: int | None
    #: Keep only this many newest entries per source (``None``: keep everything).
    retention_entries: int | None
    #: A source went quiet after this many times its usual gap between entries…
    quiet_factor: int = 10
    #: …and at least this long without a new entry.
    quiet_after: timedelta = timedelta(days=2)
    categories: Mapping[str, Category]
    sources: tuple[Source, ...]
    queries: Mapping[str, SavedSearch] = field(default_factory=dict)
    storage: Storage = Storage()
    fetch: FetchSettings = FetchSettings()
    webhooks: tuple[Webhook, ...] = ()

    @property
    def store_path(self) -> Path:
        """The SQLite file inside the data directory."""
        return self.site.data_dir / "feedhub.sqlite3"

    @property
    def store_url(self) -> str:
        """The store to open: ``$FEEDHUB_DATABASE_URL``, else ``storage.url``, else
        the SQLite file in the data directory."""
        return (os.environ.get("FEEDHUB_DATABASE_URL") or self.storage.url
                or f"sqlite://{self.store_path}")

    @property
    def public_dir(self) -> Path:
        """Where ``build`` and ``poll`` publish static files by default."""
        return self.site.data_dir / "public"

    def source(self, url: str) -> Source | None:
        """The configured source with this URL, if any."""
        return next((s for s in self.sources if s.url == url), None)

    def expand(self, url: str) -> str:
        """``rsshub:/route`` as a URL on ``site.rsshub``; any other URL as it is."""
        return expand_rsshub(url, self.site.rsshub)

    def find_sources(self, key: str) -> tuple[Source, ...]:
        """The sources an operator means by ``key``: the one with that URL (or fallback URL),
        else every source with that name."""
        url = self.expand(key.strip())
        found = self.source(url) or next((s for s in self.sources if url in s.fallbacks), None)
        if found is not None:
            return (found,)
        return tuple(s for s in self.sources if s.name == key)

    def sources_in(self, slug: str) -> tuple[Source, ...]:
        """The sources of one category (every source for ``all``)."""
        if slug == "all":
            return self.sources
        return tuple(s for s in self.sources if s.category == slug)

    def searched_sources(self, search: SavedSearch) -> tuple[Source, ...]:
        """The sources a saved search looks through."""
        if not search.categories:
            return self.sources
        return tuple(s for s in self.sources if s.category in search.categories)

    def entry_filter(self) -> EntryFilter:
        """The filters of every source, with its category's (compiled at load)."""
        return EntryFilter({s.url: (s.rules, self.categories[s.category].rules)
                            for s in self.sources if s.category in self.categories})
