"""Tests for polite fetching (feedhub.fetch) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import gzip
import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from feedhub import __version__
from feedhub.fetch import Fetcher, FetchLimits, _describe_http_error, _retry_after, user_agent
from feedhub.model import FetchResult, FetchStatus, SourceState
from tests.conftest import FIXTURES, fixture_route
from tests.feedserver import FeedServer, Route

BASE_URL = "http://127.0.0.1:8080/"
RSS = (FIXTURES / "rss2_utf8.xml").read_bytes()


async def _fetch(url: str, state: SourceState | None = None,
                 limits: FetchLimits | None = None) -> FetchResult:
    """One fetch with a fresh Fetcher."""
    async with Fetcher(BASE_URL, limits) as fetcher:
        return await fetcher.fetch(url, state)


def _redirect(status: int, location: str) -> Route:
    """A redirect response."""
    return Route(status=status, content_type=None, headers={"Location": location})


# --- success ---------------------------------------------------------------------------


async def test_ok_with_body_headers_and_validators(feed_server: FeedServer) -> None:
    """A 200 gives OK with the body, lower-cased headers, ETag and Last-Modified."""
    feed_server.set("/feed.xml", fixture_route("rss2_utf8.xml", etag='"v1"',
                                               last_modified="Fri, 06 May 2022 08:00:00 GMT",
                                               headers={"Cache-Control": "public, max-age=600"}))
    url = feed_server.url("/feed.xml")
    result = await _fetch(url)
    assert result.status is FetchStatus.OK
    assert result.http_status == 200
    assert result.url == url
    assert result.body == RSS
    assert result.headers["content-type"] == "application/rss+xml"
    assert result.etag == '"v1"'
    assert result.last_modified == "Fri, 06 May 2022 08:00:00 GMT"
    assert result.max_age == 600
    assert result.moved_to is None
    assert result.error is None


async def test_user_agent_and_accept(feed_server: FeedServer) -> None:
    """Requests carry ``feedhub/<version> (+<base_url>)`` and ask for feed types and gzip."""
    feed_server.set("/feed.xml", fixture_route("rss2_utf8.xml"))
    await _fetch(feed_server.url("/feed.xml"))
    (request,) = feed_server.requests("/feed.xml")
    assert request.headers["user-agent"] == f"feedhub/{__version__} (+{BASE_URL})"
    assert user_agent(BASE_URL) == f"feedhub/{__version__} (+http://127.0.0.1:8080/)"
    assert "application/rss+xml" in request.headers["accept"]
    assert "application/atom+xml" in request.headers["accept"]
    assert "gzip" in request.headers["accept-encoding"]
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers


async def test_conditional_get_with_etag(feed_server: FeedServer) -> None:
    """A stored ETag is sent as If-None-Match and a 304 is NOT_MODIFIED."""
    feed_server.set("/feed.xml", fixture_route("rss2_utf8.xml", etag='"abc"'))
    url = feed_server.url("/feed.xml")
    result = await _fetch(url, SourceState(url=url, etag='"abc"'))
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.http_status == 304
    assert result.body == b""
    assert result.etag == '"abc"'
    assert feed_server.requests("/feed.xml")[0].headers["if-none-match"] == '"abc"'


async def test_not_modified_keeps_the_connection(feed_server: FeedServer) -> None:
    """Successive 304s come over one kept-alive connection, not one connection each."""
    feed_server.set("/feed.xml", fixture_route("rss2_utf8.xml", etag='"abc"'))
    url = feed_server.url("/feed.xml")
    async with Fetcher(BASE_URL, FetchLimits(per_host=1, total=1)) as fetcher:
        for _ in range(3):
            result = await fetcher.fetch(url, SourceState(url=url, etag='"abc"'))
            assert result.status is FetchStatus.NOT_MODIFIED
    clients = {request.client for request in feed_server.requests("/feed.xml")}
    assert len(clients) == 1


async def test_conditional_get_with_last_modified(feed_server: FeedServer) -> None:
    """A stored Last-Modified is sent as If-Modified-Since and a 304 is NOT_MODIFIED."""
    stamp = "Fri, 06 May 2022 08:00:00 GMT"
    feed_server.set("/feed.xml", fixture_route("rss2_utf8.xml", last_modified=stamp))
    url = feed_server.url("/feed.xml")
    result = await _fetch(url, SourceState(url=url, last_modified=stamp))
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.last_modified == stamp
    request = feed_server.requests("/feed.xml")[0]
    assert request.headers["if-modified-since"] == stamp
    assert "if-none-match" not in request.headers


async def test_changed_etag_gives_new_body(feed_server: FeedServer) -> None:
    """When the server's ETag no longer matches, the new body comes back as OK."""
    feed_server.set("/feed.xml", fixture_route("rss2_utf8.xml", etag='"v2"'))
    url = feed_server.url("/feed.xml")
    result = await _fetch(url, SourceState(url=url, etag='"v1"'))
    assert result.status is FetchStatus.OK
    assert result.etag == '"v2"'
    assert result.body == RSS


async def test_gzip_transfer_is_decoded(feed_server: FeedServer) -> None:
    """A gzip-compressed response is decompressed transparently."""
    feed_server.set("/feed.xml", fixture_route("rss2_utf8.xml", gzip=True))
    result = await _fetch(feed_server.url("/feed.xml"))
    assert result.status is FetchStatus.OK
    assert result.headers["content-encoding"] == "gzip"
    assert int(result.headers["content-length"]) < len(RSS)
    assert result.body == RSS


async def test_corrupt_gzip_is_network_error(feed_server: FeedServer) -> None:
    """A body that claims gzip but is not decompresses to an error value, not an exception."""
    feed_server.set("/feed.xml", Route(body=b"this is not gzip data at all" * 10,
                                       headers={"Content-Encoding": "gzip"}))
    result = await _fetch(feed_server.url("/feed.xml"))
    assert result.status is FetchStatus.NETWORK_ERROR
    assert result.error is not None and "decompress" in result.error


# --- size cap --------------------------------------------------------------------------


async def test_too_large_by_content_length(feed_server: FeedServer) -> None:
    """A declared Content-Length above the cap is TOO_LARGE without reading the body."""
    feed_server.set("/big.xml", Route(body=b"<rss>" + b" " * 2_000_000 + b"</rss>"))
    result = await _fetch(feed_server.url("/big.xml"), limits=FetchLimits(max_body_bytes=1_000_000))
    assert result.status is FetchStatus.TOO_LARGE
    assert result.body == b""
    assert result.error is not None and "2000011" in result.error


async def test_body_at_cap_is_accepted(feed_server: FeedServer) -> None:
    """A body exactly at the cap is fine."""
    body = b"<rss>" + b" " * (1000 - 11) + b"</rss>"
    assert len(body) == 1000
    feed_server.set("/edge.xml", Route(body=body))
    result = await _fetch(feed_server.url("/edge.xml"), limits=FetchLimits(max_body_bytes=1000))
    assert result.status is FetchStatus.OK
    assert result.body == body


async def test_gzip_bomb_is_too_large(feed_server: FeedServer) -> None:
    """50 MB of zeros gzipped to a small body is stopped by the decompressed-size cap."""
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < 1_000_000
    feed_server.set("/bomb.xml", Route(body=bomb, gzip=False, headers={"Content-Encoding": "gzip"}))
    result = await _fetch(feed_server.url("/bomb.xml"), limits=FetchLimits(max_body_bytes=1_000_000))
    assert result.status is FetchStatus.TOO_LARGE
    assert result.body == b""
    assert result.error is not None and "decompression" in result.error


# --- status codes ----------------------------------------------------------------------


async def test_gone(feed_server: FeedServer) -> None:
    """410 is GONE."""
    feed_server.set("/gone.xml", Route(status=410, body=b"gone", content_type="text/plain"))
    result = await _fetch(feed_server.url("/gone.xml"))
    assert result.status is FetchStatus.GONE
    assert result.http_status == 410
    assert result.error is not None and "410" in result.error


async def test_429_retry_after_seconds(feed_server: FeedServer) -> None:
    """429 with Retry-After seconds is RATE_LIMITED until that many seconds from now."""
    feed_server.set("/slow.xml", Route(status=429, headers={"Retry-After": "120"}))
    before = datetime.now(UTC)
    result = await _fetch(feed_server.url("/slow.xml"))
    after = datetime.now(UTC)
    assert result.status is FetchStatus.RATE_LIMITED
    assert result.http_status == 429
    assert result.retry_after is not None
    assert before + timedelta(seconds=120) <= result.retry_after <= after + timedelta(seconds=120)


async def test_429_retry_after_http_date(feed_server: FeedServer) -> None:
    """429 with Retry-After as an HTTP-date is RATE_LIMITED until that instant."""
    when = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    feed_server.set("/slow.xml", Route(status=429, headers={
        "Retry-After": email.utils.format_datetime(when, usegmt=True)}))
    result = await _fetch(feed_server.url("/slow.xml"))
    assert result.status is FetchStatus.RATE_LIMITED
    assert result.retry_after == when
    assert result.retry_after is not None and result.retry_after.tzinfo is not None


async def test_429_without_retry_after(feed_server: FeedServer) -> None:
    """429 without Retry-After is still RATE_LIMITED, with no instant."""
    feed_server.set("/slow.xml", Route(status=429))
    result = await _fetch(feed_server.url("/slow.xml"))
    assert result.status is FetchStatus.RATE_LIMITED
    assert result.retry_after is None


async def test_503_with_retry_after(feed_server: FeedServer) -> None:
    """503 with Retry-After is RATE_LIMITED."""
    feed_server.set("/busy.xml", Route(status=503, headers={"Retry-After": "300"}))
    before = datetime.now(UTC)
    result = await _fetch(feed_server.url("/busy.xml"))
    assert result.status is FetchStatus.RATE_LIMITED
    assert result.http_status == 503
    assert result.retry_after is not None and result.retry_after >= before + timedelta(seconds=300)


@pytest.mark.parametrize(("status", "headers", "text"), [
    (503, {}, "HTTP 503"),
    (503, {"Retry-After": "soon"}, "HTTP 503"),
    (500, {}, "HTTP 500"),
    (404, {}, "HTTP 404"),
    (403, {}, "HTTP 403"),
])
async def test_http_errors(feed_server: FeedServer, status: int, headers: dict[str, str],
                           text: str) -> None:
    """Other failing statuses are HTTP_ERROR naming the status."""
    feed_server.set("/err.xml", Route(status=status, body=b"oops", content_type="text/plain",
                                      headers=headers))
    result = await _fetch(feed_server.url("/err.xml"))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.http_status == status
    assert result.error is not None and text in result.error
    assert result.retry_after is None
    assert result.body == b""


async def test_unrouted_path_is_404(feed_server: FeedServer) -> None:
    """A path the server does not know is HTTP_ERROR "HTTP 404"."""
    result = await _fetch(feed_server.url("/nothing-here.xml"))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.error is not None and result.error.startswith("HTTP 404")


# --- redirects -------------------------------------------------------------------------


async def test_301_chain_remembers_final_target(feed_server: FeedServer) -> None:
    """A chain of 301s is followed and the final target is remembered as moved_to."""
    feed_server.set("/a.xml", _redirect(301, "/b.xml"))
    feed_server.set("/b.xml", _redirect(301, feed_server.url("/c.xml")))
    feed_server.set("/c.xml", fixture_route("rss2_utf8.xml"))
    result = await _fetch(feed_server.url("/a.xml"))
    assert result.status is FetchStatus.OK
    assert result.body == RSS
    assert result.url == feed_server.url("/c.xml")
    assert result.moved_to == feed_server.url("/c.xml")


async def test_302_not_remembered(feed_server: FeedServer) -> None:
    """A temporary redirect is followed but not remembered."""
    feed_server.set("/a.xml", _redirect(302, "/c.xml"))
    feed_server.set("/c.xml", fixture_route("rss2_utf8.xml"))
    result = await _fetch(feed_server.url("/a.xml"))
    assert result.status is FetchStatus.OK
    assert result.url == feed_server.url("/c.xml")
    assert result.moved_to is None


async def test_301_then_302_remembers_only_permanent_part(feed_server: FeedServer) -> None:
    """301 → 302 → feed: only the permanent hop's target is remembered."""
    feed_server.set("/a.xml", _redirect(301, "/b.xml"))
    feed_server.set("/b.xml", _redirect(302, "/c.xml"))
    feed_server.set("/c.xml", fixture_route("rss2_utf8.xml"))
    result = await _fetch(feed_server.url("/a.xml"))
    assert result.status is FetchStatus.OK
    assert result.moved_to == feed_server.url("/b.xml")


async def test_302_then_301_not_remembered(feed_server: FeedServer) -> None:
    """A permanent hop behind a temporary one must not rewrite the configured URL."""
    feed_server.set("/a.xml", _redirect(302, "/b.xml"))
    feed_server.set("/b.xml", _redirect(301, "/c.xml"))
    feed_server.set("/c.xml", fixture_route("rss2_utf8.xml"))
    result = await _fetch(feed_server.url("/a.xml"))
    assert result.status is FetchStatus.OK
    assert result.moved_to is None


@pytest.mark.parametrize(("status", "remembered"), [(307, False), (308, True)])
async def test_307_and_308(feed_server: FeedServer, status: int, remembered: bool) -> None:
    """307 is followed like 302; 308 like 301."""
    feed_server.set("/a.xml", _redirect(status, "/c.xml"))
    feed_server.set("/c.xml", fixture_route("rss2_utf8.xml"))
    result = await _fetch(feed_server.url("/a.xml"))
    assert result.status is FetchStatus.OK
    assert result.body == RSS
    assert result.moved_to == (feed_server.url("/c.xml") if remembered else None)


async def test_conditional_headers_survive_redirects(feed_server: FeedServer) -> None:
    """If-None-Match is sent to the redirect target too, so a 304 still works."""
    feed_server.set("/a.xml", _redirect(301, "/c.xml"))
    feed_server.set("/c.xml", fixture_route("rss2_utf8.xml", etag='"e"'))
    url = feed_server.url("/a.xml")
    result = await _fetch(url, SourceState(url=url, etag='"e"'))
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.moved_to == feed_server.url("/c.xml")


async def test_five_redirects_allowed(feed_server: FeedServer) -> None:
    """Exactly max_redirects hops still reach the feed."""
    for i in range(5):
        feed_server.set(f"/r{i}", _redirect(302, f"/r{i + 1}"))
    feed_server.set("/r5", fixture_route("rss2_utf8.xml"))
    result = await _fetch(feed_server.url("/r0"))
    assert result.status is FetchStatus.OK
    assert result.url == feed_server.url("/r5")


async def test_more_than_five_redirects(feed_server: FeedServer) -> None:
    """A sixth redirect is an HTTP_ERROR; the target after it is never requested."""
    for i in range(6):
        feed_server.set(f"/r{i}", _redirect(302, f"/r{i + 1}"))
    feed_server.set("/r6", fixture_route("rss2_utf8.xml"))
    result = await _fetch(feed_server.url("/r0"))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.error is not None and "redirects" in result.error
    assert feed_server.requests("/r6") == []


async def test_redirect_loop(feed_server: FeedServer) -> None:
    """A redirect loop ends as an HTTP_ERROR after a bounded number of requests."""
    feed_server.set("/loop1", _redirect(302, "/loop2"))
    feed_server.set("/loop2", _redirect(302, "/loop1"))
    result = await _fetch(feed_server.url("/loop1"))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.error is not None and "redirects" in result.error
    assert len(feed_server.requests()) == 6


@pytest.mark.parametrize("location", [
    "ftp://127.0.0.1/feed.xml",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/xml,<rss/>",
])
async def test_redirect_to_non_http_refused(feed_server: FeedServer, location: str) -> None:
    """Redirects to anything but http(s) are refused."""
    feed_server.set("/a.xml", _redirect(301, location))
    result = await _fetch(feed_server.url("/a.xml"))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.error is not None and "refused" in result.error
    assert result.moved_to is None
    assert result.body == b""


async def test_redirect_without_location(feed_server: FeedServer) -> None:
    """A redirect status without Location is an HTTP_ERROR, not a crash."""
    feed_server.set("/a.xml", Route(status=302, content_type=None))
    result = await _fetch(feed_server.url("/a.xml"))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.http_status == 302
    assert result.error is not None and "Location" in result.error


# --- not a feed ------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"<!DOCTYPE html>\n<html><head><title>Login</title></head><body>sign in</body></html>",
    b"  <!-- cached --> <html lang=\"zh\"><body>hi</body></html>",
    b"<HTML><BODY>hi</BODY></HTML>",
])
async def test_html_page_is_not_a_feed(feed_server: FeedServer, body: bytes) -> None:
    """An HTML page where a feed was expected is NOT_A_FEED."""
    feed_server.set("/page", Route(body=body, content_type="text/html; charset=utf-8"))
    result = await _fetch(feed_server.url("/page"))
    assert result.status is FetchStatus.NOT_A_FEED
    assert result.error is not None and "HTML" in result.error


async def test_a_page_fetch_takes_html(feed_server: FeedServer) -> None:
    """Asked for a page (a listing to scrape, an article), HTML is the body, not an error."""
    page = "<!DOCTYPE html><html><body><p>证券时报网</p></body></html>".encode()
    feed_server.set("/article.html", Route(body=page, content_type="text/html; charset=utf-8"))
    async with Fetcher(BASE_URL) as fetcher:
        result = await fetcher.fetch(feed_server.url("/article.html"), page=True)
    assert result.status is FetchStatus.OK and result.body == page
    assert feed_server.requests("/article.html")[0].headers["accept"].startswith("text/html")


async def test_a_guard_refuses_the_url_and_every_redirect_target(feed_server: FeedServer) -> None:
    """The guard is asked before each hop: a redirect to a refused place is not followed."""
    feed_server.set("/go", _redirect(302, "/inside"))
    feed_server.set("/inside", Route(body=b"<html><body>secret</body></html>",
                                     content_type="text/html"))
    asked: list[str] = []

    async def guard(url: str) -> str | None:
        asked.append(url)
        return "a private address" if url.endswith("/inside") else None

    async with Fetcher(BASE_URL) as fetcher:
        result = await fetcher.fetch(feed_server.url("/go"), page=True, guard=guard)
    assert asked == [feed_server.url("/go"), feed_server.url("/inside")]
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.error == "refused: a private address"
    assert not feed_server.requests("/inside")


@pytest.mark.parametrize("body", [b"", b"  \r\n\t "])
async def test_empty_body_is_not_a_feed(feed_server: FeedServer, body: bytes) -> None:
    """An empty (or blank) 200 is NOT_A_FEED."""
    feed_server.set("/empty.xml", Route(body=body))
    result = await _fetch(feed_server.url("/empty.xml"))
    assert result.status is FetchStatus.NOT_A_FEED
    assert result.error == "empty body"


# --- network failures ------------------------------------------------------------------


async def test_total_timeout(feed_server: FeedServer) -> None:
    """A server slower than total_timeout ends as NETWORK_ERROR "timed out"."""
    feed_server.set("/slow.xml", fixture_route("rss2_utf8.xml", delay=3.0))
    result = await _fetch(feed_server.url("/slow.xml"), limits=FetchLimits(total_timeout=1.0))
    assert result.status is FetchStatus.NETWORK_ERROR
    assert result.error is not None and "timed out" in result.error
    assert result.body == b""


async def test_read_timeout(feed_server: FeedServer) -> None:
    """A silent server trips the read timeout before the total one."""
    feed_server.set("/slow.xml", fixture_route("rss2_utf8.xml", delay=3.0))
    result = await _fetch(feed_server.url("/slow.xml"),
                          limits=FetchLimits(read_timeout=0.5, total_timeout=10.0))
    assert result.status is FetchStatus.NETWORK_ERROR
    assert result.error is not None and "too long" in result.error


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused() -> None:
    """A closed port is NETWORK_ERROR "cannot connect"."""
    url = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    result = await _fetch(url)
    assert result.status is FetchStatus.NETWORK_ERROR
    assert result.url == url
    assert result.error is not None and "cannot connect" in result.error


async def test_one_fetcher_many_fetches(feed_server: FeedServer) -> None:
    """A failure does not spoil the client for the next fetch."""
    feed_server.set("/ok.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/gone.xml", Route(status=410))
    async with Fetcher(BASE_URL) as fetcher:
        statuses = [(await fetcher.fetch(feed_server.url(p))).status
                    for p in ("/gone.xml", "/ok.xml", "/missing", "/ok.xml")]
    assert statuses == [FetchStatus.GONE, FetchStatus.OK, FetchStatus.HTTP_ERROR, FetchStatus.OK]


# --- narrow units ----------------------------------------------------------------------


def test_retry_after_values() -> None:
    """Retry-After seconds and HTTP-dates become UTC instants; junk is None; the past is now."""
    now = datetime(2022, 5, 6, 8, 0, tzinfo=UTC)
    assert _retry_after("90", now) == now + timedelta(seconds=90)
    assert _retry_after("Fri, 06 May 2022 09:00:00 GMT", now) == datetime(2022, 5, 6, 9, tzinfo=UTC)
    assert _retry_after("Fri, 06 May 2022 07:00:00 GMT", now) == now
    assert _retry_after("soon", now) is None
    assert _retry_after("", now) is None
    assert _retry_after(None, now) is None


@pytest.mark.parametrize(("error", "text"), [
    (httpx.ConnectTimeout("x"), "connection timed out"),
    (httpx.ReadTimeout("x"), "no data from the server"),
    (httpx.ConnectError("refused"), "cannot connect (refused)"),
    (httpx.RemoteProtocolError("x"), "broke the HTTP protocol"),
    (httpx.DecodingError("x"), "could not be decompressed"),
    (httpx.UnsupportedProtocol("x"), "unsupported URL scheme"),
])
def test_describe_http_error(error: httpx.HTTPError, text: str) -> None:
    """httpx exceptions map to operator-readable text."""
    assert text in _describe_http_error(error)


async def test_server_disconnect_maps_to_network_error() -> None:
    """A transport failure mid-request (MockTransport) is a NETWORK_ERROR value."""
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    fetcher = Fetcher(BASE_URL)
    async with fetcher:
        assert fetcher._client is not None
        await fetcher._client.aclose()
        fetcher._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        result = await fetcher.fetch("http://127.0.0.1:9/feed.xml")
    assert result.status is FetchStatus.NETWORK_ERROR
    assert result.error is not None and "closed the connection" in result.error
