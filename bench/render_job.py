"""Rendering, measured inside one process on a polled store.

    python bench/render_job.py FEEDS_YAML SLUG

Prints JSON: the time to republish one changed category (what a poll that
changed one category does), and the time to render one 50-entry Atom feed
with feedhub beside feedgen alone writing the same entries (medians).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]

from feedhub.config import load_config
from feedhub.model import StoredEntry
from feedhub.pipeline import republish
from feedhub.render.feeds import FeedSpec, SourceInfo, render_atom
from feedhub.store import open_store


def _feedgen_atom(entries: list[StoredEntry]) -> bytes:
    fg = FeedGenerator()
    fg.id("http://127.0.0.1/feeds/x.atom")
    fg.title("证券时报网新闻")
    fg.link(href="http://127.0.0.1/feeds/x.atom", rel="self")
    fg.updated(entries[0].updated)
    for e in reversed(entries):
        fe = fg.add_entry()
        fe.id(e.guid or e.link or e.key)
        fe.title(e.title)
        fe.link(href=e.link or "http://127.0.0.1/")
        fe.published(e.published)
        fe.updated(e.updated)
        fe.content(e.content_html, type="html")
        for name in e.authors:
            fe.author(name=name)
        for c in e.categories:
            fe.category(term=c)
    return bytes(fg.atom_str(pretty=False))


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def main() -> None:
    config = load_config(Path(sys.argv[1]))
    slug = sys.argv[2]
    store = await open_store(config.store_path)
    try:
        started = time.perf_counter()
        docs = await republish(store, config, {slug})
        republish_one = time.perf_counter() - started
        urls = [s.url for s in config.sources_in(slug)]
        entries = await store.latest_entries(urls, 50)
        infos = {s.url: SourceInfo(url=s.url, title=s.url, link=None) for s in config.sources}
        spec = FeedSpec(stem=f"feeds/{slug}", title=slug, description=slug,
                        home_url=config.site.base_url, base_url=config.site.base_url,
                        timezone=config.site.timezone,
                        labels={s.url: config.categories[s.category].title for s in config.sources},
                        sources=infos)
        feedhub_atom = _median_time(lambda: render_atom(spec, entries), 20)
        feedgen_atom = _median_time(lambda: _feedgen_atom(entries), 20)
    finally:
        await store.close()
    print(json.dumps({"republish_one": republish_one, "documents": len(docs),
                      "entries": len(entries), "feedhub_atom": feedhub_atom,
                      "feedgen_atom": feedgen_atom}))


if __name__ == "__main__":
    asyncio.run(main())
