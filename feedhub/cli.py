"""The ``feedhub`` command line: check, poll, build, serve, status.

Exit codes: 0 success, 2 bad configuration or usage, 1 anything else.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from feedhub import __version__
from feedhub.config import DEFAULT_PATH, Config, SavedSearch, Source, load_config
from feedhub.errors import ConfigError, FeedhubError
from feedhub.log import setup_logging
from feedhub.model import SourceState, utcnow
from feedhub.store.base import POLL_HISTORY

# Each command imports what only it needs (the HTTP client, the parser, the renderer,
# the server, rich…) when it runs: `feedhub --help`, `check` or a poll of 304s should
# not pay for every other command's libraries.
if TYPE_CHECKING:
    from feedhub.demo import DemoInfo
    from feedhub.discover import Discovery, Probe
    from feedhub.edit import Edit, NewCategory
    from feedhub.filters import EntryFilter
    from feedhub.model import PollOutcome, StoredEntry
    from feedhub.report import StatusRow
    from feedhub.store import Store
    from feedhub.store.base import PollRecord

T = TypeVar("T")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _handles_errors(func: Callable[..., None]) -> Callable[..., None]:
    """Map feedhub errors to messages and exit codes, never a traceback."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except ConfigError as e:
            click.echo(f"feedhub: invalid configuration:\n{e}", err=True)
            sys.exit(EXIT_USAGE)
        except FeedhubError as e:
            click.echo(f"feedhub: {e}", err=True)
            sys.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            sys.exit(130)
    return wrapper


def _config(ctx: click.Context) -> Config:
    cfg: Config = ctx.obj["config"] if "config" in ctx.obj else load_config(ctx.obj["path"])
    ctx.obj["config"] = cfg
    return cfg


async def _with_store(config: Config, work: Callable[[Store], Awaitable[T]]) -> T:
    from feedhub.store import open_store

    store = await open_store(config.store_url, pool_size=config.storage.pool_size)
    try:
        return await work(store)
    finally:
        await store.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), envvar="FEEDHUB_CONFIG",
              default=DEFAULT_PATH, show_default=True, help="feeds.yaml to use ($FEEDHUB_CONFIG).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default: WARNING; "
              "for run, server.log_level).",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.version_option(__version__, prog_name="feedhub")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, log_level: str | None) -> None:
    """feedhub: follow RSS/Atom sources and republish them as merged per-category feeds."""
    setup_logging(log_level or "WARNING")
    ctx.ensure_object(dict)
    ctx.obj["path"] = config_path
    ctx.obj["log_level"] = log_level


@cli.command()
@click.pass_context
@_handles_errors
def check(ctx: click.Context) -> None:
    """Validate feeds.yaml; exit 0, or 2 with the errors."""
    config = _config(ctx)
    click.echo(f"{config.path}: ok — {len(config.categories)} categories, "
               f"{len(config.sources)} sources")


@cli.command()
@click.option("--source", "source_url", metavar="URL", help="Poll only this source.")
@click.option("--force", is_flag=True, help="Poll gone and rate-limited sources too, and "
              "re-read unchanged bodies.")
@click.pass_context
@_handles_errors
def poll(ctx: click.Context, source_url: str | None, force: bool) -> None:
    """Fetch every (or one) source now, store, and republish what changed.

    On a terminal: a progress bar, then a table of what changed or failed.
    Otherwise: one line per source and a total.
    """
    from feedhub.fetch import Fetcher, limits_for
    from feedhub.pipeline import Deps, changed_categories, poll_sources, record_quiet, republish
    from feedhub.publish.websub import announce_now
    from feedhub.summary import describe_outcome, is_terminal, poll_total
    from feedhub.workers import worker_pool

    config = _config(ctx)
    sources = config.sources
    if source_url is not None:
        sources = tuple(s for s in sources if s.url == source_url)
        if not sources:
            raise click.UsageError(f"no source with URL {source_url} in {config.path}")

    async def work(store: Store) -> list[PollOutcome]:
        # Parsing and rendering run in a process per core.
        with worker_pool() as workers:
            async with Fetcher(config.site.base_url, limits_for(config.fetch)) as fetcher:
                deps = Deps(config=config, store=store, fetcher=fetcher, workers=workers)
                outcomes = await poll_sources(deps, sources, force=force,
                                              on_done=progress.done if progress else None)
            slugs = changed_categories(config, outcomes)
            if await record_quiet(store, config, utcnow()):
                slugs.add("_health")
            if slugs or not await store.document_paths("feeds/all.atom"):
                changed = await republish(store, config, slugs or None, config.public_dir,
                                          workers=workers)
                await announce_now(config, changed)
        return outcomes

    console = progress = None
    if is_terminal():  # Rich (its progress bar and tables) only for a terminal
        from feedhub.report import PollProgress, make_console

        console = make_console()
        progress = PollProgress(console, len(sources)) if console.is_terminal else None
    with progress or nullcontext():
        outcomes = _run(_with_store(config, work))
    if console is not None and console.is_terminal:
        from feedhub.report import render_poll_summary

        render_poll_summary(console, outcomes)
        return
    for o in outcomes:
        click.echo(describe_outcome(o))
    click.echo(poll_total(outcomes))


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder to write into (default: <data_dir>/public).")
@click.pass_context
@_handles_errors
def build(ctx: click.Context, out_dir: Path | None) -> None:
    """Render every output from the store into a folder, each file atomically."""
    from feedhub.pipeline import republish
    from feedhub.publish.static import write_stored
    from feedhub.workers import worker_pool

    config = _config(ctx)
    target = out_dir or config.public_dir

    async def work(store: Store) -> int:
        with worker_pool() as workers:
            await republish(store, config, workers=workers)
        return await write_stored(store, await store.document_paths(), target)

    count = _run(_with_store(config, work))
    click.echo(f"wrote {count} files to {target}")


def _listen(value: str | None, config: Config) -> tuple[str, int]:
    if value is None:
        return config.listen_host, config.listen_port
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("use HOST:PORT, such as 127.0.0.1:8080", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


@cli.command("serve")
@click.option("--listen", metavar="HOST:PORT", help="Address to listen on (default: server.listen).")
@click.pass_context
@_handles_errors
def serve_command(ctx: click.Context, listen: str | None) -> None:
    """Serve the outputs over HTTP, without polling."""
    from feedhub.pipeline import republish
    from feedhub.server import create_app, run_loop, serve

    config = _config(ctx)
    host, port = _listen(listen, config)

    async def work(store: Store) -> None:
        if not await store.document_paths("feeds/all.atom"):
            await republish(store, config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"serving {config.site.title} on http://{host}:{port}/", err=True)
        await serve(create_app(store), host, port, stop)

    run_loop(_with_store(config, work))


@cli.command("run")
@click.option("--listen", metavar="HOST:PORT", help="Address to listen on (default: server.listen).")
@click.option("--tick", "tick_every", type=click.FloatRange(min=0.2), default=5.0, show_default=True,
              hidden=True, help="Seconds between checks for due sources.")
@click.option("--spread", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              hidden=True, help="Seconds over which never-polled sources get their first poll.")
@click.pass_context
@_handles_errors
def run_command(ctx: click.Context, listen: str | None, tick_every: float, spread: float) -> None:
    """The daemon: poll sources on schedule and serve the outputs (systemd notify aware)."""
    from feedhub.daemon import DaemonOptions, run

    config = _config(ctx)
    if ctx.obj.get("log_level") is None:
        setup_logging(config.log_level)
    options = DaemonOptions(config_path=ctx.obj["path"], listen=_listen(listen, config) if listen
                            else None, tick_every=tick_every,
                            first_poll_window=timedelta(seconds=spread))
    _run(run(options))


@cli.command()
@click.argument("source", metavar="[URL|NAME]", required=False)
@click.option("--category", "slug", metavar="SLUG", help="Only the sources of this category.")
@click.option("--limit", type=click.IntRange(1, POLL_HISTORY), default=20, show_default=True,
              help="With URL|NAME: how many past polls to show.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output (a stable schema, listed in the README).")
@click.pass_context
@_handles_errors
def status(ctx: click.Context, source: str | None, slug: str | None, limit: int,
           as_json: bool) -> None:
    """One row per source: last poll, result, new entries, next poll, error.

    Failing and gone sources are highlighted. With URL|NAME, that source's
    details and its last polls (up to 50 are kept) instead.
    """
    from feedhub.report import StatusRow, make_console, render_history, render_status

    config = _config(ctx)
    if slug is not None:
        _check_category(config, slug)
    sources = config.sources_in(slug) if slug else config.sources
    if source is not None:
        sources = (_find_source(config, source),)
    now = utcnow()

    async def work(store: Store) -> tuple[list[StatusRow], list[PollRecord]]:
        states = {s.url: s for s in await store.source_states()}
        counts = await store.entry_counts()
        fresh = await store.new_entries_since(now - timedelta(hours=24))
        flt = config.entry_filter()
        rows = [StatusRow(source=s, state=states.get(s.url), entries=counts.get(s.url, 0),
                          new_24h=fresh.get(s.url, 0),
                          filtered=await _filtered(store, flt, s.url) if flt.filters(s.url)
                          else {})
                for s in sources]
        history = await store.poll_history(sources[0].url, limit) if source is not None else []
        return rows, history

    rows, history = _run(_with_store(config, work))
    if as_json:
        data: Any = [r.as_json() for r in rows]
        if source is not None:
            data = {"source": data[0], "history": [
                {"at": p.at.isoformat(), "status": p.status, "http_status": p.http_status,
                 "new": p.new, "updated": p.updated, "error": p.error} for p in history]}
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = make_console()
    if source is not None:
        render_history(console, rows[0], history, now, config.site.timezone)
    else:
        render_status(console, rows, now, f"{config.site.title} — {config.path}")


@cli.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--category", "slugs", metavar="SLUG", multiple=True,
              help="Only entries of this category (repeat for several).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%d %H:%M"]),
              help="Only entries published on or after this date (YYYY-MM-DD or "
              "'YYYY-MM-DD HH:MM', in site.timezone).")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="How many entries to show, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry, in a list.")
@click.pass_context
@_handles_errors
def search(ctx: click.Context, query: tuple[str, ...], slugs: tuple[str, ...],
           since: datetime | None, limit: int, as_json: bool) -> None:
    """Search stored entries: words all found, OR between alternatives, -word excluded.

    Words match anywhere in a title or text (no word boundaries, so 腾讯 and
    600519 work); "quoted phrases" keep spaces. Quote the whole query when it
    has an exclusion: feedhub search '腾讯 -广告'. Entries the filters drop are
    not shown, as they are not republished.
    """
    from feedhub.search import parse_query

    config = _config(ctx)
    text = " ".join(query)
    try:
        parsed = parse_query(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="QUERY") from None
    for slug in slugs:
        _check_category(config, slug)
    after = since.replace(tzinfo=config.site.timezone) if since else None
    wanted = SavedSearch(name="search", query=parsed, title=text, description="",
                         categories=slugs)

    async def work(store: Store) -> list[StoredEntry]:
        from feedhub.render.site import search_kept

        return await search_kept(store, config, wanted, limit, config.entry_filter(), after)

    found = _run(_with_store(config, work))
    tz = config.site.timezone
    categories = {s.url: s.category for s in config.sources}
    if as_json:
        click.echo(json.dumps([{"title": hit.title, "link": hit.link, "source": hit.source_url,
                                "category": categories.get(hit.source_url),
                                "published": hit.published.astimezone(tz).isoformat()}
                               for hit in found], ensure_ascii=False, indent=2))
        return
    for hit in found:
        category = categories.get(hit.source_url)
        label = config.categories[category].title if category else ""
        click.echo(f"{hit.published.astimezone(tz):%Y-%m-%d %H:%M}  [{label}] {hit.title}")
        click.echo(f"    {hit.link or hit.source_url}")
    click.echo(f"{_entries(len(found))} found for {parsed.text}", err=True)


def _check_category(config: Config, slug: str) -> None:
    """Refuse a --category that feeds.yaml does not define, naming the ones it does."""
    if slug not in config.categories:
        raise click.BadParameter(f"no category {slug!r} in {config.path}; use one of: "
                                 f"{', '.join(config.categories)}", param_hint="--category")


async def _filtered(store: Store, flt: EntryFilter, url: str) -> dict[str, int]:
    """How many of a source's stored entries each rule keeps out of the outputs."""
    counts: dict[str, int] = {}
    offset, batch = 0, 1000
    while True:
        rows = await store.latest_entries([url], batch, offset)
        for entry in rows:
            if (rule := flt.dropped_by(entry)) is not None:
                counts[rule] = counts.get(rule, 0) + 1
        if len(rows) < batch:
            return counts
        offset += batch


def _find_source(config: Config, key: str) -> Source:
    """The configured source with this URL (or fallback URL) or name.

    Raises:
        click.UsageError: none, or several names match.
    """
    url = _expand(key.strip(), config)
    found = config.source(url) or next((s for s in config.sources if url in s.fallbacks), None)
    if found is not None:
        return found
    named = [s for s in config.sources if s.name == key]
    if len(named) == 1:
        return named[0]
    if named:
        raise click.UsageError(f"{len(named)} sources are named {key!r}; give the URL: "
                               + ", ".join(s.url for s in named))
    raise click.UsageError(f"no source with URL or name {key!r} in {config.path}")


# --- editing feeds.yaml: add, remove -----------------------------------------------------------

_FORMATS = {"rss20": "RSS 2.0", "rss10": "RSS 1.0", "rss090": "RSS 0.90", "rss091u": "RSS 0.91",
            "rss091n": "RSS 0.91", "rss092": "RSS 0.92", "rss093": "RSS 0.93", "rss094": "RSS 0.94",
            "atom10": "Atom 1.0", "atom03": "Atom 0.3", "json10": "JSON Feed 1.0",
            "json11": "JSON Feed 1.1"}


class _Refused(Exception):
    """The command cannot do what was asked; its message is for the operator."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _refuses(func: Callable[..., None]) -> Callable[..., None]:
    """Report :class:`_Refused` as ``feedhub: message`` with its exit code."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except _Refused as e:
            click.echo(f"feedhub: {e}", err=True)
            sys.exit(e.code)
    return wrapper


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _expand(url: str, config: Config) -> str:
    if url.startswith("rsshub:"):
        return config.site.rsshub + url.removeprefix("rsshub:").lstrip("/")
    return url


def _add_category(config: Config, slug: str | None, new_slug: str | None,
                  label: str | None) -> tuple[str | None, NewCategory | None]:
    """The category a new source goes to (``None``: ask, after the feed is shown), and the
    category to create for it, if any."""
    if label is not None and new_slug is None:
        raise _Refused("--label names a new category: use it with --new-category SLUG")
    if new_slug is not None:
        if slug is not None:
            raise _Refused("use either --category (an existing category) or --new-category")
        if new_slug in config.categories:
            raise _Refused(f"category {new_slug!r} already exists in {config.path}: "
                           f"use --category {new_slug}")
        if not label:
            raise _Refused(f"--new-category {new_slug} needs --label, the label its entries are "
                           "tagged with (e.g. --label 证券时报网新闻)")
        from feedhub.edit import NewCategory

        return new_slug, NewCategory(slug=new_slug, title=label)
    choices = ", ".join(f"{c.slug} ({c.title})" for c in config.categories.values())
    if slug is not None:
        if slug not in config.categories:
            raise _Refused(f"unknown category {slug!r}; use one of: {choices} — or create one "
                           f"with --new-category {slug} --label LABEL")
        return slug, None
    if len(config.categories) == 1:
        return next(iter(config.categories)), None
    if not _interactive():
        raise _Refused(f"--category is required: one of {choices} (or --new-category SLUG "
                       "--label LABEL)")
    return None, None


def _ask_category(config: Config) -> str:
    slugs = list(config.categories)
    click.echo(f"Categories in {config.path} (--category SLUG skips this question):")
    for i, c in enumerate(config.categories.values(), 1):
        click.echo(f"  {i}. {c.slug} — {c.title}")
    return slugs[click.prompt("Add it to category", type=click.IntRange(1, len(slugs))) - 1]


def _refuse_duplicate(config: Config, url: str) -> None:
    existing = config.source(_expand(url, config))
    if existing is not None:
        raise _Refused(f"{url} is already in {config.path} (category {existing.category}"
                       + (f", name {existing.name}" if existing.name else "") + ")")


def _pick_feed(discovery: Discovery, url: str) -> Probe:
    """The one feed to add: the URL itself, the only feed its page leads to, or the operator's pick."""
    if discovery.feeds and not discovery.page:
        return discovery.feeds[0]
    start = discovery.start
    if not discovery.page:
        reason = start.error or "not a feed"
        raise _Refused(f"cannot add {url}: {reason}", EXIT_FAILURE)
    if not discovery.feeds:
        tried = "\n".join(f"  {p.url}: {p.error}" for p in discovery.tried)
        raise _Refused(f"{url} is a web page and no feed was found behind it; tried:\n{tried}\n"
                       "Give the feed's URL instead.", EXIT_FAILURE)
    feeds = discovery.feeds
    click.echo(f"{url} is a web page; it leads to {len(feeds)} feed{'s' if len(feeds) > 1 else ''}:")
    for i, probe in enumerate(feeds, 1):
        assert probe.feed is not None
        click.echo(f"  {i}. {probe.title} — {probe.feed_url} "
                   f"({_FORMATS.get(probe.feed.version, probe.feed.version)}, "
                   f"{_entries(len(probe.feed.entries))})")
    if len(feeds) == 1:
        return feeds[0]
    if not _interactive():
        raise _Refused("several feeds found: run again with the one to add, e.g.\n"
                       f"  feedhub add {feeds[0].feed_url}", EXIT_FAILURE)
    return feeds[click.prompt("Which feed", type=click.IntRange(1, len(feeds))) - 1]


def _show_feed(probe: Probe, config: Config, count: int = 5) -> None:
    feed = probe.feed
    assert feed is not None
    click.echo(click.style(f"Feed: {probe.title}", bold=True)
               + f"  ({_FORMATS.get(feed.version, feed.version)}, {_entries(len(feed.entries))})")
    click.echo(f"  {probe.feed_url}")
    if probe.fetched.moved_to:
        click.echo(f"  ({probe.url} moved permanently here: the new address is the one added)")
    if not feed.entries:
        click.echo("  It has no entries yet.")
        return
    click.echo("Latest entries:")
    epoch = datetime.min.replace(tzinfo=config.site.timezone)
    latest = sorted(feed.entries, key=lambda e: e.published or e.updated or epoch, reverse=True)
    for e in latest[:count]:
        when = e.published or e.updated
        stamp = when.astimezone(config.site.timezone).strftime("%Y-%m-%d %H:%M") if when \
            else "(no date)       "
        click.echo(f"  {stamp}  {e.title or '(no title)'}")


def _apply(config: Config, old_text: str, edit: Edit, yes: bool, verb: str) -> bool:
    """Show the change, ask unless ``yes`` or not interactive, write it; whether it was written."""
    click.echo(f"{verb} {config.path} (line {edit.line}):")
    for line in edit.lines:
        click.echo(click.style(("+ " if verb == "Adding to" else "- ") + line,
                               fg="green" if verb == "Adding to" else "red"))
    from feedhub.edit import write_atomically

    if not yes and _interactive() and not click.confirm("Write this change?", default=True):
        click.echo("Nothing written.")
        return False
    write_atomically(config.path, edit.text, expected=old_text)
    return True


def _reload_daemon(config: Config) -> None:
    from feedhub.pidfile import reload_daemon

    click.echo(reload_daemon(config.site.data_dir).message)


def _edit(config: Config, make: Callable[[str], Edit]) -> tuple[str, Edit]:
    """The file's text and the edit ``make`` derives from it; an invalid result is refused."""
    from feedhub.edit import read_text

    text = read_text(config.path)
    try:
        return text, make(text)
    except ConfigError as e:
        raise _Refused(f"the change would make {config.path} invalid, so nothing was "
                       f"written:\n{e}") from None


@cli.command("add")
@click.argument("url")
@click.option("--category", "slug", metavar="SLUG",
              help="Category to add it to (default: the only one; asked on a terminal).")
@click.option("--new-category", "new_slug", metavar="SLUG",
              help="Create this category for it (needs --label).")
@click.option("--label", metavar="LABEL",
              help="The new category's title: the label its entries are tagged with, e.g. 证券时报网新闻.")
@click.option("--name", help="A name for the source (default: the feed's own title).")
@click.option("--interval", metavar="DURATION",
              help="How often to poll it: 30s, 15m, 2h, 1d (default: defaults.interval).")
@click.option("--encoding", metavar="CHARSET",
              help="Read it in this charset when it declares a wrong one, e.g. gb18030.")
@click.option("-y", "--yes", is_flag=True,
              help="Write without asking (never asked when not on a terminal).")
@click.pass_context
@_handles_errors
@_refuses
def add_command(ctx: click.Context, url: str, slug: str | None, new_slug: str | None,
                label: str | None, name: str | None, interval: str | None, encoding: str | None,
                yes: bool) -> None:
    """Add a source to feeds.yaml, after checking that its feed works.

    URL is a feed, or a web page: its feeds are discovered from its <link
    rel="alternate"> tags, else at the usual /feed, /rss, /atom.xml,
    /index.xml … paths, and listed to choose from (off a terminal, the command
    stops and asks to be run again with the feed's URL, unless there is only
    one). The feed is fetched and parsed like a poll would; its title and
    latest entries are shown. The source is appended to sources: with every
    comment and line of the file kept. Duplicates and unknown categories are
    refused (exit 2). A running daemon is told to reload.
    """
    from feedhub.discover import discover
    from feedhub.edit import NewSource
    from feedhub.edit import add as add_to_config
    from feedhub.fetch import Fetcher, limits_for

    config = _config(ctx)
    _refuse_duplicate(config, url)
    category, new_category = _add_category(config, slug, new_slug, label)
    click.echo(f"Fetching {url} …")

    async def find() -> Discovery:
        async with Fetcher(config.site.base_url, limits_for(config.fetch)) as fetcher:
            return await discover(fetcher, _expand(url, config), config.site.timezone,
                                  encoding=encoding)

    discovery = _run(find())
    probe = _pick_feed(discovery, url)
    feed_url = url if probe is discovery.start and not probe.fetched.moved_to else probe.feed_url
    if feed_url != url:
        _refuse_duplicate(config, feed_url)
    _show_feed(probe, config)
    category = category or _ask_category(config)
    source = NewSource(url=feed_url, category=category, name=name, interval=interval,
                       encoding=encoding)
    text, edit = _edit(config, lambda text: add_to_config(
        text, config.path, sources=[source], categories=[new_category] if new_category else []))
    if not _apply(config, text, edit, yes, "Adding to"):
        return
    label_text = new_category.title if new_category else config.categories[category].title
    click.echo(click.style(f"Added {feed_url} to {config.path}", fg="green", bold=True)
               + f" (category {category}, {label_text}"
               + (", new" if new_category else "") + ").")
    _reload_daemon(config)


@cli.command("remove")
@click.argument("source", metavar="URL|NAME")
@click.option("-y", "--yes", is_flag=True,
              help="Write without asking (never asked when not on a terminal).")
@click.pass_context
@_handles_errors
@_refuses
def remove_command(ctx: click.Context, source: str, yes: bool) -> None:
    """Remove a source from feeds.yaml (the reverse of add), keeping the rest of the file.

    The source is found by its URL or its name. Its stored entries stay until
    `feedhub prune --orphans`; a running daemon is told to reload.
    """
    from feedhub.edit import remove as remove_from_config

    config = _config(ctx)
    try:
        found = _find_source(config, source)
    except click.UsageError as e:
        raise _Refused(e.message) from None
    index = config.sources.index(found)
    text, edit = _edit(config, lambda text: remove_from_config(text, config.path, [index]))
    if not _apply(config, text, edit, yes, "Removing from"):
        return
    click.echo(click.style(f"Removed {found.url} from {config.path}", fg="green", bold=True)
               + "; its stored entries stay until `feedhub prune --orphans`.")
    _reload_daemon(config)


# --- OPML: import-opml, export-opml --------------------------------------------------------------


@cli.command("import-opml")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--category", "slug", metavar="SLUG",
              help="Put every feed in this category (created if missing) instead of one "
                   "category per folder.")
@click.option("--label", metavar="LABEL",
              help="With --category: the title of that category if it is created.")
@click.option("--dry-run", is_flag=True, help="Show what would be added; write nothing.")
@click.option("-y", "--yes", is_flag=True,
              help="Write without asking (never asked when not on a terminal).")
@click.pass_context
@_handles_errors
@_refuses
def import_opml_command(ctx: click.Context, file: Path, slug: str | None, label: str | None,
                        dry_run: bool, yes: bool) -> None:
    """Add the feeds of an OPML file (a feed reader's export) to feeds.yaml.

    Each feed's innermost folder becomes its category: an existing one with
    the folder's name as title (or slug), else a new one titled like the
    folder — ASCII names become slugs (Tech News → tech-news), others a
    stable cat-<hash>. Feeds in no folder go to 'uncategorized'. Feeds
    already configured, listed twice, or without an xmlUrl are skipped and
    listed. The feeds are not fetched: `feedhub poll` reports any that fail.
    A running daemon is told to reload.
    """
    from feedhub.edit import add as add_to_config
    from feedhub.edit import write_atomically
    from feedhub.opml import plan_import, read_opml

    config = _config(ctx)
    if label is not None and slug is None:
        raise _Refused("--label titles the category given with --category")
    doc = read_opml(file.read_bytes())
    plan = plan_import(doc, config, category=slug, label=label)
    click.echo(f"{file}: {doc.title or 'untitled'} — {len(doc.feeds)} feeds")
    titles = {**{c.slug: c.title for c in config.categories.values()},
              **{c.slug: c.title for c in plan.categories}}
    if plan.categories:
        click.echo("New categories:")
        for c in plan.categories:
            click.echo(click.style(f"  + {c.slug}", fg="green") + f"  {c.title}")
    if plan.sources:
        click.echo("Sources to add:")
        for category, sources in plan.by_category():
            click.echo(f"  {category} ({titles.get(category, '')}):")
            for s in sources:
                click.echo(click.style(f"    + {s.url}", fg="green")
                           + (f"  {s.name}" if s.name else ""))
    if plan.skipped:
        click.echo("Skipped:")
        for what, why in plan.skipped:
            click.echo(f"  - {what}: {why}")
    if not plan.sources:
        click.echo("Nothing to import.")
        return
    summary = (f"{len(plan.sources)} sources and {len(plan.categories)} new categories")
    if dry_run:
        click.echo(f"Dry run: would add {summary}; nothing written.")
        return
    text, edit = _edit(config, lambda text: add_to_config(
        text, config.path, sources=[s for s, _ in plan.sources], categories=plan.categories))
    if not yes and _interactive() and not click.confirm(f"Add {summary} to {config.path}?",
                                                        default=True):
        click.echo("Nothing written.")
        return
    write_atomically(config.path, edit.text, expected=text)
    click.echo(click.style(f"Added {summary} to {config.path}", fg="green", bold=True)
               + f" (from line {edit.line}).")
    _reload_daemon(config)


@cli.command("export-opml")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (replaced atomically) instead of standard output.")
@click.option("--category", "slug", metavar="SLUG", help="Only the sources of this category.")
@click.pass_context
@_handles_errors
def export_opml_command(ctx: click.Context, output: Path | None, slug: str | None) -> None:
    """Write the configured sources as OPML 2.0, one folder per category.

    For moving subscriptions to a feed reader or another feedhub (import-opml
    keeps the category slugs). Feed titles and home pages come from the store
    when the sources have been polled. This is the list of sources feedhub
    follows; /opml.xml on the server lists the feeds it republishes.
    """
    from feedhub.edit import write_bytes_atomically
    from feedhub.opml import ExportFeed, write_opml

    config = _config(ctx)
    if slug is not None:
        _check_category(config, slug)
    states: dict[str, SourceState] = {}
    if config.store_url != f"sqlite://{config.store_path}" or config.store_path.exists():
        states = _run(_with_store(config, _source_states))  # never create a store just for this
    groups = []
    for category in config.categories.values():
        if slug is not None and category.slug != slug:
            continue
        feeds = []
        for source in config.sources_in(category.slug):
            st = states.get(source.url)
            feeds.append(ExportFeed(xml_url=source.url,
                                    title=source.name or (st.feed_title if st else None) or source.url,
                                    html_url=st.feed_link if st else None))
        if feeds:
            groups.append((category.slug, category.title, feeds))
    body = write_opml(title=f"{config.site.title} — sources", groups=groups, created=utcnow())
    if output is None:
        click.echo(body.decode("utf-8"), nl=False)
        return
    write_bytes_atomically(output, body)
    click.echo(f"wrote {sum(len(g[2]) for g in groups)} sources in {len(groups)} categories "
               f"to {output}", err=True)


async def _source_states(store: Store) -> dict[str, SourceState]:
    return {s.url: s for s in await store.source_states()}


# --- feedhub demo -------------------------------------------------------------------------------------


@cli.command("demo")
@click.option("--listen", metavar="HOST:PORT",
              help="Where to serve the merged feeds and pages (default: 127.0.0.1:8080, or a "
                   "free port if that one is taken).")
@_handles_errors
def demo_command(listen: str | None) -> None:
    """Try feedhub offline: sample sources, polled and republished on this machine.

    Bundled Chinese finance news sources (and the seed article) are served
    from 127.0.0.1, polled once into a temporary data folder, and the merged
    feeds and pages are served until Ctrl-C (SIGINT) or SIGTERM; then the
    folder is deleted. Needs no feeds.yaml and no network.
    """
    from feedhub.demo import run_demo

    address = None
    if listen is not None:
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise click.BadParameter("use HOST:PORT, such as 127.0.0.1:8080", param_hint="--listen")
        address = (host.strip("[]") or "127.0.0.1", int(port))
    _run(run_demo(address, _show_demo))
    click.echo("feedhub demo stopped; its temporary data folder is deleted.")


def _show_demo(info: DemoInfo) -> None:
    from feedhub.demo import failed

    config, base = info.config, info.base_url
    outcomes = info.outcomes
    click.echo(click.style("feedhub demo", bold=True)
               + f": {len(config.sources)} sample sources served from {info.sources_url}/")
    click.echo(f"polled them: {sum(o.new for o in outcomes)} entries stored"
               + (f", {len(failed(outcomes))} sources failed" if failed(outcomes) else ""))
    click.echo("")
    click.echo("Open in a browser:")
    click.echo(f"  {base:<58} home page")
    for category in config.categories.values():
        click.echo(f"  {base + f'category/{category.slug}.html':<58} {category.title}")
    click.echo("Subscribe in a feed reader:")
    for category in config.categories.values():
        click.echo(f"  {base + f'feeds/{category.slug}.atom':<58} {category.title} (also .rss, .json)")
    click.echo(f"  {base + 'feeds/all.atom':<58} everything")
    click.echo(f"  {base + 'opml.xml':<58} all feeds, to import in one go")
    click.echo("")
    click.echo(f"Data in {info.folder} (deleted on exit). Try the other commands on it:")
    click.echo(f"  feedhub --config {config.path} status")
    click.echo("Press Ctrl-C to stop.")


@cli.command()
@click.option("--orphans", is_flag=True,
              help="Also delete the entries of sources no longer in feeds.yaml.")
@click.pass_context
@_handles_errors
def prune(ctx: click.Context, orphans: bool) -> None:
    """Apply the retention settings now (and forget removed sources with --orphans)."""
    from feedhub.pipeline import apply_retention, republish

    config = _config(ctx)

    async def work(store: Store) -> tuple[int, int]:
        by_retention = await apply_retention(store, config)
        by_orphans = await store.forget_sources(s.url for s in config.sources) if orphans else 0
        if by_retention or by_orphans:
            await republish(store, config, None, config.public_dir)
        return by_retention, by_orphans

    by_retention, by_orphans = _run(_with_store(config, work))
    click.echo(f"deleted {by_retention} entries by retention, {by_orphans} of removed sources")


@cli.group()
def export() -> None:
    """Export stored entries to other formats."""


@export.command("jekyll")
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--category", "slug", metavar="SLUG", help="Only this category.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Only entries published on or after this date (site time zone).")
@click.pass_context
@_handles_errors
def export_jekyll_command(ctx: click.Context, out_dir: Path, slug: str | None,
                          since: datetime | None) -> None:
    """One Jekyll post per entry in DIR/_posts, in the hub's original format."""
    from feedhub.publish.jekyll import export_jekyll

    config = _config(ctx)
    if slug is not None:
        _check_category(config, slug)
    start = since.replace(tzinfo=config.site.timezone) if since else None
    result = _run(_with_store(config, lambda store: export_jekyll(
        store, config, out_dir, category=slug, since=start)))
    click.echo(f"{result.written} posts written, {result.unchanged} unchanged, in {out_dir / '_posts'}")


@cli.command("migrate-store")
@click.option("--from", "source_url", required=True, metavar="URL",
              help="Store to copy from: sqlite:///path/feedhub.sqlite3 or postgresql://…")
@click.option("--to", "target_url", required=True, metavar="URL",
              help="Store to copy into (created and migrated as needed).")
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Rows per transaction.")
@_handles_errors
def migrate_store(source_url: str, target_url: str, batch: int) -> None:
    """Copy everything from one store to another: sources, entries, documents, polls, events.

    Each batch is an upsert, so an interrupted copy is resumed by running the same
    command again. At the end the rows of each table are counted in both stores;
    exit 1 if they differ. Stop the nodes writing to --from first.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from feedhub.report import make_console
    from feedhub.store import open_store, sqlite_path
    from feedhub.store.transfer import TABLES, copy_store

    if source_url == target_url:
        raise click.UsageError("--from and --to are the same store")
    if source_url.startswith("sqlite:") and not sqlite_path(source_url).is_file():
        raise click.UsageError(f"no SQLite store at {sqlite_path(source_url)}")
    console = make_console()

    async def work() -> tuple[dict[str, int], dict[str, int], list[str]]:
        source = await open_store(source_url)
        try:
            target = await open_store(target_url)
            try:
                totals = await source.table_counts()
                with Progress(TextColumn("{task.description:<13}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=console,
                              disable=not console.is_terminal) as bar:
                    tasks = {t: bar.add_task(t, total=totals[t]) for t in TABLES}
                    report = await copy_store(source, target, batch=batch,
                                              progress=lambda t, n: bar.advance(tasks[t], n))
            finally:
                await target.close()
        finally:
            await source.close()
        return report.source, report.target, report.mismatched

    copied, found, mismatched = _run(work())
    for table in TABLES:
        mark = "MISMATCH" if table in mismatched else "ok"
        click.echo(f"{table:<13} {copied[table]:>9} copied, {found[table]:>9} in the target  {mark}")
    if mismatched:
        click.echo(f"feedhub: counts differ for {', '.join(mismatched)}: was the source written "
                   "to meanwhile, or did the target hold other data?", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo("migrate-store: done, counts match")


def main() -> None:
    """Console-script entry point."""
    cli(obj={})
