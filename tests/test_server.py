"""The real ``feedhub serve`` subprocess, on a data dir filled by a real ``feedhub poll``."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from feedhub.server import ASGIApp, HttpServer, Receive, Scope, Send
from tests.conftest import SourceSpec, config_text, fixture_route, run_cli
from tests.daemonproc import free_port
from tests.feedserver import FeedServer, Route

SLUG = "zhengquanshibaowang"
IDENTITY = {"Accept-Encoding": "identity"}


@contextmanager
def serving(config: Path) -> Iterator[str]:
    """Run ``feedhub serve --listen 127.0.0.1:<port>``; yield its base URL once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FEEDHUB_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "feedhub", "--config", str(config), "serve",
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"feedhub serve exited with {proc.returncode}: {err}")
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("feedhub serve did not answer within 60 s") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@dataclass(frozen=True)
class Site:
    """A polled data dir and the running server on top of it."""

    base: str
    public: Path
    root: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Poll three fixture feeds (and one 404) through the CLI, then serve the result."""
    root = tmp_path_factory.mktemp("served")
    with FeedServer() as sources:
        for name in ("rss2_utf8.xml", "atom_utf8.xml", "seed.xml"):
            sources.set(f"/feeds/{name}", fixture_route(name, etag=f'"{name}"'))
        sources.set("/feeds/missing.xml", Route(status=404, body=b"no", content_type="text/plain"))
        specs = [SourceSpec(sources.url(f"/feeds/{n}"))
                 for n in ("rss2_utf8.xml", "atom_utf8.xml", "seed.xml", "missing.xml")]
        config = root / "feeds.yaml"
        config.write_text(config_text(specs), encoding="utf-8")
        result = run_cli("poll", config=config)
        assert result.code == 0, result.stderr
    with serving(config) as base:
        yield Site(base=base, public=root / "data" / "public", root=root)


def raw_get(base: str, path: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` exactly as written (no client-side normalization) and read the raw reply."""
    port = int(base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


@pytest.mark.parametrize(("path", "media_type", "file"), [
    (f"/feeds/{SLUG}.atom", "application/atom+xml", f"feeds/{SLUG}.atom"),
    (f"/feeds/{SLUG}.rss", "application/rss+xml", f"feeds/{SLUG}.rss"),
    (f"/feeds/{SLUG}.json", "application/feed+json", f"feeds/{SLUG}.json"),
    ("/feeds/all.atom", "application/atom+xml", "feeds/all.atom"),
    ("/", "text/html", "index.html"),
    (f"/category/{SLUG}.html", "text/html", f"category/{SLUG}.html"),
    ("/opml.xml", "text/x-opml", "opml.xml"),
])
def test_content_type_validators_and_bytes(site: Site, path: str, media_type: str, file: str) -> None:
    """Each output has its Content-Type, an ETag and Last-Modified, and the published bytes."""
    r = httpx.get(site.base + path, headers=IDENTITY)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0].strip() == media_type
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    assert r.headers["last-modified"].endswith(" GMT")
    assert "content-encoding" not in r.headers
    assert r.content == (site.public / file).read_bytes()
    assert int(r.headers["content-length"]) == len(r.content)


def test_if_none_match_gives_304_without_body(site: Site) -> None:
    """A matching If-None-Match is answered 304 with no body; another ETag gets 200."""
    path = f"/feeds/{SLUG}.atom"
    first = httpx.get(site.base + path, headers=IDENTITY)
    status, headers, body = raw_get(site.base, path, {"If-None-Match": first.headers["etag"],
                                                      "Accept-Encoding": "identity"})
    assert status == 304
    assert body == b""
    assert headers["etag"] == first.headers["etag"]
    other = httpx.get(site.base + path, headers={**IDENTITY, "If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert other.content == first.content


def test_if_modified_since_gives_304(site: Site) -> None:
    """If-Modified-Since at (or after) Last-Modified is answered 304; an older date gets 200."""
    path = f"/feeds/{SLUG}.rss"
    first = httpx.get(site.base + path, headers=IDENTITY)
    status, _, body = raw_get(site.base, path, {"If-Modified-Since": first.headers["last-modified"]})
    assert (status, body) == (304, b"")
    old = httpx.get(site.base + path,
                    headers={**IDENTITY, "If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert old.status_code == 200
    assert old.content == first.content


def test_head_sends_headers_only(site: Site) -> None:
    """HEAD: same status and headers as GET, no body, Content-Length of the GET body."""
    path = f"/feeds/{SLUG}.json"
    get = httpx.get(site.base + path, headers=IDENTITY)
    status, headers, body = raw_get(site.base, path, IDENTITY, method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["content-length"]) == len(get.content)
    assert headers["etag"] == get.headers["etag"]
    assert headers["content-type"] == get.headers["content-type"]

    status, headers, body = raw_get(site.base, path, {"Accept-Encoding": "gzip"}, method="HEAD")
    _, _, gz_body = raw_get(site.base, path, {"Accept-Encoding": "gzip"})
    assert status == 200 and body == b""
    assert headers.get("content-encoding") == "gzip"
    assert int(headers["content-length"]) == len(gz_body)


def test_gzip_when_asked(site: Site) -> None:
    """Accept-Encoding: gzip gives a gzip body that decompresses to the same bytes."""
    path = f"/feeds/{SLUG}.atom"
    status, headers, body = raw_get(site.base, path, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert "accept-encoding" in headers.get("vary", "").lower()
    assert int(headers["content-length"]) == len(body)
    plain = (site.public / f"feeds/{SLUG}.atom").read_bytes()
    assert len(body) < len(plain)
    assert gzip.decompress(body) == plain
    # A conditional request with the gzip variant's ETag is answered 304 as well.
    again, _, empty = raw_get(site.base, path, {"Accept-Encoding": "gzip",
                                                "If-None-Match": headers["etag"]})
    assert (again, empty) == (304, b"")


def test_unknown_path_is_404(site: Site) -> None:
    """A path that is no output is 404."""
    for path in ("/nope", "/feeds/nope.atom", f"/feeds/{SLUG}.xml", "/category/"):
        assert httpx.get(site.base + path).status_code == 404, path


@pytest.mark.parametrize("path", [
    "/../feeds.yaml",
    "/feeds/..%2f..%2ffeeds.yaml",
    "/%2e%2e/feeds.yaml",
    "/data/feedhub.sqlite3",
    "/feedhub.sqlite3",
    "/../data/feedhub.sqlite3",
    "/feeds/../../feeds.yaml",
    "/%2e%2e/%2e%2e/etc/passwd",
])
def test_no_file_outside_the_outputs(site: Site, path: str) -> None:
    """Traversal attempts and store/config paths are 404 and never leak file contents."""
    status, _, body = raw_get(site.base, path)
    assert status == 404
    config = (site.root / "feeds.yaml").read_bytes()
    assert config not in body
    assert b"sources:" not in body
    assert b"SQLite format 3" not in body
    assert b"root:" not in body


def test_healthz(site: Site) -> None:
    """/healthz is JSON: status ok, with source counts (one of the four sources fails)."""
    r = httpx.get(site.base + "/healthz")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    report = r.json()
    assert report["status"] == "ok"
    assert report["sources"]["total"] == 4
    assert report["sources"]["ok"] == 3
    assert report["sources"]["failing"] == 1
    assert report["sources"]["gone"] == 0


def test_metrics(site: Site) -> None:
    """/metrics is Prometheus text naming feedhub_polls."""
    r = httpx.get(site.base + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "# TYPE feedhub_polls" in r.text
    assert "feedhub_polls" in r.text


def test_served_atom_is_the_polled_feed(site: Site) -> None:
    """The served category feed holds the polled entries (rss2 3 + atom 3 + seed 1)."""
    r = httpx.get(f"{site.base}/feeds/{SLUG}.atom")
    assert r.status_code == 200
    text = r.text
    assert text.count("<entry>") == 7
    assert "沪深两市成交额连续第五日突破万亿元" in text
    assert "新发基金规模环比回升" in text
    assert "“科创中国”大湾区联合体落户前海" in text
    health = json.loads(httpx.get(site.base + "/healthz").text)
    assert health["store_writable"] is True


def test_other_methods_are_405(site: Site) -> None:
    """Documents answer GET and HEAD only; /metrics (Starlette) refuses POST as well."""
    status, headers, body = raw_get(site.base, f"/feeds/{SLUG}.atom", method="POST")
    assert (status, headers["allow"], body) == (405, "GET, HEAD", b"Method Not Allowed")
    assert raw_get(site.base, "/metrics", method="POST")[0] == 405


def test_keep_alive_connection_serves_many_requests(site: Site) -> None:
    """One connection answers 200, 304 and 404 in turn, as a polling reader would use it."""
    port = int(site.base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"/feeds/{SLUG}.atom", headers=IDENTITY)
        first = conn.getresponse()
        body, etag = first.read(), first.getheader("etag")
        sock = conn.sock
        statuses = []
        for headers, path in (({"If-None-Match": etag or ""}, f"/feeds/{SLUG}.atom"),
                              (IDENTITY, "/nope"), (IDENTITY, f"/feeds/{SLUG}.atom")):
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            statuses.append((response.status, len(response.read())))
        assert conn.sock is sock  # not reconnected
    finally:
        conn.close()
    assert first.status == 200
    assert statuses == [(304, 0), (404, len(b"Not Found\n")), (200, len(body))]


def test_address_in_use_is_an_error(site: Site) -> None:
    """A second `feedhub serve` on the port of a running one exits with a message."""
    port = int(site.base.rsplit(":", 1)[1])
    result = run_cli("serve", "--listen", f"127.0.0.1:{port}", config=site.root / "feeds.yaml",
                     timeout=60)
    assert result.code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def _held_app(body: bytes, entered: asyncio.Event, release: asyncio.Event) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    return app


async def _refused(port: int) -> None:
    """Until a new connection to ``port`` is refused (the server stopped accepting)."""
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.02)


async def test_stop_lets_in_flight_responses_finish() -> None:
    """A response the app is still producing when the server stops is sent whole."""
    body = os.urandom(1 << 20)
    entered, release = asyncio.Event(), asyncio.Event()
    server = HttpServer(_held_app(body, entered, release), "127.0.0.1", 0)
    await server.start()
    async with httpx.AsyncClient() as client:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{server.port}/x"))
        await entered.wait()
        stopping = asyncio.create_task(server.stop())
        await _refused(server.port)
        release.set()
        response = await request
        await asyncio.wait_for(stopping, 30)
    assert response.status_code == 200
    assert response.content == body


async def test_stop_gives_up_on_a_stuck_response(monkeypatch: pytest.MonkeyPatch) -> None:
    """A response that never comes does not keep the server from stopping."""
    monkeypatch.setattr("feedhub.server.STOP_SECONDS", 0.2)
    entered, never = asyncio.Event(), asyncio.Event()
    server = HttpServer(_held_app(b"x", entered, never), "127.0.0.1", 0)
    await server.start()
    async with httpx.AsyncClient() as client:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{server.port}/x"))
        await entered.wait()
        await asyncio.wait_for(server.stop(), 30)
        request.cancel()
    await _refused(server.port)
