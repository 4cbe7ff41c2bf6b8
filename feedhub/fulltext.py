"""Full text: put the article each entry links to in place of the feed's summary.

For a source with ``full_text:``, each entry the store does not have yet, or
whose feed version changed, has its link fetched through the same polite
fetcher as feeds (User-Agent, per-host limits, timeouts, bounded redirects, a
size cap), with :func:`feedhub.ssrf.link_guard` asked before every hop, and
the article extracted in a worker (:mod:`feedhub.extract`).

The entry keeps the feed's ``content_hash``, so the next poll finds it
unchanged and does not fetch the page again; a new version of the entry in
the feed fetches it anew. A page that cannot be fetched or holds no article
leaves the entry as the feed gave it (its summary) and is named in the
source's status; the entry is stored in the same poll either way, and is not
tried again until the feed changes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

from feedhub.errors import SourceError
from feedhub.extract import extract_article
from feedhub.fetch import Fetcher
from feedhub.model import Entry, FetchStatus
from feedhub.selectors import FullText
from feedhub.ssrf import link_guard
from feedhub.workers import Workers

#: Largest article page fetched (below ``fetch.max_body`` when that is larger): a page
#: bigger than this is not one article.
ARTICLE_MAX_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class FullTextResult:
    """A poll's entries with their articles filled in, and the pages that failed."""

    entries: list[Entry]
    #: Article pages fetched in this poll.
    fetched: int
    #: ``link: reason`` for each page whose entry kept the feed's summary.
    failures: tuple[str, ...] = ()

    def note(self) -> str | None:
        """What to show in the source's status, or ``None`` when every article came."""
        if not self.failures:
            return None
        more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return (f"full text: {len(self.failures)} of {self.fetched} articles kept the feed's "
                f"summary: {self.failures[0]}{more}")


async def add_full_text(entries: Sequence[Entry], stored: Mapping[str, str], *, source_url: str,
                        rules: FullText, encoding: str | None, fetcher: Fetcher,
                        workers: Workers, allow_private: bool) -> FullTextResult:
    """The entries of ``source_url``, those new or changed since ``stored`` (key → the
    stored ``content_hash``) with their articles; ``encoding``: the source's setting."""
    wanted = [i for i, e in enumerate(entries) if e.link and stored.get(e.key) != e.content_hash]
    guard = link_guard(source_url, allow_private=allow_private)

    async def article(entry: Entry) -> Entry | str:
        assert entry.link is not None
        fetched = await fetcher.fetch(entry.link, page=True, guard=guard,
                                      max_bytes=ARTICLE_MAX_BYTES)
        if fetched.status is not FetchStatus.OK:
            return f"{entry.link}: {fetched.error or fetched.status.value}"
        try:
            content = await workers.run(partial(
                extract_article, fetched.body, url=fetched.url, headers=fetched.headers,
                encoding=encoding, selector=rules.selector))
        except SourceError as e:
            return f"{entry.link}: {e.message}"
        return replace(entry, content_html=content)

    done = await asyncio.gather(*(article(entries[i]) for i in wanted))
    filled, failures = list(entries), []
    for i, result in zip(wanted, done, strict=True):
        if isinstance(result, str):
            failures.append(result)
        else:
            filled[i] = result
    return FullTextResult(filled, len(wanted), tuple(failures))
