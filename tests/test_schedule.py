"""The daemon's clock: jobs never overlap themselves, and saying so is no warning."""

from __future__ import annotations

import asyncio
import logging

import pytest

from feedhub.schedule import Jobs, Scheduler


async def test_a_job_outlasting_its_interval_skips_turns_without_a_warning(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="feedhub.schedule")
    # setup_logging (run by another test in this process) may have stopped propagation.
    monkeypatch.setattr(logging.getLogger("feedhub"), "propagate", True)
    running = 0
    most = 0
    runs = 0

    async def slow() -> None:
        nonlocal running, most, runs
        running += 1
        runs += 1
        most = max(most, running)
        await asyncio.sleep(1.0)
        running -= 1

    async def idle() -> None:
        pass

    scheduler = Scheduler(Jobs(tick=slow, republish=idle, prune=idle, tick_every=0.1,
                               republish_every=3600, prune_every=3600))
    scheduler.start()
    try:
        await asyncio.sleep(1.6)
    finally:
        scheduler.shutdown()
        await asyncio.sleep(0)

    assert most == 1 and 1 <= runs <= 2
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]
    skipped = [r for r in caplog.records
               if r.name == "feedhub.schedule" and "this turn skipped" in r.getMessage()]
    assert skipped and skipped[0].getMessage() == "tick still running: this turn skipped"
