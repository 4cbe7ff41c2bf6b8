"""What every command shares: running a coroutine, a store, errors mapped to exit codes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from feedhub.config import Config, Source, load_config
from feedhub.errors import ConfigError, FeedhubError

if TYPE_CHECKING:
    from feedhub.store import Store

T = TypeVar("T")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine to its end."""
    return asyncio.run(coro)


def handles_errors(func: Callable[..., None]) -> Callable[..., None]:
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


class Refused(Exception):
    """The command cannot do what was asked; its message is for the operator."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def refuses(func: Callable[..., None]) -> Callable[..., None]:
    """Report :class:`Refused` as ``feedhub: message`` with its exit code."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except Refused as e:
            click.echo(f"feedhub: {e}", err=True)
            sys.exit(e.code)
    return wrapper


def config_of(ctx: click.Context) -> Config:
    """The configuration named by ``--config``, loaded once per invocation."""
    cfg: Config = ctx.obj["config"] if "config" in ctx.obj else load_config(ctx.obj["path"])
    ctx.obj["config"] = cfg
    return cfg


async def with_store(config: Config, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store, run ``work`` on it, close it."""
    from feedhub.store import open_store

    store = await open_store(config.store_url, pool_size=config.storage.pool_size)
    try:
        return await work(store)
    finally:
        await store.close()


def check_category(config: Config, slug: str) -> None:
    """Refuse a --category that feeds.yaml does not define, naming the ones it does."""
    if slug not in config.categories:
        raise click.BadParameter(f"no category {slug!r} in {config.path}; use one of: "
                                 f"{', '.join(config.categories)}", param_hint="--category")


def find_source(config: Config, key: str) -> Source:
    """The configured source with this URL (or fallback URL) or name.

    Raises:
        click.UsageError: none, or several names match.
    """
    found = config.find_sources(key)
    if len(found) == 1:
        return found[0]
    if found:
        raise click.UsageError(f"{len(found)} sources are named {key!r}; give the URL: "
                               + ", ".join(s.url for s in found))
    raise click.UsageError(f"no source with URL or name {key!r} in {config.path}")


def listen_address(value: str | None, config: Config | None = None) -> tuple[str, int]:
    """``HOST:PORT`` as a pair (``server.listen`` when not given)."""
    if value is None:
        assert config is not None
        return config.listen_host, config.listen_port
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter("use HOST:PORT, such as 127.0.0.1:8080", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


def entries_text(count: int) -> str:
    """``1 entry``, ``2 entries``."""
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def interactive() -> bool:
    """Whether a person is at the terminal to answer questions."""
    return sys.stdin.isatty() and sys.stdout.isatty()
