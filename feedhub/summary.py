"""The plain-text lines about polls: what ``feedhub poll`` prints off a terminal.

No Rich here, so a scripted or scheduled poll does not load it (~0.1 s);
:mod:`feedhub.report` draws the terminal's tables.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO

from feedhub.model import PollOutcome, PollStatus

#: Poll results that count as failures, in ``status`` and in ``poll``'s summary.
FAILED = frozenset({PollStatus.ERROR, PollStatus.RATE_LIMITED, PollStatus.GONE})

LABELS = {
    PollStatus.OK: "ok", PollStatus.NOT_MODIFIED: "not modified", PollStatus.UNCHANGED: "unchanged",
    PollStatus.GONE: "gone", PollStatus.RATE_LIMITED: "rate limited", PollStatus.SKIPPED: "skipped",
    PollStatus.ERROR: "error"}


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: standard output) is an interactive terminal."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def describe_outcome(o: PollOutcome) -> str:
    """One plain line per polled source (the format scripts and tests read)."""
    text = f"{LABELS[o.status]:<13} {o.source_url}"
    if o.status is PollStatus.OK:
        text += f"  {o.new} new, {o.updated} updated"
    if o.error:
        text += f"  — {o.error}"
    if o.moved_to:
        text += f"  (moved permanently to {o.moved_to}: update feeds.yaml)"
    return text


def poll_total(outcomes: Sequence[PollOutcome]) -> str:
    """The closing line of ``feedhub poll``."""
    failed = sum(o.status in FAILED for o in outcomes)
    return (f"polled {len(outcomes)} sources: {sum(o.new for o in outcomes)} new, "
            f"{sum(o.updated for o in outcomes)} updated entries, {failed} failed")
