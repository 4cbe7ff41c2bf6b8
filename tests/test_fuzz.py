"""Property-based fuzzing: mutated corpus feeds through parse → normalize → store → render.

Hypothesis picks a corpus feed and mutates it (bytes flipped, truncated, its
encoding swapped, an element duplicated); whatever comes out, nothing raises
but feedhub's own SourceError, and every rendered document is well-formed. The
run is bounded by example count and a deadline so CI stays around a minute.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from feedhub.config import Config, parse_config
from feedhub.errors import SourceError
from feedhub.model import SourceState
from feedhub.normalize import normalize
from feedhub.parse import parse
from feedhub.render.site import render
from feedhub.store import open_store
from tests.conftest import CORPUS, SourceSpec, config_text, corpus_required

SOURCE = "http://127.0.0.1:9/feed.xml"
SEEN = datetime(2026, 11, 25, tzinfo=UTC)
ENCODINGS = ["utf-8", "gb18030", "big5", "shift_jis", "koi8-r", "latin-1", "utf-16"]


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    # Small files keep each example fast; they still cover every format and encoding.
    return [CORPUS / r["path"] for r in rows if int(r["bytes"]) < 40_000]


FILES = corpus_files()


@st.composite
def mutated_feed(draw: st.DrawFn) -> bytes:
    body = draw(st.sampled_from(FILES)).read_bytes() if FILES else b"<rss/>"
    kind = draw(st.sampled_from(["flip", "truncate", "reencode", "duplicate", "splice"]))
    if kind == "flip" and body:
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 20))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "truncate":
        return body[: draw(st.integers(0, len(body)))]
    if kind == "reencode":
        text = body.decode("utf-8", errors="replace")
        return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    if kind == "duplicate":
        match = re.search(rb"<(item|entry)[\s>].*?</\1>", body, re.S)
        if match:
            copies = match.group(0) * draw(st.integers(2, 30))
            return body[: match.start()] + copies + body[match.end():]
        return body
    junk = draw(st.binary(min_size=1, max_size=200))
    at = draw(st.integers(0, len(body)))
    return body[:at] + junk + body[at:]


def _config(root: Path) -> Config:
    text = config_text([SourceSpec(SOURCE)], max_entries=30)
    return parse_config(text, root / "feeds.yaml")


async def _round_trip(body: bytes, content_type: str, root: Path) -> None:
    config = _config(root)
    try:
        feed = parse(body, url=SOURCE, headers={"content-type": content_type},
                     timezone=ZoneInfo("Asia/Shanghai"))
    except SourceError:
        return  # reported as the source's error: the outcome we want for garbage
    entries = normalize(feed, source_url=SOURCE, feed_url=SOURCE, seen_at=SEEN)
    store = await open_store(config.store_path)
    try:
        await store.save_poll(SourceState(url=SOURCE), entries, SEEN)
        async for doc in render(store, config):
            if doc.path.endswith((".atom", ".rss", ".xml")):
                etree.fromstring(doc.body)
            elif doc.path.endswith(".json"):
                json.loads(doc.body)
    finally:
        await store.close()


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=mutated_feed(),
       content_type=st.sampled_from(["application/rss+xml", "text/xml", "application/xml",
                                     "text/html", "application/atom+xml; charset=gb2312",
                                     "application/feed+json"]))
def test_mutated_feeds_never_crash(body: bytes, content_type: str) -> None:
    corpus_required()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_round_trip(body, content_type, Path(tmp)))


@pytest.mark.parametrize("body", [
    # Cases the fuzzer found are kept here as plain tests.
    b'<rss version="2.0"><channel><item><title>&#2;</title><enclosure url="http://a/b" '
    b'length="' + b"9" * 5000 + b'"/></item></channel></rss>',
    b"\xef\xbb\xbf{\"version\": \"https://jsonfeed.org/version/1.1\", \"items\": [{\"id\": 1, "
    b"\"attachments\": [{\"url\": \"http://a/b\", \"size_in_bytes\": 1e400}]}]}",
])
def test_kept_cases(body: bytes, tmp_path: Path) -> None:
    asyncio.run(_round_trip(body, "application/rss+xml", tmp_path))
