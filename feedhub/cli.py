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
from typing import Any, TypeVar

import click

from feedhub import __version__
from feedhub.config import DEFAULT_PATH, Config, Source, load_config
from feedhub.errors import ConfigError, FeedhubError
from feedhub.fetch import Fetcher
from feedhub.log import setup_logging
from feedhub.model import PollOutcome, utcnow
from feedhub.pipeline import Deps, apply_retention, changed_categories, poll_sources, republish
from feedhub.publish.websub import announce_now
from feedhub.report import (
    PollProgress,
    StatusRow,
    describe_outcome,
    make_console,
    poll_total,
    render_history,
    render_poll_summary,
    render_status,
)
from feedhub.server import create_app, serve
from feedhub.store import Store, open_store
from feedhub.store.base import POLL_HISTORY, PollRecord

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
    store = await open_store(config.store_path)
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
    config = _config(ctx)
    sources = config.sources
    if source_url is not None:
        sources = tuple(s for s in sources if s.url == source_url)
        if not sources:
            raise click.UsageError(f"no source with URL {source_url} in {config.path}")

    async def work(store: Store) -> list[PollOutcome]:
        async with Fetcher(config.site.base_url) as fetcher:
            outcomes = await poll_sources(Deps(config=config, store=store, fetcher=fetcher),
                                          sources, force=force,
                                          on_done=progress.done if progress else None)
        slugs = changed_categories(config, outcomes)
        if slugs or not await store.documents():
            changed = await republish(store, config, slugs or None, config.public_dir)
            await announce_now(config, changed)
        return outcomes

    console = make_console()
    progress = PollProgress(console, len(sources)) if console.is_terminal else None
    with progress or nullcontext():
        outcomes = _run(_with_store(config, work))
    if console.is_terminal:
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
    from feedhub.publish.static import write_documents

    config = _config(ctx)
    target = out_dir or config.public_dir

    async def work(store: Store) -> int:
        await republish(store, config)
        return write_documents(await store.documents(), target)

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
    config = _config(ctx)
    host, port = _listen(listen, config)

    async def work(store: Store) -> None:
        if not await store.documents():
            await republish(store, config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"serving {config.site.title} on http://{host}:{port}/", err=True)
        await serve(create_app(store), host, port, stop)

    _run(_with_store(config, work))


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
              help="Machine-readable output (a stable schema: see docs/configuration.md).")
@click.pass_context
@_handles_errors
def status(ctx: click.Context, source: str | None, slug: str | None, limit: int,
           as_json: bool) -> None:
    """One row per source: last poll, result, new entries, next poll, error.

    Failing and gone sources are highlighted. With URL|NAME, that source's
    details and its last polls (up to 50 are kept) instead.
    """
    config = _config(ctx)
    if slug is not None and slug not in config.categories:
        raise click.BadParameter(f"no category {slug!r} in {config.path}; use one of: "
                                 f"{', '.join(config.categories)}", param_hint="--category")
    sources = config.sources_in(slug) if slug else config.sources
    if source is not None:
        sources = (_find_source(config, source),)
    now = utcnow()

    async def work(store: Store) -> tuple[list[StatusRow], list[PollRecord]]:
        states = {s.url: s for s in await store.source_states()}
        counts = await store.entry_counts()
        fresh = await store.new_entries_since(now - timedelta(hours=24))
        rows = [StatusRow(source=s, state=states.get(s.url), entries=counts.get(s.url, 0),
                          new_24h=fresh.get(s.url, 0)) for s in sources]
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


def _find_source(config: Config, key: str) -> Source:
    """The configured source with this URL or name.

    Raises:
        click.UsageError: none, or several names match.
    """
    found = config.source(key) or next((s for s in config.sources if s.url == key.strip()), None)
    if found is not None:
        return found
    named = [s for s in config.sources if s.name == key]
    if len(named) == 1:
        return named[0]
    if named:
        raise click.UsageError(f"{len(named)} sources are named {key!r}; give the URL: "
                               + ", ".join(s.url for s in named))
    raise click.UsageError(f"no source with URL or name {key!r} in {config.path}")


@cli.command()
@click.option("--orphans", is_flag=True,
              help="Also delete the entries of sources no longer in feeds.yaml.")
@click.pass_context
@_handles_errors
def prune(ctx: click.Context, orphans: bool) -> None:
    """Apply the retention settings now (and forget removed sources with --orphans)."""
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
    if slug is not None and slug not in config.categories:
        raise click.BadParameter(f"no category {slug!r} in {config.path}", param_hint="--category")
    start = since.replace(tzinfo=config.site.timezone) if since else None
    result = _run(_with_store(config, lambda store: export_jekyll(
        store, config, out_dir, category=slug, since=start)))
    click.echo(f"{result.written} posts written, {result.unchanged} unchanged, in {out_dir / '_posts'}")


def main() -> None:
    """Console-script entry point."""
    cli(obj={})
