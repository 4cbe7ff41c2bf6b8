"""Checks that the test feed server behaves like a real feed host."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.feedserver import FeedServer, Route

FEEDS = Path(__file__).parent / "data" / "feeds"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A started server, stopped after the test."""
    with FeedServer() as srv:
        yield srv


def test_serves_route_and_404(server: FeedServer) -> None:
    server.set("/a.xml", Route(body=b"<rss/>", headers={"Cache-Control": "max-age=60"}))
    ok = httpx.get(server.url("/a.xml?x=1"))
    assert ok.status_code == 200
    assert ok.content == b"<rss/>"
    assert ok.headers["content-type"] == "application/rss+xml"
    assert ok.headers["content-length"] == "6"
    assert ok.headers["cache-control"] == "max-age=60"
    assert httpx.get(server.url("/missing.xml")).status_code == 404


def test_head_sends_headers_only(server: FeedServer) -> None:
    server.set("/a.xml", Route(body=b"<rss/>"))
    response = httpx.head(server.url("/a.xml"))
    assert response.status_code == 200
    assert response.headers["content-length"] == "6"
    assert response.content == b""


def test_serve_file_and_replace(server: FeedServer) -> None:
    file = FEEDS / "rss2_utf8.xml"
    server.serve_file("/f.xml", file, content_type="text/xml; charset=utf-8")
    assert httpx.get(server.url("/f.xml")).content == file.read_bytes()
    server.set("/f.xml", Route(status=410, body=b"gone"))
    assert httpx.get(server.url("/f.xml")).status_code == 410


def test_etag_304(server: FeedServer) -> None:
    server.set("/e.xml", Route(body=b"<rss/>", etag='"v1"'))
    first = httpx.get(server.url("/e.xml"))
    assert first.headers["etag"] == '"v1"'
    again = httpx.get(server.url("/e.xml"), headers={"If-None-Match": '"v1"'})
    assert again.status_code == 304
    assert again.content == b""
    other = httpx.get(server.url("/e.xml"), headers={"If-None-Match": '"v0"'})
    assert other.status_code == 200


def test_last_modified_304(server: FeedServer) -> None:
    stamp = "Fri, 06 May 2022 07:47:32 GMT"
    server.set("/m.xml", Route(body=b"<rss/>", last_modified=stamp))
    assert httpx.get(server.url("/m.xml")).headers["last-modified"] == stamp
    again = httpx.get(server.url("/m.xml"), headers={"If-Modified-Since": stamp})
    assert again.status_code == 304
    older = httpx.get(
        server.url("/m.xml"), headers={"If-Modified-Since": "Thu, 05 May 2022 00:00:00 GMT"}
    )
    assert older.status_code == 200


def test_gzip_only_when_asked(server: FeedServer) -> None:
    body = "<rss>证券时报</rss>".encode() * 50
    server.set("/g.xml", Route(body=body, gzip=True))
    raw = httpx.get(server.url("/g.xml"), headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content == body
    assert int(raw.headers["content-length"]) < len(body)
    plain = httpx.get(server.url("/g.xml"), headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == body
    assert gzip.decompress(gzip.compress(body)) == body


def test_request_log_and_delay(server: FeedServer) -> None:
    server.set("/slow.xml", Route(body=b"<rss/>", delay=0.2))
    started = time.monotonic()
    httpx.get(server.url("/slow.xml?page=2"), headers={"User-Agent": "feedhub-test"})
    assert time.monotonic() - started >= 0.2
    httpx.head(server.url("/other.xml"))
    seen = server.requests("/slow.xml")
    assert [(r.method, r.path) for r in seen] == [("GET", "/slow.xml?page=2")]
    assert seen[0].headers["user-agent"] == "feedhub-test"
    assert seen[0].time >= started
    assert len(server.requests()) == 2
