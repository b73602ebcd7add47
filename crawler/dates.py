"""Raw date strings from feeds → aware UTC datetimes, or None when not to be trusted.

feedparser gets Chinese dates silently wrong (年月日 forms come back as the day before at
midnight UTC, naive times are read as UTC, "CST" is US Central; RELIABILITY.md §2.1), so
the raw string is parsed here. Naive times take the feed's zone (+08:00 by default: Taipei,
Beijing and Hong Kong alike). A value before 1995 or more than a day past the fetch time is
treated as missing, and the caller falls back to the first-seen time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

CHINA_TIME = timezone(timedelta(hours=8))
EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)

_ZH = re.compile(
    r"^(?:民國|民国)?\s*(\d{2,4})\s*[年/.\-]\s*(\d{1,2})\s*[月/.\-]\s*(\d{1,2})\s*日?"
    r"(?:\s*(上午|下午|晚上|早上|中午)?\s*(\d{1,2})[:時时](\d{1,2})(?:[:分](\d{1,2})秒?|分)?)?\s*$"
)
_CST = re.compile(r"\b(CST|GMT\+0?8(?::?00)?|UTC\+0?8(?::?00)?|HKT|TWT)\s*$")
_ZH_WEEKDAY = re.compile(r"^(?:週|周|星期)[日一二三四五六天]\s*,?\s*")
_ZH_MONTH = re.compile(r"\b(\d{1,2})月\b")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_date(
    raw: str | None, *, now: datetime, zone: timezone = CHINA_TIME
) -> datetime | None:
    """The instant ``raw`` names, in UTC; None if it is missing, unreadable or implausible."""
    if raw is None:
        return None
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    value = _parse(text, zone)
    if value is None:
        return None
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        return None  # e.g. 0001-01-01T00:00+08:00 is before datetime.min once in UTC
    if value < EARLIEST or value > now + timedelta(days=1):
        return None
    return value


def _parse(text: str, zone: timezone) -> datetime | None:
    zh = _ZH.match(text)
    if zh:
        return _from_zh(zh, zone)
    # Chinese sites mean +08:00 by "CST" and "GMT+8"; RFC 822 would read CST as US Central.
    text = _CST.sub("+0800", text)
    text = _ZH_WEEKDAY.sub("", text)
    text = _ZH_MONTH.sub(lambda m: _MONTHS[int(m.group(1)) - 1] if 1 <= int(m.group(1)) <= 12
                         else m.group(0), text)
    if text.isdigit():
        return None  # a bare number is a Unix time or a year; neither is worth the guess
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if value.tzinfo is None and text.endswith("-0000"):
            # RFC 5322 §3.3: "-0000" is UTC sent by a host that does not know its own zone.
            # Python returns it naive, which below would shift it by the feed's zone.
            value = value.replace(tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


def _from_zh(match: re.Match[str], zone: timezone) -> datetime | None:
    year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if year < 1000:
        year += 1911  # 民國 (Minguo) years count from 1912
    hour = int(match.group(5) or 0)
    minute = int(match.group(6) or 0)
    second = int(match.group(7) or 0)
    if match.group(4) in ("下午", "晚上") and hour < 12:
        hour += 12
    elif match.group(4) in ("上午", "早上") and hour == 12:
        hour = 0  # 12-hour clocks (zh-TW Windows, ASP.NET) write 00:30 as 上午 12:30
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None
