"""crawler.dates.parse_date on the hostile date corpus and on Chinese date conventions.

tests/data/dates/expected.json is a copy of ../shared/fixtures/hostile/dates/expected.json.
Its "expected" column is prose; each row is classified below as an exact instant, a
fallback (None: the caller uses the first-seen time), or either of the two.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from crawler.dates import parse_date

EXPECTED = Path(__file__).parent / "data" / "dates" / "expected.json"
NOW = datetime(2025, 11, 3, 4, 0, tzinfo=UTC)  # the fetch time, a day after the corpus dates
INSTANT = "2025-11-02T06:30:00Z"  # 14:30 in Taipei, the instant most rows name
FALLBACK = "fallback"

# Rows whose prose does not start with the instant or with "fallback".
JUDGED = {
    # midnight of 2025-11-02 in the feed's zone (+08:00)
    "zh-date": "2025-11-01T16:00:00Z",
    "roc-year": "2025-11-01T16:00:00Z",
    "naive-iso": INSTANT,
    # the documented choice: Chinese sites mean +08:00 by CST
    "cst-ambiguous": INSTANT,
    # "clamp to fetch time": parse_date reports it missing and the caller uses the fetch time
    "future-far": FALLBACK,
    # one hour ahead is clock skew, inside the documented one-day tolerance: kept
    "future-slight": "__FUTURE_1H__",
    "epoch-zero": FALLBACK,
    "unix-zero": FALLBACK,
}
_INSTANT_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)")
_FUTURE = re.compile(r"^__FUTURE_(\d+)([HD])__$")


def _future(raw: str, now: datetime) -> datetime | None:
    """The instant a "__FUTURE_1H__"-style placeholder stands for, relative to now."""
    match = _FUTURE.match(raw)
    if not match:
        return None
    amount, unit = int(match.group(1)), match.group(2)
    return now + (timedelta(hours=amount) if unit == "H" else timedelta(days=amount))


def _classify(name: str, prose: str) -> tuple[str | None, bool]:
    """(the exact instant or None, whether a fallback is also acceptable)."""
    if name in JUDGED:
        judged = JUDGED[name]
        return (None, True) if judged == FALLBACK else (judged, False)
    if prose.startswith("fallback") or prose.startswith("treat as missing"):
        return None, True
    match = _INSTANT_PREFIX.match(prose)
    if not match:
        raise AssertionError(f"row {name!r} has an expectation this test cannot read: {prose!r}")
    return match.group(1), "or fallback" in prose


def _rows() -> list[pytest.param]:
    params = []
    for row in json.loads(EXPECTED.read_text(encoding="utf-8")):
        instant, fallback_ok = _classify(row["name"], row["expected"])
        params.append(pytest.param(row["raw"], instant, fallback_ok, id=row["name"]))
    return params


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize(("raw", "instant", "fallback_ok"), _rows())
def test_corpus_date(raw: str | None, instant: str | None, fallback_ok: bool) -> None:
    """Each corpus date gives its instant in UTC, or None where the first-seen time must be used."""
    if raw is not None and (placeholder := _future(raw, NOW)) is not None:
        raw = format_datetime(placeholder)
    if instant is not None and (placeholder := _future(instant, NOW)) is not None:
        want: datetime | None = placeholder
    else:
        want = _iso(instant) if instant is not None else None
    started = time.perf_counter()
    got = parse_date(raw, now=NOW)
    assert time.perf_counter() - started < 0.5  # no backtracking blow-up on long input
    if got is not None:
        assert got.tzinfo is UTC
    if fallback_ok and want is not None:
        assert got in (want, None)
    else:
        assert got == want


def test_every_corpus_row_is_understood() -> None:
    """Every row of expected.json is classified; an unreadable new row fails loudly."""
    rows = json.loads(EXPECTED.read_text(encoding="utf-8"))
    assert len(rows) == 31
    for row in rows:
        _classify(row["name"], row["expected"])
    assert set(JUDGED) <= {row["name"] for row in rows}


TAIPEI_1430 = datetime(2025, 11, 2, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize("raw", [
    pytest.param("2025-11-02 14:30:00", id="iso-space"),
    pytest.param("2025-11-02T14:30:00", id="iso-t"),
    pytest.param("2025-11-02 14:30", id="no-seconds"),
    pytest.param("2025/11/02 14:30:00", id="slashes"),
    pytest.param("2025年11月02日 14:30", id="zh"),
    pytest.param("Sun, 02 Nov 2025 14:30:00", id="rfc822-without-zone"),
])
def test_naive_time_is_in_the_feeds_zone(raw: str) -> None:
    """A time with no zone is +08:00 (Taipei/Beijing/Hong Kong), not UTC."""
    assert parse_date(raw, now=NOW) == TAIPEI_1430


def test_naive_time_takes_a_configured_zone() -> None:
    """A feed configured for another zone has its naive times read in that zone."""
    tokyo = timezone(timedelta(hours=9))
    assert parse_date("2025-11-02 15:30:00", now=NOW, zone=tokyo) == TAIPEI_1430


def test_explicit_offset_beats_the_feeds_zone() -> None:
    """An explicit offset is used as given; the feed's zone only fills in missing ones."""
    assert parse_date("2025-11-02T06:30:00+00:00", now=NOW) == TAIPEI_1430
    assert parse_date("Sun, 02 Nov 2025 01:30:00 -0500", now=NOW) == TAIPEI_1430


def test_minus_zero_offset_is_utc() -> None:
    """RFC 5322 "-0000" is UTC with no local zone known, not a naive local time."""
    assert parse_date("Sun, 02 Nov 2025 06:30:00 -0000", now=NOW) == TAIPEI_1430


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("民國114年11月2日", datetime(2025, 11, 1, 16, 0, tzinfo=UTC), id="minguo-date"),
    pytest.param("民國114年11月2日 14:30", TAIPEI_1430, id="minguo-date-time"),
    pytest.param("民国114年11月2日 14:30", TAIPEI_1430, id="minguo-simplified"),
    pytest.param("114/11/02 14:30", TAIPEI_1430, id="minguo-numeric"),
    pytest.param("114年11月02日", datetime(2025, 11, 1, 16, 0, tzinfo=UTC), id="minguo-bare"),
])
def test_minguo_years_add_1911(raw: str, expected: datetime) -> None:
    """ROC (民國) year 114 is 2025, never the year 114."""
    assert parse_date(raw, now=NOW) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("2025/11/02 下午 02:30:00", TAIPEI_1430, id="xiawu"),
    pytest.param("2025/11/02 下午 2:30", TAIPEI_1430, id="xiawu-one-digit-hour"),
    pytest.param("2025年11月2日 下午2:30", TAIPEI_1430, id="xiawu-zh-date"),
    pytest.param("2025/11/02 晚上 08:30", datetime(2025, 11, 2, 12, 30, tzinfo=UTC), id="wanshang"),
    pytest.param("2025/11/02 上午 10:30", datetime(2025, 11, 2, 2, 30, tzinfo=UTC), id="shangwu"),
    pytest.param("2025/11/02 中午 12:30", datetime(2025, 11, 2, 4, 30, tzinfo=UTC), id="zhongwu"),
    pytest.param("2025/11/02 下午 12:30", datetime(2025, 11, 2, 4, 30, tzinfo=UTC),
                 id="xiawu-12-is-noon"),
    # 12-hour clocks (the zh-TW Windows/ASP.NET format) write 00:30 as 上午 12:30.
    pytest.param("2025/11/02 上午 12:30:00", datetime(2025, 11, 1, 16, 30, tzinfo=UTC),
                 id="shangwu-12-is-midnight"),
])
def test_chinese_am_pm(raw: str, expected: datetime) -> None:
    """下午/晚上 add 12 hours to a 12-hour-clock time; 上午 12 is just after midnight."""
    assert parse_date(raw, now=NOW) == expected


@pytest.mark.parametrize("raw", [
    pytest.param("2025年11月02日 14時30分", id="shi-fen"),
    pytest.param("2025年11月02日 14时30分", id="shi-fen-simplified"),
    pytest.param("2025年11月02日 14時30分00秒", id="shi-fen-miao"),
    pytest.param("2025年11月2日 下午2時30分", id="xiawu-shi-fen"),
])
def test_chinese_hour_minute_units(raw: str) -> None:
    """Times written with 時/时 and 分 (and optional 秒) are read, not dropped."""
    assert parse_date(raw, now=NOW) == TAIPEI_1430


@pytest.mark.parametrize("raw", [
    pytest.param("Sun, 02 Nov 2025 14:30:00 CST", id="rfc822-cst"),
    pytest.param("2025-11-02 14:30:00 CST", id="iso-cst"),
    pytest.param("Sun, 02 Nov 2025 14:30:00 GMT+8", id="gmt-plus-8"),
    pytest.param("Sun, 02 Nov 2025 14:30:00 GMT+08:00", id="gmt-plus-08-00"),
    pytest.param("Sun, 02 Nov 2025 14:30:00 UTC+8", id="utc-plus-8"),
])
def test_cst_means_china_standard_time(raw: str) -> None:
    """"CST" and "GMT+8" on these feeds are +08:00, not US Central (a 14-hour error)."""
    assert parse_date(raw, now=NOW) == TAIPEI_1430


@pytest.mark.parametrize("raw", [
    pytest.param("Sat, 31 Dec 1994 23:59:59 +0000", id="just-before-1995"),
    pytest.param("1994-12-31T23:59:59Z", id="iso-1994"),
    pytest.param("民國83年12月31日", id="minguo-83-is-1994"),
    pytest.param("Thu, 01 Jan 1970 00:00:00 GMT", id="epoch"),
    pytest.param("0001-01-01T00:00:00+08:00", id="year-1-with-offset"),
    pytest.param("0001-01-01 00:00:00", id="year-1-naive"),
    pytest.param("9999-12-31T23:59:59-08:00", id="year-9999-with-offset"),
])
def test_before_1995_or_unrepresentable_is_none(raw: str) -> None:
    """Dates before 1995, or past what datetime can hold, are missing, never an exception."""
    assert parse_date(raw, now=NOW) is None


def test_more_than_a_day_ahead_is_none() -> None:
    """A date more than a day after the fetch time is missing, so it cannot pin an item on top."""
    assert parse_date(format_datetime(NOW + timedelta(days=1, minutes=1)), now=NOW) is None
    assert parse_date(format_datetime(NOW + timedelta(days=30)), now=NOW) is None


def test_up_to_a_day_ahead_is_kept() -> None:
    """Clock skew of up to a day is tolerated: the date is kept as given."""
    ahead = NOW + timedelta(hours=23, minutes=59)
    assert parse_date(format_datetime(ahead), now=NOW) == ahead


def test_1995_is_kept() -> None:
    """The first instant of 1995 is inside the accepted range."""
    assert parse_date("1995-01-01T00:00:00Z", now=NOW) == datetime(1995, 1, 1, tzinfo=UTC)


def test_future_bound_moves_with_now() -> None:
    """The future bound is relative to the fetch time passed in, not the wall clock."""
    raw = "Thu, 01 Jan 2099 00:00:00 +0000"
    assert parse_date(raw, now=NOW) is None
    assert parse_date(raw, now=datetime(2098, 12, 31, 12, tzinfo=UTC)) == datetime(
        2099, 1, 1, tzinfo=UTC)
