"""Jekyll post archives (NodeBE4/waimei and duty-machine shapes) → :class:`ParsedFeed`.

One post is::

    ---                      front matter (optional): title, date, author, from, tags, ...
    ---
    <!--1666429443000-->     the feed's pubDate in epoch milliseconds (optional: 2020 variant)
    [title](url)             the link line; titles may hold ] and [, so the URL is after the last ](
    ------
    日期：<RFC 822 date>      (2020 duty-machine variant only)
    <div>…item HTML…</div>

The article's time is the marker's, which is the feed's own date; front-matter ``date:`` is a
clamped copy that can differ (FORMATS.md §1), and is used only when there is no marker.
The folder's files arrive as one bundle (crawler.local), so a whole archive is one parse.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import yaml

from crawler.dates import parse_date
from crawler.errors import ParseError
from crawler.parsers.folder import parse_bundle
from crawler.types import ParsedFeed, ParsedItem

_MARKER = re.compile(r"^<!--\s*(\d+|NaN)\s*-->\s*$")
_LINK_LINE = re.compile(r"^\[(?P<text>.*)\]\((?P<url>[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)\)\s*$")
_RULE = re.compile(r"^-{3,}\s*$")
_DATE_LINE = re.compile(r"^日期[：:]\s*(.+)$")


def parse_jekyll_folder(body: bytes, content_type: str | None, url: str,
                        now: datetime) -> ParsedFeed:
    """A folder of Jekyll posts (crawler.local's bundle) → one item per post."""
    return parse_bundle(body, url, ".md posts", lambda _name, text: parse_post(text, now))


def parse_post(text: str, now: datetime) -> ParsedItem:
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    front: dict[str, Any] = {}
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end < 0:
            raise ParseError("front matter is not closed by a --- line")
        try:
            loaded = yaml.safe_load(text[4:end])
        except yaml.YAMLError as exc:
            raise ParseError(f"front matter is not valid YAML: {exc}") from exc
        if isinstance(loaded, dict):
            front = loaded
        text = text[end + 5:]
    lines = text.split("\n")
    index = _skip_blank(lines, 0)
    published: datetime | None = None
    marker = _MARKER.match(lines[index]) if index < len(lines) else None
    if marker:
        if marker.group(1) != "NaN":
            published = _from_millis(int(marker.group(1)), now)
        index = _skip_blank(lines, index + 1)
    link_line = _LINK_LINE.match(lines[index]) if index < len(lines) else None
    if not link_line and not front:
        raise ParseError("no front matter and no [title](url) line")
    link_text, link = (link_line.group("text"), link_line.group("url")) if link_line else ("", "")
    if link_line:
        index += 1
    if index < len(lines) and _RULE.match(lines[index]):
        index += 1
    index = _skip_blank(lines, index)
    stated = _DATE_LINE.match(lines[index]) if index < len(lines) else None
    if stated:
        published = published or parse_date(stated.group(1), now=now)
        index += 1
    body = list(lines[index:])
    while body and not body[-1].strip():
        body.pop()
    # The generator wraps the item's HTML in a <div> of its own, on lines of their own.
    if len(body) >= 2 and body[0].strip() == "<div>" and body[-1].strip() == "</div>":
        body = body[1:-1]
    html = "\n".join(body).strip()
    if published is None:
        published = _front_date(front.get("date"), now)
    tags = [*_as_list(front.get("tags")), *_as_list(front.get("categories"))]
    return ParsedItem(
        guid=None,
        link=_string(front.get("from")) or link or None,
        title=_title(front.get("title")) or link_text.strip(),
        content_html=html,
        summary_html="",
        author=_string(front.get("author")),
        published=published,
        updated=None,
        tags=tuple(dict.fromkeys(t for t in tags if t and t.lower() != "news")),
    )


def _skip_blank(lines: list[str], index: int) -> int:
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def _from_millis(millis: int, now: datetime) -> datetime | None:
    try:
        moment = datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return parse_date(moment.isoformat(), now=now)


def _front_date(value: Any, now: datetime) -> datetime | None:
    if isinstance(value, datetime):
        return parse_date(value.isoformat(), now=now)
    if isinstance(value, date):
        return parse_date(value.isoformat(), now=now)
    return parse_date(_string(value), now=now)


def _title(value: Any) -> str:
    # A title that spans a line break folds to a trailing space in YAML: trim it.
    return " ".join(str(value).split()) if value is not None else ""


def _string(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if v is not None]
    if isinstance(value, str):
        return [value.strip()]
    return []
