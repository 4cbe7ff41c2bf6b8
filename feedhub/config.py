"""Load and validate ``feeds.yaml`` into a frozen :class:`Config`.

Validation is strict: unknown keys, bad URLs, durations, time zones or
encodings, undefined categories and duplicate sources are all reported
together, each with the file, line and field and a hint on how to fix it.
This module owns the file format; nothing else reads YAML.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from feedhub.errors import ConfigError, ConfigIssue
from feedhub.filters import NO_RULES, EntryFilter, Rewrite, RuleSet, compile_pattern, parse_rule
from feedhub.policy import DAY_NAMES, Schedule, Window
from feedhub.search import Query, parse_query

DEFAULT_PATH = Path("feeds.yaml")
RESERVED_SLUGS = frozenset({"all", "q"})

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_DURATION = 365 * 86400
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?B)\s*$", re.I)
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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


# --- the file schema (pydantic does the field checks) -------------------------------


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"invalid duration {value!r}: use a number and a unit s, m, h or d, such as 30s, 15m, 2h"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > _MAX_DURATION:
        raise ValueError(f"duration {value!r} is too long: use at most 365d")
    if seconds < 1:
        raise ValueError(f"duration {value!r} is too short: use at least 1s")
    return timedelta(seconds=seconds)


def _http_url(value: Any) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid URL {value!r}: write an absolute http:// or https:// URL")
    return text


def _source_url(value: Any) -> str:
    text = str(value).strip()
    if text.startswith("rsshub:"):
        return text
    try:
        return _http_url(text)
    except ValueError:
        raise ValueError(f"invalid URL {value!r}: write an absolute http:// or https:// URL, or "
                         "rsshub:/route for the RSSHub instance in site.rsshub") from None


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai or UTC"
        ) from None
    return str(value)


def _encoding(value: Any) -> str:
    try:
        return codecs.lookup(str(value)).name
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}: use a name such as gb18030, big5 or utf-8") from None


def _listen(value: Any) -> str:
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r}: write HOST:PORT, such as 127.0.0.1:8080")
    return str(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
SourceUrl = Annotated[str, BeforeValidator(_source_url)]
TimeZoneName = Annotated[str, BeforeValidator(_timezone)]
EncodingName = Annotated[str, BeforeValidator(_encoding)]
Listen = Annotated[str, BeforeValidator(_listen)]


def _rule(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"invalid rule {value!r}: write a keyword, re:PATTERN, or "
                         "title:/author:/link: before either")
    parse_rule(str(value))
    return str(value)


def _rewrite(value: Any) -> tuple[str, str]:
    if not isinstance(value, dict) or set(value) != {"title", "to"}:
        raise ValueError("invalid rewrite: write {title: PATTERN, to: REPLACEMENT}, "
                         "such as {title: '^【快讯】', to: ''}")
    compile_pattern(str(value["title"]))
    to = "" if value["to"] is None else str(value["to"])
    return str(value["title"]), to


FilterRule = Annotated[str, BeforeValidator(_rule)]
RewriteRule = Annotated[tuple[str, str], BeforeValidator(_rewrite)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _SiteModel(_Strict):
    title: str = Field(min_length=1)
    base_url: HttpUrl
    timezone: TimeZoneName = "Asia/Shanghai"
    data_dir: str = "data"
    rsshub: HttpUrl = "https://rsshub.app/"
    websub_hubs: list[HttpUrl] = Field(default_factory=list)


class _ServerModel(_Strict):
    listen: Listen = "127.0.0.1:8080"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ValueError(f"invalid size {value!r}: write bytes, or a number with KB, MB or GB "
                             "such as 16MB")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    if size < 1024:
        raise ValueError(f"size {value!r} is too small: allow at least 1KB")
    return size


Size = Annotated[int, BeforeValidator(_size)]


class _FetchModel(_Strict):
    timeout: Duration = timedelta(seconds=60)
    max_body: Size = 16 * 1024 * 1024
    max_redirects: int = Field(default=5, ge=0, le=20)
    per_host: int = Field(default=2, ge=1, le=64)
    concurrency: int = Field(default=10, ge=1, le=256)


class _RetentionModel(_Strict):
    days: int | None = Field(default=None, ge=1)
    entries_per_source: int | None = Field(default=None, ge=1)


def _store_url(value: Any) -> str:
    text = str(value).strip()
    scheme = urlsplit(text).scheme
    if scheme not in ("postgresql", "postgres", "sqlite"):
        raise ValueError(f"invalid store URL {value!r}: write postgresql://user@host/dbname "
                         "(or sqlite:///path/to/feedhub.sqlite3)")
    return text


StoreUrl = Annotated[str, BeforeValidator(_store_url)]


class _StorageModel(_Strict):
    url: StoreUrl | None = None
    lease: Duration = timedelta(minutes=5)
    # One connection is held by a running singleton job while others serve.
    pool_size: int = Field(default=10, ge=2, le=200)


def _days(value: Any) -> frozenset[int]:
    text = ",".join(value) if isinstance(value, list) else str(value)
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if part == "daily":
            days.update(range(7))
        elif first in DAY_NAMES and (not last or last in DAY_NAMES):
            a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
        else:
            raise ValueError(f"invalid days {value!r}: write mon-fri, sat,sun or daily")
    return frozenset(days)


def _clock(text: str) -> time:
    hours, sep, minutes = text.strip().partition(":")
    if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 \
            and int(hours) < 24 and int(minutes) < 60:
        return time(int(hours), int(minutes))
    raise ValueError(text)


def _between(value: Any) -> tuple[time, time]:
    start, sep, end = str(value).partition("-")
    try:
        if not sep:
            raise ValueError(value)
        span = _clock(start), _clock(end)
    except ValueError:
        raise ValueError(f"invalid time range {value!r}: write HH:MM-HH:MM in the "
                         "schedule's time zone, such as 09:15-15:00") from None
    if span[0] == span[1]:
        raise ValueError(f"empty time range {value!r}: the start and end must differ")
    return span


Days = Annotated[frozenset[int], BeforeValidator(_days)]
Between = Annotated[tuple[time, time], BeforeValidator(_between)]


class _WindowModel(_Strict):
    days: Days = frozenset(range(7))
    between: Between
    every: Duration


class _ScheduleModel(_Strict):
    default: Duration
    timezone: TimeZoneName | None = None
    windows: list[_WindowModel] = Field(default_factory=list)

    def schedule(self, timezone: str) -> Schedule:
        return Schedule(default=self.default, timezone=ZoneInfo(self.timezone or timezone),
                        windows=tuple(Window(days=w.days, start=w.between[0],
                                             end=w.between[1], every=w.every)
                                      for w in self.windows))


def _interval_kind(value: Any) -> str:
    return "schedule" if isinstance(value, dict | _ScheduleModel) else "duration"


#: ``15m``, or ``{default: 30m, windows: [{days: mon-fri, between: 09:15-15:00, every: 2m}]}``.
Interval = Annotated[Annotated[timedelta, BeforeValidator(_duration), Tag("duration")]
                     | Annotated[_ScheduleModel, Tag("schedule")],
                     Discriminator(_interval_kind)]
_INTERVAL_TAGS = frozenset({"duration", "schedule"})


def _schedule(value: timedelta | _ScheduleModel, timezone: str) -> Schedule:
    if isinstance(value, timedelta):
        return Schedule(default=value, timezone=ZoneInfo(timezone))
    return value.schedule(timezone)


class _DefaultsModel(_Strict):
    interval: Interval = timedelta(minutes=15)
    max_entries: int = Field(default=50, ge=1, le=10000)
    quiet_factor: int = Field(default=10, ge=2, le=1000)
    quiet_after: Duration = timedelta(days=2)


class _RulesModel(_Strict):
    include: list[FilterRule] = Field(default_factory=list)
    exclude: list[FilterRule] = Field(default_factory=list)
    rewrite: list[RewriteRule] = Field(default_factory=list)

    def rules(self) -> RuleSet:
        return RuleSet(include=tuple(parse_rule(r) for r in self.include),
                       exclude=tuple(parse_rule(r) for r in self.exclude),
                       rewrite=tuple(Rewrite(compile_pattern(p), to) for p, to in self.rewrite))


class _CategoryModel(_RulesModel):
    title: str = Field(min_length=1)
    description: str = ""
    interval: Interval | None = None


def _query(value: Any) -> str:
    parse_query(str(value))
    return str(value).strip()


QueryText = Annotated[str, BeforeValidator(_query)]


class _QueryModel(_Strict):
    query: QueryText
    title: str | None = Field(default=None, min_length=1)
    description: str = ""
    categories: list[str] = Field(default_factory=list)


class _SourceModel(_RulesModel):
    url: SourceUrl | None = None
    urls: list[SourceUrl] | None = Field(default=None, min_length=1)
    category: str
    name: str | None = None
    interval: Interval | None = None
    timezone: TimeZoneName | None = None
    encoding: EncodingName | None = None


class _FileModel(_Strict):
    site: _SiteModel
    server: _ServerModel = _ServerModel()
    defaults: _DefaultsModel = _DefaultsModel()
    retention: _RetentionModel = _RetentionModel()
    fetch: _FetchModel = _FetchModel()
    categories: dict[str, _CategoryModel] = Field(min_length=1)
    sources: list[_SourceModel] = Field(default_factory=list)
    queries: dict[str, _QueryModel] = Field(default_factory=dict)
    storage: _StorageModel = _StorageModel()


_SECTIONS: dict[str, type[BaseModel]] = {
    "": _FileModel,
    "site": _SiteModel,
    "server": _ServerModel,
    "defaults": _DefaultsModel,
    "retention": _RetentionModel,
    "fetch": _FetchModel,
    "categories": _CategoryModel,
    "sources": _SourceModel,
    "storage": _StorageModel,
    "queries": _QueryModel,
    "interval": _ScheduleModel,
    "windows": _WindowModel,
}


# --- loading --------------------------------------------------------------------


def load_config(path: Path | str = DEFAULT_PATH) -> Config:
    """Read, validate and resolve a ``feeds.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid; every problem found
            is listed with file, line, field and a hint.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(name, None, "", "file not found",
                                       "pass --config PATH or set FEEDHUB_CONFIG")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([ConfigIssue(name, None, "", f"cannot read the file ({e})",
                                       "check its permissions and that it is UTF-8")]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate the YAML ``text`` of the file at ``path`` (see :func:`load_config`)."""
    name = str(path)
    data = _fast_data(text)
    if data is not None and not _cross_issues(data, None, name):
        try:
            return _resolve(_FileModel.model_validate(data), path)
        except ValidationError:
            pass  # reported below, each problem with its line
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError([ConfigIssue(name, line, "", f"not valid YAML: {e.problem}",
                                       "check indentation and quoting around this line")]) from None
    if not isinstance(tree, CommentedMap):
        raise ConfigError([ConfigIssue(name, 1, "", "the file must be a mapping with site:, "
                                       "categories: and sources:", "see the example feeds.yaml")])
    data = _plain(tree)
    cross = _cross_issues(data, tree, name)
    try:
        model = _FileModel.model_validate(data)
    except ValidationError as e:
        issues = [_issue_from_pydantic(name, tree, err) for err in e.errors()]
        seen = {i.field for i in issues}
        raise ConfigError(sorted(issues + [i for i in cross if i.field not in seen],
                                 key=lambda i: i.line or 0)) from None
    if cross:
        raise ConfigError(cross)
    return _resolve(model, path)


class _NotPlain(Exception):
    """A value the fast loader may read differently from the round-trip one."""


#: Merge keys (``<<``) order keys differently, and a ``%YAML 1.1`` directive changes
#: scalars (``yes``) only for the round-trip loader: such files take its path.
_ROUND_TRIP_ONLY = re.compile(r"<<|^%", re.M)


def _fast_data(text: str) -> Any:
    """The file's data from the C-accelerated safe loader, ``None`` when it is not sure.

    The round-trip parser (which knows lines) costs ~1 ms per source; reading a valid
    file needs no lines. ``None`` for anything this loader rejects or may read
    differently (tags, dates, merge keys): the round-trip path then decides.
    """
    if _ROUND_TRIP_ONLY.search(text):
        return None
    try:
        data = _safe_plain(YAML(typ="safe").load(text))
    except Exception:  # any problem: the round-trip path reports it, with its line
        return None
    return data if isinstance(data, dict) else None


def _safe_plain(node: Any) -> Any:
    """The safe loader's data if it holds only mappings with string keys, lists and
    plain scalars (else :class:`_NotPlain`): those both loaders read alike."""
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise _NotPlain
        return {k: _safe_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_safe_plain(v) for v in node]
    if node is None or isinstance(node, str | int | float):  # bool is an int
        return node
    raise _NotPlain


def _plain(node: Any) -> Any:
    """Ruamel's commented containers as plain dicts and lists (keys as strings)."""
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    return node


def _cross_issues(data: Any, tree: CommentedMap | None, name: str) -> list[ConfigIssue]:
    """Checks across fields (slugs, category references, duplicates) on the raw data.

    They run even when the schema check fails, so every problem is reported at once.
    Without the round-trip ``tree``, issues have no line.
    """
    issues: list[ConfigIssue] = []
    categories = data.get("categories") if isinstance(data, dict) else None
    slugs = list(categories) if isinstance(categories, dict) else []
    for slug in slugs:
        if not _SLUG.match(slug) or slug in RESERVED_SLUGS:
            issues.append(ConfigIssue(
                name, _line(tree, ("categories", slug)), f"categories.{slug}",
                f"invalid category slug {slug!r}",
                "use lower-case letters, digits, - and _ (not 'all' or 'q'); it becomes a URL path"))
    queries = data.get("queries") if isinstance(data, dict) else None
    for query, raw_query in (queries.items() if isinstance(queries, dict) else ()):
        if not _SLUG.match(query):
            issues.append(ConfigIssue(
                name, _line(tree, ("queries", query)), f"queries.{query}",
                f"invalid query name {query!r}",
                "use lower-case letters, digits, - and _; it becomes the URL /feeds/q/NAME.atom"))
        wanted = raw_query.get("categories") if isinstance(raw_query, dict) else None
        for j, slug in enumerate(wanted if isinstance(wanted, list) else []):
            if categories is not None and slug not in slugs:
                issues.append(ConfigIssue(
                    name, _line(tree, ("queries", query, "categories", j)),
                    f"queries.{query}.categories[{j}]", f"category {slug!r} is not defined",
                    f"use one of: {', '.join(slugs)}"))
    sources = data.get("sources") if isinstance(data, dict) else None
    site = data.get("site") if isinstance(data, dict) else None
    rsshub = str(site.get("rsshub", _SiteModel.model_fields["rsshub"].default)
                 if isinstance(site, dict) else "")
    seen: dict[str, int] = {}
    for i, raw in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(raw, dict):
            continue
        field = f"sources[{i}]"
        if ("url" in raw) == ("urls" in raw):
            issues.append(ConfigIssue(
                name, _line(tree, ("sources", i)), f"{field}.url",
                "a source needs url: or urls:, not both" if "url" in raw else
                "required field is missing",
                "write url: URL, or urls: [PRIMARY, FALLBACK, …] to fail over"))
        urls = raw.get("urls")
        if "url" not in raw and isinstance(urls, list) and urls:
            raw = {**raw, "url": urls[0]}
        category = raw.get("category")
        if isinstance(category, str) and categories is not None and category not in slugs:
            issues.append(ConfigIssue(
                name, _line(tree, ("sources", i, "category")), f"{field}.category",
                f"category {category!r} is not defined",
                f"define it under categories: or use one of: {', '.join(slugs)}"))
        url = _expand(str(raw.get("url", "")).strip(), rsshub)
        if url and url in seen:
            issues.append(ConfigIssue(
                name, _line(tree, ("sources", i, "url")), f"{field}.url",
                f"duplicate source {url}", f"it is already sources[{seen[url]}]; remove one"))
        seen.setdefault(url, i)
    return issues


def _expand(url: str, rsshub: str) -> str:
    """A source URL with the ``rsshub:`` shorthand expanded."""
    if url.startswith("rsshub:"):
        return rsshub.rstrip("/") + "/" + url.removeprefix("rsshub:").lstrip("/")
    return url


def _resolve(model: _FileModel, path: Path) -> Config:
    site_tz = model.site.timezone
    sources = tuple(
        Source(url=_expand((raw.urls or [raw.url or ""])[0], model.site.rsshub),
               fallbacks=tuple(_expand(u, model.site.rsshub) for u in (raw.urls or [])[1:]),
               category=raw.category, name=raw.name,
               schedule=_schedule(raw.interval or model.categories[raw.category].interval
                                  or model.defaults.interval, raw.timezone or site_tz),
               timezone=ZoneInfo(raw.timezone or site_tz), encoding=raw.encoding,
               rules=raw.rules())
        for raw in model.sources)
    host, _, port = model.server.listen.rpartition(":")
    data_dir = Path(model.site.data_dir)
    if not data_dir.is_absolute():
        data_dir = path.resolve().parent / data_dir
    return Config(
        path=path,
        site=Site(title=model.site.title, base_url=model.site.base_url.rstrip("/") + "/",
                  timezone=ZoneInfo(site_tz), data_dir=data_dir,
                  rsshub=model.site.rsshub.rstrip("/") + "/",
                  websub_hubs=tuple(model.site.websub_hubs)),
        listen_host=host.strip("[]"),
        listen_port=int(port),
        log_level=model.server.log_level,
        max_entries=model.defaults.max_entries,
        quiet_factor=model.defaults.quiet_factor,
        quiet_after=model.defaults.quiet_after,
        retention_days=model.retention.days,
        retention_entries=model.retention.entries_per_source,
        categories={slug: Category(slug=slug, title=c.title, description=c.description,
                                   rules=c.rules())
                    for slug, c in model.categories.items()},
        sources=sources,
        queries={name: SavedSearch(name=name, query=parse_query(q.query), title=q.title or name,
                                   description=q.description, categories=tuple(q.categories))
                 for name, q in model.queries.items()},
        storage=Storage(url=model.storage.url, lease=model.storage.lease,
                        pool_size=model.storage.pool_size),
        fetch=FetchSettings(timeout=model.fetch.timeout, max_body_bytes=model.fetch.max_body,
                            max_redirects=model.fetch.max_redirects,
                            per_host=model.fetch.per_host, concurrency=model.fetch.concurrency),
    )


# --- locating errors --------------------------------------------------------------


def _line(tree: Any, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the deepest node along ``loc`` that exists in the YAML tree."""
    node, line = tree, None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    if line is None and hasattr(tree, "lc"):
        return int(tree.lc.line) + 1
    return line


def _field_name(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _section(parent: tuple[str | int, ...]) -> type[BaseModel]:
    """The schema model of the mapping at ``parent`` (a category's slug is not a section)."""
    names = [part for i, part in enumerate(parent) if isinstance(part, str)
             and not (i == 1 and parent[0] == "categories")]
    return next((_SECTIONS[n] for n in reversed(names) if n in _SECTIONS), _FileModel)


def _issue_from_pydantic(name: str, tree: Any, err: Any) -> ConfigIssue:
    loc = tuple(part for part in err["loc"] if part not in _INTERVAL_TAGS)
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    hint = ""
    if kind == "extra_forbidden":
        allowed = ", ".join(_section(loc[:-1]).model_fields)
        message = f"unknown key {loc[-1]!r}"
        hint = f"check its spelling; allowed here: {allowed}"
    elif kind == "missing":
        message = "required field is missing"
        hint = f"add {loc[-1]}: to this section"
    elif ": " in message and kind == "value_error":
        message, _, hint = message.partition(": ")
    elif kind in ("dict_type", "model_type"):
        hint = "write a mapping of key: value lines, indented under it"
    elif kind == "list_type":
        hint = "write a list of items, each starting with '- '"
    return ConfigIssue(name, _line(tree, loc), _field_name(loc), message, hint)
