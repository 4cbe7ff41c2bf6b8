"""What the daemon tells about itself: ``/healthz``, systemd's status line, the watchdog."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from feedhub import metrics
from feedhub.config import Config
from feedhub.errors import FeedhubError
from feedhub.model import PollStatus
from feedhub.store import Store
from feedhub.systemd import Notifier

log = logging.getLogger("feedhub.daemon")


async def health_report(store: Store, config: Config, *, last_tick: float, tick_every: float,
                        in_flight: int) -> dict[str, object]:
    """What ``/healthz`` reports; ``status`` is ``ok`` only when all is well.

    Also sets the per-state source gauges of ``/metrics``.
    """
    writable = True
    try:
        await asyncio.wait_for(store.ping(), timeout=5)
    except (FeedhubError, TimeoutError):
        writable = False
    states = await store.source_states() if writable else []
    configured = {s.url for s in config.sources}
    states = [s for s in states if s.url in configured]
    failing = sum(s.last_status in (PollStatus.ERROR, PollStatus.RATE_LIMITED) for s in states)
    gone = sum(s.last_status == PollStatus.GONE for s in states)
    ok = len(states) - failing - gone
    for name, value in (("ok", ok), ("failing", failing), ("gone", gone),
                        ("never_polled", len(configured) - len(states))):
        metrics.SOURCES.labels(name).set(value)
    tick_age = time.monotonic() - last_tick
    scheduler_ok = tick_age < max(60.0, tick_every * 6)
    return {
        "status": "ok" if writable and scheduler_ok else "unhealthy",
        "store_writable": writable,
        "scheduler_ok": scheduler_ok,
        "last_tick_seconds_ago": round(tick_age, 1),
        "sources": {"total": len(configured), "ok": ok,
                    "failing": failing, "gone": gone,
                    "never_polled": len(configured) - len(states)},
        "in_flight": in_flight,
    }


def status_line(report: dict[str, object], last_cycle: str) -> str:
    """The one-line ``STATUS=`` systemd shows, from a :func:`health_report`."""
    sources = report["sources"]
    assert isinstance(sources, dict)
    return (f"{sources['total']} sources: {sources['ok']} ok, {sources['failing']} failing, "
            f"{sources['gone']} gone; last poll {last_cycle}")


async def feed_watchdog(store: Store, notifier: Notifier, every: float,
                        stopping: asyncio.Event) -> None:
    """Ping systemd's watchdog every ``every`` seconds, only while the store answers."""
    while not stopping.is_set():
        try:
            await asyncio.wait_for(store.ping(), timeout=every)
        except (FeedhubError, TimeoutError) as e:
            log.error("watchdog: the store does not answer (%s); not feeding the watchdog", e)
        else:
            notifier.watchdog()
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=every)
