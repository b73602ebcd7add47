"""When a source is checked next: its interval from feeds.yaml, stretched to what the
publisher asks (Cache-Control/Expires, RSS ttl, sy:updatePeriod) up to a cap, moved out of
the GMT hours and days it asks to be skipped, and backed off exponentially after errors.

Every wait gets jitter, so sources added together (a thousand from one OPML import) do not
stay in step and come due in the same second forever after.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from crawler.types import PublisherHints

JITTER = 0.1  #: ±10 %


def publisher_wait(hints: PublisherHints, fresh_for: float | None) -> float | None:
    """The longest of the waits the publisher asks for, in seconds; None if it asks none."""
    asked = [w for w in (hints.ttl, hints.update_every, fresh_for) if w]
    return float(max(asked)) if asked else None


def next_check_after_success(now: datetime, interval: int, *, cap: int,
                             hints: PublisherHints | None = None,
                             fresh_for: float | None = None) -> datetime:
    """The configured interval is the floor: a publisher can ask for less traffic, never
    more, and never a wait past ``cap`` (settings.max_backoff), or news would go unread
    for the length of a careless ttl."""
    hints = hints or PublisherHints()
    wait = float(interval)
    asked = publisher_wait(hints, fresh_for)
    if asked is not None:
        wait = max(wait, min(asked, float(cap)))
    wait *= random.uniform(1 - JITTER, 1 + JITTER)
    return skip_forward(now + timedelta(seconds=wait), hints)


def next_check_after_error(now: datetime, interval: int, failures: int, *, cap: int,
                           retry_after: float | None = None) -> datetime:
    """interval × 2^(failures-1) with jitter, at most ``cap``; never sooner than a
    Retry-After the server sent (which may exceed the cap: the server said when)."""
    delay = interval * 2.0 ** max(0, min(failures - 1, 20))
    delay = min(delay * random.uniform(1 - JITTER, 1 + JITTER), float(cap))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + timedelta(seconds=delay)


def skip_forward(when: datetime, hints: PublisherHints) -> datetime:
    """The first moment from ``when`` outside the skipped GMT hours and days (RSS 2.0)."""
    if not hints.skip_hours and not hints.skip_days:
        return when
    moved = when
    for _ in range(24 * 7 + 1):  # a week of hours: beyond that every hour is skipped
        gmt = moved.astimezone(UTC)
        if gmt.hour not in hints.skip_hours and gmt.weekday() not in hints.skip_days:
            return moved
        moved = gmt.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return when

