"""A small real HTTP server that plays feed sources in tests."""

from __future__ import annotations

import gzip as gzip_module
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Route:
    """What the server answers for one path."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "application/rss+xml"
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    delay: float = 0.0
    #: Answer the first this many requests for the path with 503 (a receiver not up yet).
    fail_first: int = 0


@dataclass(frozen=True)
class Request:
    """One request the server saw; header names are lower-cased."""

    method: str
    path: str
    headers: Mapping[str, str]
    time: float
    body: bytes = b""
    #: The client's (host, port): requests sharing it came on one connection.
    client: tuple[str, int] = ("", 0)


def _strip_query(path: str) -> str:
    """Return the path without its query string."""
    return path.split("?", 1)[0]


def _etag_matches(etag: str, if_none_match: str) -> bool:
    """Weakly compare an ETag against an If-None-Match header value."""
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def _accepts_gzip(accept_encoding: str) -> bool:
    """Tell whether an Accept-Encoding value allows gzip."""
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _not_modified(route: Route, headers: Mapping[str, str]) -> bool:
    """Tell whether a conditional request can be answered with 304."""
    if route.status != 200:
        return False
    if route.etag is not None and "if-none-match" in headers:
        return _etag_matches(route.etag, headers["if-none-match"])
    if route.last_modified is not None and "if-none-match" not in headers:
        return headers.get("if-modified-since") == route.last_modified
    return False


class _Handler(BaseHTTPRequestHandler):
    """Answers requests from the routes of the owning FeedServer."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        """Answer a GET."""
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD: the GET headers, no body."""
        self._answer(send_body=False)

    def do_POST(self) -> None:
        """Answer a POST like a GET, keeping the request body in the log."""
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        """Log the request, then send the route's response."""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        length = int(headers.get("content-length", "0") or "0")
        body = self.rfile.read(length) if length > 0 else b""
        owner = self.server.owner
        owner._log(Request(self.command, self.path, headers, time.monotonic(), body,
                           (self.client_address[0], self.client_address[1])))
        route = owner._route(_strip_query(self.path))
        if route is None:
            route = Route(body=b"not found\n", status=404, content_type="text/plain")
        if route.delay > 0:
            time.sleep(route.delay)
        if len(owner.requests(self.path)) <= route.fail_first:
            route = Route(body=b"not yet\n", status=503, content_type="text/plain")
        self._send(route, headers, send_body)

    def _send(self, route: Route, headers: Mapping[str, str], send_body: bool) -> None:
        """Write status, headers and (unless 304 or HEAD) the body."""
        body = route.body
        gzipped = route.gzip and _accepts_gzip(headers.get("accept-encoding", ""))
        if gzipped:
            body = gzip_module.compress(body, mtime=0)
        not_modified = _not_modified(route, headers)
        self.send_response(304 if not_modified else route.status)
        if route.content_type is not None and not not_modified:
            self.send_header("Content-Type", route.content_type)
        if route.etag is not None:
            self.send_header("ETag", route.etag)
        if route.last_modified is not None:
            self.send_header("Last-Modified", route.last_modified)
        if route.gzip:
            self.send_header("Vary", "Accept-Encoding")
        if gzipped and not not_modified:
            self.send_header("Content-Encoding", "gzip")
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and not not_modified:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    """A threading server that knows its FeedServer."""

    daemon_threads = True

    def __init__(self, owner: FeedServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-request are expected in tests; stay quiet."""


class FeedServer:
    """Serves configurable routes on 127.0.0.1 and logs every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._log_entries: list[Request] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind a free port and serve in a daemon thread."""
        if self._server is not None:
            return
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The server's root URL, without a trailing slash."""
        if self._server is None:
            raise RuntimeError("FeedServer is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        return self.base_url + path

    def set(self, path: str, route: Route) -> None:
        """Add or replace the route for a path."""
        with self._lock:
            self._routes[_strip_query(path)] = route

    def serve_file(self, path: str, file: Path, **route_kwargs: Any) -> None:
        """Serve a file's bytes at a path; other Route fields as keywords."""
        self.set(path, Route(body=Path(file).read_bytes(), **route_kwargs))

    def requests(self, path: str | None = None) -> list[Request]:
        """Requests seen so far, optionally only those for one path."""
        with self._lock:
            entries = list(self._log_entries)
        if path is None:
            return entries
        wanted = _strip_query(path)
        return [r for r in entries if _strip_query(r.path) == wanted]

    def _route(self, path: str) -> Route | None:
        """The route for a path, if any."""
        with self._lock:
            return self._routes.get(path)

    def _log(self, request: Request) -> None:
        """Record one request."""
        with self._lock:
            self._log_entries.append(request)
