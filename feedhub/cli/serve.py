"""Commands that serve: serve, run (the daemon), demo."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from feedhub import operations
from feedhub.cli.common import config_of, handles_errors, listen_address, run, with_store
from feedhub.log import setup_logging

if TYPE_CHECKING:
    from feedhub.demo import DemoInfo
    from feedhub.store import Store


@click.command("serve")
@click.option("--listen", metavar="HOST:PORT", help="Address to listen on (default: server.listen).")
@click.pass_context
@handles_errors
def serve_command(ctx: click.Context, listen: str | None) -> None:
    """Serve the outputs over HTTP, without polling."""
    from feedhub.server import create_app, run_loop, serve

    config = config_of(ctx)
    host, port = listen_address(listen, config)

    async def work(store: Store) -> None:
        await operations.ensure_published(store, config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"serving {config.site.title} on http://{host}:{port}/", err=True)
        await serve(create_app(store), host, port, stop)

    run_loop(with_store(config, work))


@click.command("run")
@click.option("--listen", metavar="HOST:PORT", help="Address to listen on (default: server.listen).")
@click.option("--tick", "tick_every", type=click.FloatRange(min=0.2), default=5.0, show_default=True,
              hidden=True, help="Seconds between checks for due sources.")
@click.option("--spread", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              hidden=True, help="Seconds over which never-polled sources get their first poll.")
@click.pass_context
@handles_errors
def run_command(ctx: click.Context, listen: str | None, tick_every: float, spread: float) -> None:
    """The daemon: poll sources on schedule and serve the outputs (systemd notify aware)."""
    from feedhub.daemon import DaemonOptions
    from feedhub.daemon import run as run_daemon

    config = config_of(ctx)
    if ctx.obj.get("log_level") is None:
        setup_logging(config.log_level)
    options = DaemonOptions(config_path=ctx.obj["path"],
                            listen=listen_address(listen, config) if listen else None,
                            tick_every=tick_every, first_poll_window=timedelta(seconds=spread))
    run(run_daemon(options))


@click.command("demo")
@click.option("--listen", metavar="HOST:PORT",
              help="Where to serve the merged feeds and pages (default: 127.0.0.1:8080, or a "
                   "free port if that one is taken).")
@handles_errors
def demo_command(listen: str | None) -> None:
    """Try feedhub offline: sample sources, polled and republished on this machine.

    Bundled Chinese finance news sources (and the seed article) are served
    from 127.0.0.1, polled once into a temporary data folder, and the merged
    feeds and pages are served until Ctrl-C (SIGINT) or SIGTERM; then the
    folder is deleted. Needs no feeds.yaml and no network.
    """
    from feedhub.demo import run_demo

    address = listen_address(listen) if listen is not None else None
    run(run_demo(address, _show_demo))
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


COMMANDS = (serve_command, run_command, demo_command)
