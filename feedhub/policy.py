"""When to poll a source next: pure decisions, no I/O.

The configured schedule is the floor: an interval, or intervals that depend on
time windows (market hours). Source hints (``<ttl>``, ``Cache-Control``/``Expires``,
``Retry-After``) can only lengthen it. Failures back off exponentially
(interval × 2ⁿ) up to a cap; ``410 Gone`` stops polling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from feedhub.model import PollStatus

MAX_BACKOFF = timedelta(hours=24)
#: Hints may lengthen an interval, but never beyond this.
MAX_HINTED = timedelta(hours=24)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """Local times on some weekdays during which a source is polled every ``every``.

    ``end`` at or before ``start`` means the window runs past midnight into the next
    day; ``days`` are the days the window starts on (0 is Monday).
    """

    days: frozenset[int]
    start: time
    end: time
    every: timedelta

    def contains(self, local: datetime) -> bool:
        """Whether the naive-or-aware local time ``local`` falls inside the window."""
        clock, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= clock < self.end
        return (day in self.days and clock >= self.start) or \
            ((day - 1) % 7 in self.days and clock < self.end)


@dataclass(frozen=True, slots=True)
class Schedule:
    """How often a source is polled: ``default``, or a window's ``every`` inside it.

    Windows are read in ``timezone``; where windows overlap the shortest interval wins.
    """

    default: timedelta
    windows: tuple[Window, ...] = ()
    timezone: tzinfo = UTC

    def interval_at(self, when: datetime) -> timedelta:
        """The interval in force at the instant ``when``."""
        if not self.windows:
            return self.default
        local = when.astimezone(self.timezone)
        inside = [w.every for w in self.windows if w.contains(local)]
        return min(inside) if inside else self.default

    @property
    def longest(self) -> timedelta:
        """The longest interval this schedule ever uses."""
        return max([self.default, *(w.every for w in self.windows)])

    def _boundaries(self, after: datetime, until: datetime) -> list[datetime]:
        """Instants in ``(after, until]`` where a window opens or closes, in order."""
        found: set[datetime] = set()
        day = after.astimezone(self.timezone).date() - timedelta(days=1)
        last = until.astimezone(self.timezone).date()
        while day <= last:
            for w in self.windows:
                if day.weekday() not in w.days:
                    continue
                opens = datetime.combine(day, w.start, self.timezone)
                closes = datetime.combine(day + timedelta(days=w.end <= w.start), w.end,
                                          self.timezone)
                found |= {t for t in (opens, closes) if after < t <= until}
            day += timedelta(days=1)
        return sorted(found)

    def due_after(self, last: datetime) -> datetime:
        """The first instant at which the interval in force has passed since ``last``.

        Polling resumes at a window's opening when its interval has already passed
        (a 30-minute default polled at 09:00 is due at 09:15 when a 2-minute window
        opens then), and a window's short interval ends when it closes. The instant is
        in ``last``'s time zone.
        """
        if not self.windows:
            return last + self.default
        start, interval = last, self.interval_at(last)
        for boundary in self._boundaries(last, last + self.longest):
            if last + interval < boundary:
                break
            start, interval = boundary.astimezone(last.tzinfo), self.interval_at(boundary)
        return max(start, last + interval)


def next_poll_at(*, now: datetime, schedule: Schedule, status: PollStatus, failures: int,
                 hint: timedelta | None = None, retry_after: datetime | None = None
                 ) -> datetime | None:
    """The instant to poll again after an outcome, or ``None`` to stop (gone).

    ``failures`` counts consecutive failures including this one.
    """
    if status is PollStatus.GONE:
        return None
    if status in (PollStatus.ERROR, PollStatus.RATE_LIMITED):
        interval = schedule.interval_at(now)
        delay = max(interval, min(interval * 2 ** min(failures, 20), MAX_BACKOFF))
        due = now + delay
        return retry_after if retry_after is not None and retry_after > due else due
    due = schedule.due_after(now)
    return max(due, now + min(hint, MAX_HINTED)) if hint else due


def first_poll_at(*, now: datetime, url: str, interval: timedelta) -> datetime:
    """When a never-polled source is first due: spread over its first interval.

    The offset is derived from the URL, so a thousand new sources do not fire in
    the same second and a restart gives each the same slot.
    """
    fraction = int.from_bytes(hashlib.sha256(url.encode()).digest()[:4], "big") / 2**32
    return now + interval * fraction
