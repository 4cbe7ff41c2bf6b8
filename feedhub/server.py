"""Serve rendered documents over HTTP (plain ASGI and Starlette, run by granian).

Only documents in the store are served (looked up by exact path, never from
the file system), with ``ETag``/``Last-Modified``, 304 answers to conditional
requests, and gzip when the client accepts it: the compressed bytes as the store
keeps them, so a gzip answer costs no compression.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import json
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from feedhub.errors import FeedhubError
from feedhub.metrics import REGISTRY
from feedhub.model import Document, PollStatus
from feedhub.store import Store

if TYPE_CHECKING:  # imported where used: `feedhub poll` never loads the HTTP stack
    import granian.server.embed
    from starlette.requests import Request
    from starlette.responses import Response

#: Compressed bodies smaller than this are decompressed on the event loop (quicker
#: than handing them to a thread).
_INLINE_DECOMPRESS = 16 * 1024
T = TypeVar("T")
HealthCheck = Callable[[], Awaitable[dict[str, object]]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How long a cached document is served before the store is asked again (a
#: `feedhub poll` in another process is picked up within this).
RECHECK_SECONDS = 1.0
#: Memory for cached documents (their gzip, and bodies sent uncompressed), at most.
CACHE_BYTES = 64 * 1024 * 1024
_NOT_FOUND = b"Not Found\n"
#: Connections waiting to be accepted, at most.
BACKLOG = 2048
#: How long in-flight responses may take to finish once the server is told to stop.
STOP_SECONDS = 5


def _http_date(value: datetime) -> str:
    return email.utils.format_datetime(value.replace(microsecond=0), usegmt=True)


@dataclass(slots=True)
class _Cached:
    """A document as served: its gzip as stored, lazily the uncompressed body, and the
    headers of each answer."""

    doc: Document
    gz_etag: str
    checked: float
    headers: list[tuple[bytes, bytes]]
    gz_headers: list[tuple[bytes, bytes]]
    plain: bytes | None = None

    @classmethod
    def of(cls, doc: Document, now: float) -> _Cached:
        gz_etag = doc.etag[:-1] + '-gz"'
        common = [(b"last-modified", _http_date(doc.modified).encode()),
                  (b"vary", b"Accept-Encoding"), (b"cache-control", b"public, max-age=60")]
        return cls(doc=doc, gz_etag=gz_etag, checked=now,
                   headers=[*common, (b"etag", doc.etag.encode("latin-1"))],
                   gz_headers=[*common, (b"etag", gz_etag.encode("latin-1"))])

    @property
    def size(self) -> int:
        return len(self.doc.gzipped) + len(self.plain or b"")


class DocumentCache:
    """Rendered documents in memory, so a request does not read the store.

    An entry is served for :data:`RECHECK_SECONDS`, then read again from the store
    (by one request; the others keep serving it meanwhile) and kept — with its body —
    when its ETag did not change. Least recently used entries go beyond ``max_bytes``.
    """

    def __init__(self, store: Store, *, recheck: float = RECHECK_SECONDS,
                 max_bytes: int = CACHE_BYTES) -> None:
        self._store = store
        self._recheck = recheck
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, _Cached] = OrderedDict()
        self._bytes = 0
        self._refreshing: set[str] = set()

    async def get(self, path: str) -> _Cached | None:
        now = time.monotonic()
        item = self._items.get(path)
        if item is not None and (now - item.checked < self._recheck or path in self._refreshing):
            self._items.move_to_end(path)
            return item
        self._refreshing.add(path)
        try:
            doc = await self._store.document(path)
        finally:
            self._refreshing.discard(path)
        item = self._items.get(path)  # may have changed while the store answered
        if doc is None:
            self._drop(path)
            return None
        if item is not None and item.doc.etag == doc.etag:
            item.checked = now
            return item
        self._drop(path)
        fresh = _Cached.of(doc, now)
        self._put(path, fresh)
        return fresh

    async def plain(self, path: str, item: _Cached) -> bytes:
        """The uncompressed body, for a client that does not accept gzip."""
        if item.plain is None:
            gzipped = item.doc.gzipped
            body = (gzip.decompress(gzipped) if len(gzipped) < _INLINE_DECOMPRESS
                    else await asyncio.to_thread(gzip.decompress, gzipped))
            if item.plain is None:
                item.plain = body
                if self._items.get(path) is item:
                    self._bytes += len(body)
                    self._evict()
        return item.plain

    def _put(self, path: str, item: _Cached) -> None:
        if item.size > self._max_bytes // 4:
            return  # too large to keep: served, not cached
        self._items[path] = item
        self._bytes += item.size
        self._evict()

    def _drop(self, path: str) -> None:
        old = self._items.pop(path, None)
        if old is not None:
            self._bytes -= old.size

    def _evict(self) -> None:
        while self._bytes > self._max_bytes and self._items:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.size


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _not_modified(scope: Scope, doc: Document, etags: tuple[str, ...]) -> bool:
    inm = _header(scope, b"if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        wanted = {tag.strip().removeprefix("W/") for tag in inm.split(",")}
        return any(tag in wanted for tag in etags)
    ims = _header(scope, b"if-modified-since")
    if ims:
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and doc.modified.replace(microsecond=0) <= since
    return False


def document_path(url_path: str) -> str:
    """The document a URL path names: ``/`` is ``index.html``."""
    path = url_path.lstrip("/")
    return path or "index.html"


class FeedhubApp:
    """The ASGI app: documents from a :class:`DocumentCache`, ``/healthz`` and ``/metrics``.

    Documents are answered by plain ASGI messages with headers built once per
    document version; the two other endpoints go through Starlette.
    """

    def __init__(self, store: Store, health: HealthCheck | None = None) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        self.cache = DocumentCache(store)

        async def healthz(request: Request) -> Response:
            report = await (health or _store_health(store))()
            code = 200 if report.get("status") == "ok" else 503
            return Response(json.dumps(report, ensure_ascii=False), status_code=code,
                            media_type="application/json")

        async def metrics(request: Request) -> Response:
            return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

        self._other: ASGIApp = Starlette(routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/metrics", metrics, methods=["GET"]),
        ])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/healthz", "/metrics"):
            await self._other(scope, receive, send)
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _answer(send, 405, [(b"allow", b"GET, HEAD"),
                                      (b"content-type", b"text/plain; charset=utf-8")],
                          b"Method Not Allowed", head=False)
            return
        path = document_path(scope["path"])
        item = await self.cache.get(path)
        if item is None:
            await _answer(send, 404, [(b"content-type", b"text/plain; charset=utf-8")],
                          _NOT_FOUND, head=method == "HEAD")
            return
        doc = item.doc
        accept = _header(scope, b"accept-encoding")
        use_gzip = accept is not None and "gzip" in accept.lower()
        headers = item.gz_headers if use_gzip else item.headers
        if _not_modified(scope, doc, (doc.etag, item.gz_etag)):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = doc.gzipped if use_gzip else await self.cache.plain(path, item)
        extra = [(b"content-type", doc.content_type.encode("latin-1"))]
        if use_gzip:
            extra.append((b"content-encoding", b"gzip"))
        await _answer(send, 200, [*headers, *extra], body, head=method == "HEAD")


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  *, head: bool) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": b"" if head else body})


def create_app(store: Store, health: HealthCheck | None = None) -> FeedhubApp:
    """The ASGI app serving ``store``'s documents, ``/healthz`` and ``/metrics``."""
    return FeedhubApp(store, health)


def _store_health(store: Store) -> HealthCheck:
    async def check() -> dict[str, object]:
        try:
            await store.ping()
            writable = True
        except Exception:  # any failure means "not healthy", reported, not raised
            writable = False
        states = await store.source_states() if writable else []
        failing = sum(1 for s in states if s.last_status in (PollStatus.ERROR,
                                                              PollStatus.RATE_LIMITED))
        gone = sum(1 for s in states if s.last_status == PollStatus.GONE)
        return {"status": "ok" if writable else "unhealthy", "store_writable": writable,
                "sources": {"total": len(states), "ok": len(states) - failing - gone,
                            "failing": failing, "gone": gone}}
    return check


class ServeError(FeedhubError):
    """The HTTP server could not start."""


def _granian_server(app: ASGIApp, sock: socket.socket, backlog: int) -> granian.server.embed.Server:
    from granian._granian import SocketHolder
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    class _Granian(Server):
        # Serve on the socket bound by HttpServer: granian's own bind sets SO_REUSEPORT, so a
        # second server on a port in use would share it instead of failing.
        def _init_shared_socket(self) -> None:
            # The stub lacks the constructor (fd, is_uds, backlog); the holder owns the fd.
            self._shd = SocketHolder(sock.detach(), False, backlog)  # type: ignore[call-arg,assignment]

    # granian configures the `_granian` logger globally: route it to feedhub's handlers, and
    # keep its start-up notices ("embedded server is experimental") out of the log.
    log = {"version": 1, "disable_existing_loggers": False, "formatters": {}, "handlers": {},
           "loggers": {"_granian": {"level": "ERROR"}}}
    server = _Granian(app, interface=Interfaces.ASGINL, http=HTTPModes.http1, websockets=False,
                      backlog=backlog, log_level=LogLevels.error, log_dictconfig=log)
    server.workers_kill_timeout = STOP_SECONDS
    return server


class HttpServer:
    """granian (a Rust HTTP/1.1 server) running an ASGI app on the current event loop.

    The socket is bound up front, so errors are ours to report.
    """

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._app, self.host, self.port = app, host, port
        self._server: granian.server.embed.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and start answering.

        Raises:
            ServeError: the address cannot be bound.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(BACKLOG)
        except OSError as e:
            sock.close()
            raise ServeError(f"cannot listen on {self.host}:{self.port}") from e
        self.port = sock.getsockname()[1]
        self._server = _granian_server(self._app, sock, BACKLOG)
        self._task = asyncio.create_task(self._server.serve())
        await asyncio.sleep(0)  # let it start; connections wait in the backlog meanwhile
        if self._task.done():
            self._task.result()
            raise ServeError(f"the server on {self.host}:{self.port} stopped at startup")

    async def stop(self) -> None:
        """Stop answering; in-flight responses get a few seconds to finish."""
        if self._server is not None and self._task is not None:
            self._server.stop()  # type: ignore[no-untyped-call]
            # Raised when responses were still in flight after STOP_SECONDS; they are dropped.
            with contextlib.suppress(TimeoutError):
                await self._task

    async def wait(self) -> None:
        """Until the server stops by itself."""
        if self._task is not None:
            await self._task


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed: a faster loop for serving."""
    try:
        import uvloop
    except ImportError:  # an optional speed-up
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def serve(app: ASGIApp, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set.

    Raises:
        ServeError: the address cannot be bound.
    """
    server = HttpServer(app, host, port)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
