"""Fetch source documents politely over HTTP (httpx).

The named steps: build the request (User-Agent, conditional headers), follow
a bounded number of redirects by hand (so permanent ones are remembered and
non-HTTP targets refused), classify the response into a :class:`FetchResult`,
and read the body under a size cap that also holds after decompression.
Every failure is a value; only programming errors raise.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpx

from feedhub import __version__
from feedhub.config import FetchSettings
from feedhub.model import FetchResult, FetchStatus, SourceState, utcnow

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.I)
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.I | re.S)

_PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
#: Asked before each request of a fetch, redirects included: a reason to refuse the
#: URL, or ``None`` to go ahead (see :mod:`feedhub.ssrf`).
Guard = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """How much one fetch may cost."""

    #: Largest body accepted, counted after decompression (and before, via Content-Length).
    max_body_bytes: int = 16 * 1024 * 1024
    max_redirects: int = 5
    connect_timeout: float = 10.0
    #: Longest silence between two reads.
    read_timeout: float = 30.0
    #: Longest a whole fetch may take, however the server drips its bytes.
    total_timeout: float = 60.0
    per_host: int = 2
    total: int = 10


def limits_for(settings: FetchSettings) -> FetchLimits:
    """The limits an operator configured under ``fetch:``."""
    total = settings.timeout.total_seconds()
    return FetchLimits(max_body_bytes=settings.max_body_bytes, max_redirects=settings.max_redirects,
                       connect_timeout=min(10.0, total), read_timeout=min(30.0, total),
                       total_timeout=total, per_host=settings.per_host, total=settings.concurrency)


def user_agent(base_url: str) -> str:
    """The User-Agent feedhub announces itself with."""
    return f"feedhub/{__version__} (+{base_url})"


class Fetcher:
    """An HTTP client with feedhub's politeness rules; use as an async context manager."""

    def __init__(self, base_url: str, limits: FetchLimits | None = None) -> None:
        self.limits = limits or FetchLimits()
        self._user_agent = user_agent(base_url)
        self._client: httpx.AsyncClient | None = None
        self._global = asyncio.Semaphore(self.limits.total)
        self._hosts: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        lim = self.limits
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(lim.read_timeout, connect=lim.connect_timeout),
            limits=httpx.Limits(max_connections=lim.total, max_keepalive_connections=lim.total),
            headers={"User-Agent": self._user_agent, "Accept-Encoding": "gzip, deflate",
                     "Accept": "application/atom+xml, application/rss+xml, application/feed+json, "
                               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"},
        )
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, url: str, state: SourceState | None = None, *, page: bool = False,
                    guard: Guard | None = None, max_bytes: int | None = None) -> FetchResult:
        """Fetch ``url``, conditionally when ``state`` holds validators.

        ``page``: an HTML page is wanted (a listing to scrape, an article), not a feed.
        ``guard`` may refuse the URL and each redirect target before it is requested.
        ``max_bytes`` lowers the configured body cap for this fetch.
        """
        host = urlsplit(url).netloc.lower()
        per_host = self._hosts.setdefault(host, asyncio.Semaphore(self.limits.per_host))
        started = time.monotonic()
        async with self._global, per_host:
            try:
                async with asyncio.timeout(self.limits.total_timeout):
                    result = await self._fetch(url, state, page, guard, max_bytes)
            except TimeoutError:
                result = FetchResult(status=FetchStatus.NETWORK_ERROR, url=url,
                                     error=f"timed out after {self.limits.total_timeout:g}s")
            except httpx.HTTPError as e:
                result = FetchResult(status=FetchStatus.NETWORK_ERROR, url=url,
                                     error=_describe_http_error(e))
            except httpx.InvalidURL as e:
                result = FetchResult(status=FetchStatus.HTTP_ERROR, url=url,
                                     error=f"invalid URL refused ({e})")
        elapsed = time.monotonic() - started
        return replace(result, elapsed=elapsed)

    async def _fetch(self, url: str, state: SourceState | None, page: bool,
                     guard: Guard | None, max_bytes: int | None) -> FetchResult:
        assert self._client is not None, "Fetcher used outside 'async with'"
        headers: dict[str, str] = {"Accept": _PAGE_ACCEPT} if page else {}
        if state is not None:
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.last_modified:
                headers["If-Modified-Since"] = state.last_modified
        current, moved_to, permanent = url, None, True
        for _hop in range(self.limits.max_redirects + 1):
            refused = await guard(current) if guard is not None else None
            if refused is not None:
                return FetchResult(status=FetchStatus.HTTP_ERROR, url=current,
                                   error=f"refused: {refused}")
            async with self._client.stream("GET", current, headers=headers) as response:
                if response.status_code not in _REDIRECTS:
                    return await self._classify(response, current, moved_to, page, max_bytes)
                location = response.headers.get("location")
            if not location:
                return FetchResult(status=FetchStatus.HTTP_ERROR, url=current,
                                   http_status=response.status_code,
                                   error=f"HTTP {response.status_code} redirect without Location")
            target = urljoin(current, location)
            if urlsplit(target).scheme not in ("http", "https"):
                return FetchResult(status=FetchStatus.HTTP_ERROR, url=current,
                                   http_status=response.status_code,
                                   error=f"redirect to a non-HTTP URL refused: {target}")
            permanent = permanent and response.status_code in _PERMANENT
            if permanent:
                moved_to = target
            current = target
        return FetchResult(status=FetchStatus.HTTP_ERROR, url=current,
                           error=f"more than {self.limits.max_redirects} redirects")

    async def _classify(self, response: httpx.Response, url: str, moved_to: str | None,
                        page: bool, max_bytes: int | None) -> FetchResult:
        code = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        base = FetchResult(status=FetchStatus.OK, url=url, http_status=code, headers=headers,
                           moved_to=moved_to, max_age=_max_age(headers))
        reason = f"HTTP {code} {response.reason_phrase}".strip()
        if code == 304:
            # A 304 has no body, but until its end is read the connection is not
            # reusable: a warm poll would open one connection per source.
            await response.aread()
            return replace(base, status=FetchStatus.NOT_MODIFIED, etag=headers.get("etag"),
                           last_modified=headers.get("last-modified"))
        if code == 410:
            return replace(base, status=FetchStatus.GONE, error="HTTP 410 Gone")
        retry_after = _retry_after(headers.get("retry-after"))
        if code == 429 or (code == 503 and retry_after is not None):
            return replace(base, status=FetchStatus.RATE_LIMITED, retry_after=retry_after,
                           error=reason)
        if code != 200:
            return replace(base, status=FetchStatus.HTTP_ERROR, error=reason)
        cap = min(self.limits.max_body_bytes, max_bytes or self.limits.max_body_bytes)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            return replace(base, status=FetchStatus.TOO_LARGE,
                           error=f"body of {int(declared)} bytes exceeds the {cap}-byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                return replace(base, status=FetchStatus.TOO_LARGE,
                               error=f"body exceeds the {cap}-byte cap (after decompression)")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body or body.isspace():  # not strip(): that copies the whole body
            return replace(base, status=FetchStatus.NOT_A_FEED, error="empty body")
        if not page and _HTML_START.match(body[:4096]):
            return replace(base, status=FetchStatus.NOT_A_FEED, body=body,
                           error="an HTML page, not a feed")
        return replace(base, body=body, etag=headers.get("etag"),
                       last_modified=headers.get("last-modified"))


def _describe_http_error(error: httpx.HTTPError) -> str:
    kinds: list[tuple[type[httpx.HTTPError], str]] = [
        (httpx.ConnectTimeout, "connection timed out"),
        (httpx.ReadTimeout, "no data from the server for too long"),
        (httpx.ConnectError, "cannot connect"),
        (httpx.RemoteProtocolError, "the server broke the HTTP protocol or closed the connection"),
        (httpx.ReadError, "the connection was closed or reset while reading the response"),
        (httpx.WriteError, "the connection was closed or reset while sending the request"),
        (httpx.DecodingError, "the body could not be decompressed"),
        (httpx.UnsupportedProtocol, "unsupported URL scheme"),
    ]
    for kind, text in kinds:
        if isinstance(error, kind):
            detail = str(error)
            return f"{text} ({detail})" if detail else text
    return f"{type(error).__name__}: {error}"


def _retry_after(value: str | None, now: datetime | None = None) -> datetime | None:
    """``Retry-After`` (seconds or HTTP-date, RFC 9110 §10.2.3) as a UTC instant."""
    if not value:
        return None
    now = now or utcnow()
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=min(int(value), 7 * 86400))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.astimezone(UTC), now)


def _max_age(headers: dict[str, str]) -> int | None:
    """Freshness lifetime from ``Cache-Control: max-age`` or ``Expires`` (RFC 9111 §4.2.1)."""
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    if match:
        return int(match.group(1))
    expires = headers.get("expires")
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is not None:
            return max(0, int((when - utcnow()).total_seconds()))
    return None
