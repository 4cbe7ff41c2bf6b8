"""Export entries as Jekyll posts, in the first user's original format.

One file per entry in ``DIR/_posts/``: front matter (title, local date,
category slug, category label as tag), the article HTML, its original link,
and links back to the category page and the home page. Re-running rewrites
only files whose bytes changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from feedhub.config import Category, Config
from feedhub.filters import EntryFilter
from feedhub.model import Document, StoredEntry
from feedhub.publish.static import write_documents
from feedhub.store import Store

_PAGE = 500
_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """How many posts an export wrote, and how many were already up to date."""

    written: int
    unchanged: int


def _yaml_string(text: str) -> str:
    """``text`` as a YAML double-quoted scalar."""
    escaped = "".join(_YAML_ESCAPES.get(c, c if c.isprintable() else f"\\u{ord(c):04x}")
                      for c in text)
    return f'"{escaped}"'


def _scheme_relative(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"//{parts.netloc}{parts.path or '/'}"


def render_post(entry: StoredEntry, *, category: Category, base_url: str, tz: ZoneInfo) -> bytes:
    """One Jekyll post, byte for byte in the hub's format."""
    site = _scheme_relative(base_url)
    lines = [
        "---",
        "layout: post",
        f"title: {_yaml_string(entry.title)}",
        f"date: {entry.published.astimezone(tz):%Y-%m-%d %H:%M:%S %z}",
        f"categories: {category.slug}",
        f"tags: {category.title}",
        "---",
        entry.content_html,
        "",
        f"<{entry.link}>" if entry.link else "",
        "",
        f"[返回{category.title}]({site}category/{category.slug}.html)｜[返回首页]({site})",
    ]
    return "\n".join(lines).encode("utf-8")


def post_path(entry: StoredEntry, tz: ZoneInfo) -> str:
    """``_posts/YYYY-MM-DD-<stable id>.html``; the id never changes for an entry."""
    stable = hashlib.sha256(f"{entry.source_url}\n{entry.key}".encode()).hexdigest()[:16]
    return f"_posts/{entry.published.astimezone(tz):%Y-%m-%d}-{stable}.html"


async def _entries(store: Store, urls: list[str], flt: EntryFilter
                   ) -> AsyncIterator[StoredEntry]:
    offset = 0
    while True:
        page = await store.latest_entries(urls, _PAGE, offset)
        for entry in flt.keep(page):
            yield entry
        if len(page) < _PAGE:
            return
        offset += _PAGE


async def export_jekyll(store: Store, config: Config, out_dir: Path, *,
                        category: str | None = None, since: datetime | None = None
                        ) -> ExportResult:
    """Write a post per stored entry (of one category, or all) into ``out_dir/_posts``.

    Raises:
        StoreError, PublishError: reading the store or writing a file failed.
    """
    tz = config.site.timezone
    written = unchanged = 0
    flt = config.entry_filter()
    slugs = [category] if category else list(config.categories)
    for slug in slugs:
        cat = config.categories[slug]
        urls = [s.url for s in config.sources_in(slug)]
        async for entry in _entries(store, urls, flt):
            if since is not None and entry.published < since:
                continue
            body = render_post(entry, category=cat, base_url=config.site.base_url, tz=tz)
            path = post_path(entry, tz)
            target = out_dir / path
            if target.is_file() and target.read_bytes() == body:
                unchanged += 1
                continue
            write_documents([Document.of(path=path, body=body, content_type="text/html",
                                      etag="", modified=entry.updated)], out_dir)
            written += 1
    return ExportResult(written=written, unchanged=unchanged)
