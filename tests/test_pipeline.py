"""Polling many sources at once: bounded work in flight, outcomes in source order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from feedhub.config import load_config
from feedhub.model import PollOutcome, PollStatus
from feedhub.operations import poll_now
from feedhub.pipeline import POLLS_IN_FLIGHT
from feedhub.store import open_store
from tests.conftest import SourceSpec, fixture_route
from tests.feedserver import FeedServer, Route


async def test_many_sources_are_polled_by_a_few_tasks_in_order(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    count = 3 * POLLS_IN_FLIGHT
    paths = [f"/s{i}.xml" for i in range(count)]
    for i, path in enumerate(paths):
        route = fixture_route("rss2_utf8.xml", delay=0.02) if i % 7 else Route(status=500)
        feed_server.set(path, route)
    config = load_config(write_config([SourceSpec(url=feed_server.url(p)) for p in paths]))
    tasks_seen: list[int] = []

    def done(outcome: PollOutcome) -> None:
        tasks_seen.append(len(asyncio.all_tasks()))

    store = await open_store(config.store_url)
    try:
        outcomes = await poll_now(store, config, config.sources, force=False, on_done=done)
    finally:
        await store.close()

    assert [o.source_url for o in outcomes] == [s.url for s in config.sources]
    assert [o.status == PollStatus.ERROR for o in outcomes] == [i % 7 == 0 for i in range(count)]
    assert len(tasks_seen) == count
    # The pollers, the test itself and a few helpers (a commit, the fetcher's): not a
    # task per source waiting its turn.
    assert max(tasks_seen) <= POLLS_IN_FLIGHT + 8, max(tasks_seen)
