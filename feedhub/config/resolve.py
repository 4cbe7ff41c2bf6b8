"""From the validated file to a :class:`Config`: checks across fields, defaults applied."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ruamel.yaml.comments import CommentedMap

from feedhub.config.files import (
    FileModel,
    ScheduleModel,
    ScrapeModel,
    SiteModel,
)
from feedhub.config.issues import line_of
from feedhub.config.types import (
    RESERVED_SLUGS,
    Category,
    Config,
    FetchSettings,
    SavedSearch,
    Site,
    Source,
    Storage,
    Webhook,
)
from feedhub.config.values import SLUG, expand_rsshub
from feedhub.errors import ConfigIssue
from feedhub.policy import Schedule
from feedhub.search import parse_query
from feedhub.selectors import FullText, ScrapeRules, compile_selector


def _schedule(value: timedelta | ScheduleModel, timezone: str) -> Schedule:
    if isinstance(value, timedelta):
        return Schedule(default=value, timezone=ZoneInfo(timezone))
    return value.schedule(timezone)


def cross_issues(data: Any, tree: CommentedMap | None, name: str) -> list[ConfigIssue]:
    """Checks across fields (slugs, category references, duplicates) on the raw data.

    They run even when the schema check fails, so every problem is reported at once.
    Without the round-trip ``tree``, issues have no line.
    """
    issues: list[ConfigIssue] = []
    categories = data.get("categories") if isinstance(data, dict) else None
    slugs = list(categories) if isinstance(categories, dict) else []
    for slug in slugs:
        if not SLUG.match(slug) or slug in RESERVED_SLUGS:
            issues.append(ConfigIssue(
                name, line_of(tree, ("categories", slug)), f"categories.{slug}",
                f"invalid category slug {slug!r}",
                "use lower-case letters, digits, - and _ (not 'all' or 'q'); it becomes a URL path"))
    queries = data.get("queries") if isinstance(data, dict) else None
    for query, raw_query in (queries.items() if isinstance(queries, dict) else ()):
        if not SLUG.match(query):
            issues.append(ConfigIssue(
                name, line_of(tree, ("queries", query)), f"queries.{query}",
                f"invalid query name {query!r}",
                "use lower-case letters, digits, - and _; it becomes the URL /feeds/q/NAME.atom"))
        wanted = raw_query.get("categories") if isinstance(raw_query, dict) else None
        for j, slug in enumerate(wanted if isinstance(wanted, list) else []):
            if categories is not None and slug not in slugs:
                issues.append(ConfigIssue(
                    name, line_of(tree, ("queries", query, "categories", j)),
                    f"queries.{query}.categories[{j}]", f"category {slug!r} is not defined",
                    f"use one of: {', '.join(slugs)}"))
    notify = data.get("notify") if isinstance(data, dict) else None
    hooks = notify.get("webhooks") if isinstance(notify, dict) else None
    for i, hook in enumerate(hooks if isinstance(hooks, list) else []):
        wanted = hook.get("categories") if isinstance(hook, dict) else None
        for j, slug in enumerate(wanted if isinstance(wanted, list) else []):
            if categories is not None and slug not in slugs:
                issues.append(ConfigIssue(
                    name, line_of(tree, ("notify", "webhooks", i, "categories", j)),
                    f"notify.webhooks[{i}].categories[{j}]", f"category {slug!r} is not defined",
                    f"use one of: {', '.join(slugs)}"))
    sources = data.get("sources") if isinstance(data, dict) else None
    site = data.get("site") if isinstance(data, dict) else None
    rsshub = str(site.get("rsshub", SiteModel.model_fields["rsshub"].default)
                 if isinstance(site, dict) else "")
    seen: dict[str, int] = {}
    for i, raw in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(raw, dict):
            continue
        field = f"sources[{i}]"
        if ("url" in raw) == ("urls" in raw):
            issues.append(ConfigIssue(
                name, line_of(tree, ("sources", i)), f"{field}.url",
                "a source needs url: or urls:, not both" if "url" in raw else
                "required field is missing",
                "write url: URL, or urls: [PRIMARY, FALLBACK, …] to fail over"))
        urls = raw.get("urls")
        if "url" not in raw and isinstance(urls, list) and urls:
            raw = {**raw, "url": urls[0]}
        category = raw.get("category")
        if isinstance(category, str) and categories is not None and category not in slugs:
            issues.append(ConfigIssue(
                name, line_of(tree, ("sources", i, "category")), f"{field}.category",
                f"category {category!r} is not defined",
                f"define it under categories: or use one of: {', '.join(slugs)}"))
        url = expand_rsshub(str(raw.get("url", "")).strip(), rsshub)
        if url and url in seen:
            issues.append(ConfigIssue(
                name, line_of(tree, ("sources", i, "url")), f"{field}.url",
                f"duplicate source {url}", f"it is already sources[{seen[url]}]; remove one"))
        seen.setdefault(url, i)
    return issues


def _scrape(model: ScrapeModel | None) -> ScrapeRules | None:
    return model.rules() if model is not None else None


def _full_text(wanted: bool | None, selector: str | None) -> FullText | None:
    """Full text when asked for, or when a selector is given and it is not turned off."""
    if not (wanted if wanted is not None else selector is not None):
        return None
    return FullText(selector=compile_selector(selector) if selector else None)


def resolve(model: FileModel, path: Path) -> Config:
    """The validated file as a :class:`Config`, defaults applied and URLs expanded."""
    site_tz = model.site.timezone
    sources = tuple(
        Source(url=expand_rsshub((raw.urls or [raw.url or ""])[0], model.site.rsshub),
               fallbacks=tuple(expand_rsshub(u, model.site.rsshub) for u in (raw.urls or [])[1:]),
               category=raw.category, name=raw.name,
               schedule=_schedule(raw.interval or model.categories[raw.category].interval
                                  or model.defaults.interval, raw.timezone or site_tz),
               timezone=ZoneInfo(raw.timezone or site_tz), encoding=raw.encoding,
               rules=raw.rules(), scrape=_scrape(raw.scrape or model.categories[raw.category].scrape),
               full_text=_full_text(
                   raw.full_text if raw.full_text is not None
                   else model.categories[raw.category].full_text,
                   raw.full_text_selector or model.categories[raw.category].full_text_selector))
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
                            per_host=model.fetch.per_host, concurrency=model.fetch.concurrency,
                            private_links=model.fetch.private_links == "allow"),
        webhooks=tuple(Webhook(url=w.url, secret=w.secret,
                               categories=frozenset(w.categories) if w.categories else None)
                       for w in model.notify.webhooks),
    )
