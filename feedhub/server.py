"""Serve rendered documents over HTTP (Starlette, run by uvicorn).

Only documents in the store are served (looked up by exact path, never from
the file system), with ``ETag``/``Last-Modified``, 304 answers to conditional
requests, and gzip when the client accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import json
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from feedhub.errors import FeedhubError
from feedhub.metrics import REGISTRY
from feedhub.model import Document, PollStatus
from feedhub.store import Store

_GZIP_MIN = 512
_GZIP_CACHE = 256
HealthCheck = Callable[[], Awaitable[dict[str, object]]]


class _GzipCache:
    """Compressed bodies by ETag, so a popular feed is compressed once per change."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, doc: Document) -> bytes:
        body = self._items.get(doc.etag)
        if body is None:
            body = gzip.compress(doc.body, compresslevel=6, mtime=0)
            self._items[doc.etag] = body
            while len(self._items) > _GZIP_CACHE:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(doc.etag)
        return body


def _http_date(value: datetime) -> str:
    return email.utils.format_datetime(value.replace(microsecond=0), usegmt=True)


def _not_modified(request: Request, doc: Document, etags: tuple[str, ...]) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        wanted = {tag.strip().removeprefix("W/") for tag in inm.split(",")}
        return any(tag in wanted for tag in etags)
    ims = request.headers.get("if-modified-since")
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


def create_app(store: Store, health: HealthCheck | None = None) -> Starlette:
    """The ASGI app serving ``store``'s documents, ``/healthz`` and ``/metrics``."""
    cache = _GzipCache()

    async def healthz(request: Request) -> Response:
        report = await (health or _store_health(store))()
        code = 200 if report.get("status") == "ok" else 503
        return Response(json.dumps(report, ensure_ascii=False), status_code=code,
                        media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def serve(request: Request) -> Response:
        doc = await store.document(document_path(request.url.path))
        if doc is None:
            return Response("Not Found\n", status_code=404, media_type="text/plain")
        gz_etag = doc.etag[:-1] + '-gz"'
        headers = {"Last-Modified": _http_date(doc.modified), "Vary": "Accept-Encoding",
                   "Cache-Control": "public, max-age=60"}
        use_gzip = (len(doc.body) >= _GZIP_MIN
                    and "gzip" in request.headers.get("accept-encoding", "").lower())
        headers["ETag"] = gz_etag if use_gzip else doc.etag
        if _not_modified(request, doc, (doc.etag, gz_etag)):
            return Response(status_code=304, headers=headers)
        body = cache.get(doc) if use_gzip else doc.body
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = doc.content_type
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(status_code=200, headers=headers)
        return Response(body, status_code=200, headers=headers)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/{path:path}", serve, methods=["GET", "HEAD"]),
    ])


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


class _Uvicorn(uvicorn.Server):
    # feedhub handles signals itself (reload, graceful stop).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn serving an app on a socket bound up front, so errors are ours to report."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self._app, self.host, self.port = app, host, port
        self._server: _Uvicorn | None = None
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
        except OSError as e:
            sock.close()
            raise ServeError(f"cannot listen on {self.host}:{self.port}") from e
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app, log_level="warning", access_log=False, lifespan="off",
                                server_header=False, timeout_graceful_shutdown=5)
        self._server = _Uvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise ServeError(f"the server on {self.host}:{self.port} stopped at startup")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop answering; in-flight responses get a few seconds to finish."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def wait(self) -> None:
        """Until the server stops by itself."""
        if self._task is not None:
            await self._task


async def serve(app: Starlette, host: str, port: int, stop: asyncio.Event) -> None:
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
