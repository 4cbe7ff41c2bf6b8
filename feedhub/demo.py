"""``feedhub demo``: feedhub working end to end on one machine, with no network.

Bundled sample sources (Chinese finance news written for the demo, plus the
seed article; package data in ``feedhub/demo_data``) are served from a local
server on 127.0.0.1. A temporary data folder gets a ``feeds.yaml`` naming
them; the sources are polled once through the real pipeline, and the merged
feeds and pages are served by the real HTTP server until ``SIGINT`` or
``SIGTERM``, when everything stops and the folder is deleted.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from feedhub.config import Config, load_config
from feedhub.fetch import Fetcher
from feedhub.model import PollOutcome, PollStatus
from feedhub.pipeline import Deps, poll_sources, republish
from feedhub.server import HttpServer, ServeError, create_app
from feedhub.store import Store, open_store

DEFAULT_LISTEN = ("127.0.0.1", 8080)
_TYPES = {".xml": "application/rss+xml", ".atom": "application/atom+xml"}


def demo_data() -> Traversable:
    """The bundled demo files: ``feeds.yaml`` (a template) and ``sources/``."""
    return resources.files("feedhub").joinpath("demo_data")


def source_app() -> Starlette:
    """Serves the bundled source feeds under ``/sources/``, and a page for their articles."""
    sources = demo_data().joinpath("sources")

    async def feed(request: Request) -> Response:
        name = request.path_params["name"]
        item = sources.joinpath(name)
        if "/" in name or name.startswith(".") or not item.is_file():
            return Response("not found\n", status_code=404, media_type="text/plain")
        return Response(item.read_bytes(), media_type=_TYPES.get(Path(name).suffix,
                                                                 "application/xml"))

    async def article(request: Request) -> Response:
        page = escape(request.path_params["name"])
        return Response(
            '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>演示文章</title>'
            f"<p>这是 feedhub 演示用的示例文章（{page}）：正文只存在于订阅源里，"
            "请回到 feedhub 的页面或订阅源阅读。</p></html>", media_type="text/html")

    return Starlette(routes=[Route("/sources/articles/{name}", article),
                             Route("/sources/{name}", feed)])


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoInfo:
    """What is running, for the command to print."""

    config: Config
    folder: Path
    base_url: str
    sources_url: str
    outcomes: list[PollOutcome]


def write_demo_config(folder: Path, *, sources_url: str, host: str, port: int) -> Path:
    """The bundled ``feeds.yaml`` with the sources' and the server's addresses filled in."""
    text = demo_data().joinpath("feeds.yaml").read_text(encoding="utf-8")
    text = (text.replace("@SOURCES@", sources_url.rstrip("/"))
            .replace("@BASE_URL@", f"http://{host}:{port}/")
            .replace("@LISTEN@", f"{host}:{port}"))
    path = folder / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def _start(server: HttpServer, *, fallback: bool) -> HttpServer:
    try:
        await server.start()
    except ServeError:
        if not fallback:
            raise
        server.port = 0  # the default port is taken: any free one will do
        await server.start()
    return server


async def run_demo(listen: tuple[str, int] | None,
                   on_ready: Callable[[DemoInfo], None]) -> None:
    """Run the demo until ``SIGINT``/``SIGTERM``; ``on_ready`` gets what to show the user.

    Raises:
        ServeError: the address given cannot be listened on.
        FeedhubError: the store or the configuration failed (a bug in the demo).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with tempfile.TemporaryDirectory(prefix="feedhub-demo-") as tmp:
            await _serve_demo(Path(tmp).resolve(), listen, on_ready, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _serve_demo(folder: Path, listen: tuple[str, int] | None,
                      on_ready: Callable[[DemoInfo], None], stop: asyncio.Event) -> None:
    sources = await _start(HttpServer(source_app(), "127.0.0.1", 0), fallback=False)
    store: Store | None = None
    server: HttpServer | None = None
    try:
        sources_url = f"http://127.0.0.1:{sources.port}/sources"
        store = await open_store(folder / "data" / "feedhub.sqlite3")
        host, port = listen or DEFAULT_LISTEN
        server = await _start(HttpServer(create_app(store), host, port), fallback=listen is None)
        shown_host = host if ":" not in host else f"[{host}]"
        config = load_config(write_demo_config(folder, sources_url=sources_url, host=shown_host,
                                               port=server.port))
        assert config.store_path == folder / "data" / "feedhub.sqlite3"
        async with Fetcher(config.site.base_url) as fetcher:
            outcomes = await poll_sources(Deps(config=config, store=store, fetcher=fetcher),
                                          config.sources)
        await republish(store, config, None, config.public_dir)
        on_ready(DemoInfo(config=config, folder=folder, base_url=config.site.base_url,
                          sources_url=sources_url, outcomes=outcomes))
        await stop.wait()
    finally:
        if server is not None:
            await server.stop()
        await sources.stop()
        if store is not None:
            await store.close()


def failed(outcomes: list[PollOutcome]) -> list[PollOutcome]:
    """Outcomes that did not succeed (none, unless the demo itself is broken)."""
    good = (PollStatus.OK, PollStatus.NOT_MODIFIED, PollStatus.UNCHANGED)
    return [o for o in outcomes if o.status not in good]
