"""When to poll a source next: pure decisions, no I/O.

The configured interval is the floor; source hints (``<ttl>``,
``Cache-Control``/``Expires``, ``Retry-After``) can only lengthen it. Failures
back off exponentially (interval × 2ⁿ) up to a cap; ``410 Gone`` stops polling.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from feedhub.model import PollStatus

MAX_BACKOFF = timedelta(hours=24)
#: Hints may lengthen an interval, but never beyond this.
MAX_HINTED = timedelta(hours=24)


def next_poll_at(*, now: datetime, interval: timedelta, status: PollStatus, failures: int,
                 hint: timedelta | None = None, retry_after: datetime | None = None
                 ) -> datetime | None:
    """The instant to poll again after an outcome, or ``None`` to stop (gone).

    ``failures`` counts consecutive failures including this one.
    """
    if status is PollStatus.GONE:
        return None
    if status in (PollStatus.ERROR, PollStatus.RATE_LIMITED):
        delay = max(interval, min(interval * 2 ** min(failures, 20), MAX_BACKOFF))
        due = now + delay
        return retry_after if retry_after is not None and retry_after > due else due
    delay = max(interval, min(hint, MAX_HINTED)) if hint else interval
    return now + delay


def first_poll_at(*, now: datetime, url: str, interval: timedelta) -> datetime:
    """When a never-polled source is first due: spread over its first interval.

    The offset is derived from the URL, so a thousand new sources do not fire in
    the same second and a restart gives each the same slot.
    """
    fraction = int.from_bytes(hashlib.sha256(url.encode()).digest()[:4], "big") / 2**32
    return now + interval * fraction
