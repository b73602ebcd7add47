"""What a feed's own body says about how often to read it (RSS 2.0 ``ttl``, ``skipHours``,
``skipDays``; the RSS 1.0 syndication module's ``sy:updatePeriod``/``sy:updateFrequency``).

feedparser keeps ``ttl`` and the ``sy:`` values but only the last ``<hour>`` and ``<day>`` of
the skip lists, so those two are read from the channel's text here.
"""

from __future__ import annotations

import re
from typing import Any

from crawler.types import PublisherHints

_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400,
            "yearly": 365 * 86400}
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_FIRST_ITEM = re.compile(r"<(?:[\w-]+:)?(?:item|entry)[\s>]", re.I)
_SKIP_HOURS = re.compile(r"<skipHours\b[^>]*>(.*?)</skipHours\s*>", re.I | re.S)
_SKIP_DAYS = re.compile(r"<skipDays\b[^>]*>(.*?)</skipDays\s*>", re.I | re.S)
_HOUR = re.compile(r"<hour\b[^>]*>\s*(\d{1,2})\s*</hour\s*>", re.I)
_DAY = re.compile(r"<day\b[^>]*>\s*([A-Za-z]+)\s*</day\s*>", re.I)


def publisher_hints(text: str, feed: Any) -> PublisherHints:
    """``text``: the decoded document; ``feed``: feedparser's ``result.feed``."""
    first_item = _FIRST_ITEM.search(text)
    channel = text[: first_item.start()] if first_item else text[:65536]
    return PublisherHints(ttl=_ttl(feed.get("ttl")),
                          update_every=_update_every(feed.get("sy_updateperiod"),
                                                     feed.get("sy_updatefrequency")),
                          skip_hours=_skip_hours(channel), skip_days=_skip_days(channel))


def _ttl(value: Any) -> int | None:
    minutes = _positive_int(value)
    return minutes * 60 if minutes is not None else None


def _update_every(period: Any, frequency: Any) -> int | None:
    if not isinstance(period, str) and frequency is None:
        return None
    seconds = _PERIODS.get(str(period or "daily").strip().lower())  # the module's default
    times = _positive_int(frequency) if frequency is not None else 1
    if seconds is None or times is None:
        return None
    return max(1, seconds // times)


def _skip_hours(channel: str) -> tuple[int, ...]:
    block = _SKIP_HOURS.search(channel)
    if block is None:
        return ()
    # 24 is how some feeds write midnight; the spec counts 0-23.
    hours = {int(h) % 24 for h in _HOUR.findall(block.group(1)) if int(h) <= 24}
    return tuple(sorted(hours)) if len(hours) < 24 else ()  # "never" is not a schedule


def _skip_days(channel: str) -> tuple[int, ...]:
    block = _SKIP_DAYS.search(channel)
    if block is None:
        return ()
    days = {_DAYS.index(d.lower()) for d in _DAY.findall(block.group(1)) if d.lower() in _DAYS}
    return tuple(sorted(days)) if len(days) < 7 else ()


def _positive_int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
