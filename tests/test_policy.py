"""Tests for poll scheduling decisions (feedhub.policy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedhub.model import PollStatus
from feedhub.policy import MAX_BACKOFF, Schedule, first_poll_at, next_poll_at

NOW = datetime(2022, 5, 6, 8, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)
DAY = timedelta(hours=24)


def _next(status: PollStatus = PollStatus.OK, *, failures: int = 0, interval: timedelta = INTERVAL,
          hint: timedelta | None = None, retry_after: datetime | None = None) -> datetime | None:
    """next_poll_at at NOW."""
    return next_poll_at(now=NOW, schedule=Schedule(interval), status=status, failures=failures, hint=hint,
                        retry_after=retry_after)


# --- success ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [PollStatus.OK, PollStatus.NOT_MODIFIED, PollStatus.UNCHANGED])
def test_success_polls_after_interval(status: PollStatus) -> None:
    """A successful poll is due again one interval later."""
    assert _next(status) == NOW + INTERVAL


def test_longer_hint_lengthens() -> None:
    """A hint longer than the interval (ttl, max-age) is honoured."""
    assert _next(hint=timedelta(hours=1)) == NOW + timedelta(hours=1)


@pytest.mark.parametrize("hint", [timedelta(minutes=5), timedelta(0), timedelta(seconds=-30)])
def test_shorter_hint_ignored(hint: timedelta) -> None:
    """A hint shorter than the interval never shortens it."""
    assert _next(hint=hint) == NOW + INTERVAL


def test_hint_capped_at_a_day() -> None:
    """A huge hint (ttl of a month) is capped at 24 h."""
    assert _next(hint=timedelta(days=30)) == NOW + DAY


def test_interval_longer_than_cap_kept() -> None:
    """An interval over 24 h is the operator's choice; a hint does not shorten it."""
    assert _next(interval=timedelta(days=2), hint=timedelta(days=30)) == NOW + timedelta(days=2)


# --- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "delay"), [
    (1, timedelta(minutes=30)),
    (2, timedelta(hours=1)),
    (3, timedelta(hours=2)),
    (5, timedelta(hours=8)),
    (6, timedelta(hours=16)),
    (7, DAY),
    (50, DAY),
    (10_000, DAY),
])
def test_errors_back_off_exponentially(failures: int, delay: timedelta) -> None:
    """Errors wait interval × 2ⁿ, capped at 24 h."""
    assert _next(PollStatus.ERROR, failures=failures) == NOW + delay


def test_backoff_cap_is_a_day() -> None:
    """The documented cap."""
    assert MAX_BACKOFF == DAY


def test_rate_limited_backs_off_too() -> None:
    """429/503 without a usable Retry-After back off like errors."""
    assert _next(PollStatus.RATE_LIMITED, failures=2) == NOW + timedelta(hours=1)


def test_retry_after_later_than_backoff_wins() -> None:
    """A server's Retry-After beyond the backoff is honoured."""
    later = NOW + timedelta(hours=6)
    assert _next(PollStatus.RATE_LIMITED, failures=1, retry_after=later) == later


def test_retry_after_beyond_cap_still_honoured() -> None:
    """Retry-After may exceed the 24 h backoff cap."""
    later = NOW + timedelta(days=3)
    assert _next(PollStatus.RATE_LIMITED, failures=1, retry_after=later) == later


def test_retry_after_earlier_than_backoff_ignored() -> None:
    """Retry-After can only lengthen the wait."""
    soon = NOW + timedelta(minutes=1)
    assert _next(PollStatus.RATE_LIMITED, failures=1, retry_after=soon) == NOW + timedelta(minutes=30)


def test_backoff_never_shorter_than_interval() -> None:
    """A source polled every 2 days is not polled sooner because it failed."""
    due = _next(PollStatus.ERROR, failures=1, interval=timedelta(days=2))
    assert due is not None and due >= NOW + timedelta(days=2)


def test_gone_stops_polling() -> None:
    """410 Gone: no next poll, whatever the hints."""
    assert _next(PollStatus.GONE, failures=3, hint=timedelta(hours=1),
                 retry_after=NOW + timedelta(hours=1)) is None


# --- first poll ------------------------------------------------------------------------


def test_first_poll_within_first_interval() -> None:
    """A new source is first due somewhere in [now, now + interval)."""
    for i in range(200):
        due = first_poll_at(now=NOW, url=f"http://127.0.0.1:8001/feeds/{i}.xml", interval=INTERVAL)
        assert NOW <= due < NOW + INTERVAL


def test_first_poll_deterministic_per_url() -> None:
    """The same URL gets the same slot (a restart does not reshuffle)."""
    url = "https://example.org/stcn/yw.xml"
    first = first_poll_at(now=NOW, url=url, interval=INTERVAL)
    assert first_poll_at(now=NOW, url=url, interval=INTERVAL) == first
    later = NOW + timedelta(hours=3)
    assert first_poll_at(now=later, url=url, interval=INTERVAL) - later == first - NOW
    assert first_poll_at(now=NOW, url=url + "?x", interval=INTERVAL) != first


def test_first_polls_spread() -> None:
    """100 new sources do not all fire in the same second; most get distinct seconds."""
    seconds = {int((first_poll_at(now=NOW, url=f"https://src{i}.example/feed.xml", interval=INTERVAL)
                    - NOW).total_seconds()) for i in range(100)}
    assert len(seconds) >= 80
    assert max(seconds) - min(seconds) >= INTERVAL.total_seconds() / 2
