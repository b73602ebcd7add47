"""RSS 0.9x/1.0 (RDF)/2.0, Atom and JSON Feed bytes → :class:`ParsedFeed`.

XML goes through feedparser, but only after we have decoded the bytes ourselves
(crawler.encoding), refused entity declarations (the quadratic blow-up needs no nesting,
so feedparser's own guard misses it), and with its slow sanitizer off: nh3 sanitizes once,
later. feedparser's result never leaves this module. JSON Feed 1.0/1.1 is read here,
since feedparser 6.0.x has no JSON support.
"""

from __future__ import annotations

import calendar
import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import feedparser

from crawler.dates import parse_date
from crawler.encoding import decode
from crawler.errors import NotAFeed, ParseError
from crawler.languages import language_tag
from crawler.parsers.hints import publisher_hints
from crawler.types import ParsedFeed, ParsedItem

MAX_ITEMS = 500
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_FEED_ROOT = re.compile(r"<(?:[\w-]+:)?(rss|feed|RDF)[\s>]")
_ROOT_END = re.compile(r"</(?:[\w.-]+:)?(?:rss|feed|RDF)\s*>\s*$")
_OFFSET = re.compile(r"[+-](\d\d):?\d\d\s*$")  #: a numeric zone at the end, hours first
_ITEM_END = re.compile(r"</(?:[\w.-]+:)?(?:item|entry)\s*>")


def parse_feed(body: bytes, content_type: str | None, url: str, now: datetime, *,
               encoding: str | None = None) -> ParsedFeed:
    """``encoding``: the source's ``encoding:`` from feeds.yaml, beating every label."""
    head = body[:2048].lstrip()
    if not head.strip():
        raise NotAFeed("empty response")
    if head[:1] in (b"{", b"["):
        return _parse_json(body, content_type, url, now, encoding)
    # Declarations belong in the prolog, before the root element.
    root = re.search(rb"<(?![?!])", body[:65536])
    prolog = body[: root.start()] if root else body[:65536]
    if _ENTITY_DECL.search(prolog):
        raise ParseError("entity declarations are not allowed in feeds (entity-expansion attack)")
    text, _encoding, warnings = decode(body, content_type, override=encoding)
    text = _XML_DECL.sub("", text, count=1)
    if not _FEED_ROOT.search(text[:4096]):
        kind = "an HTML page" if re.search(r"<html[\s>]", text[:4096], re.I) else "not RSS or Atom"
        raise NotAFeed(f"the document is {kind}")
    try:
        result = feedparser.parse(
            io.BytesIO(text.encode("utf-8")),
            response_headers={"content-type": "application/xml; charset=utf-8",
                              "content-location": url},
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser raises bare ValueError/UnicodeError on bad references
        raise ParseError(f"feedparser failed: {type(exc).__name__}: {exc}") from exc
    if not result.get("version") and not result.entries:
        raise NotAFeed("not RSS, Atom or RDF")
    entries = result.entries
    if result.get("bozo"):
        if not entries and not result.feed.get("title"):
            raise ParseError(f"not well-formed: {result.get('bozo_exception')}")
        warnings += (f"recovered from malformed XML: {result.get('bozo_exception')}",)
        entries = _complete_entries(text, entries, result.get("bozo_exception"))
        if len(entries) < len(result.entries):
            warnings += (f"the document ends inside item {len(entries) + 1}; kept the "
                         f"{len(entries)} complete ones",)
    items = tuple(_item(entry, now, url) for entry in entries[:MAX_ITEMS])
    if len(result.entries) > MAX_ITEMS:
        warnings += (f"{len(result.entries)} items; kept the first {MAX_ITEMS}",)
    return ParsedFeed(
        title=str(result.feed.get("title", "")),
        link=result.feed.get("link"),
        items=items,
        warnings=warnings,
        language=language_tag(result.feed.get("language")),
        hints=publisher_hints(text, result.feed),
    )


def _complete_entries(text: str, entries: list[Any], why: object) -> list[Any]:
    """The entries of a cut-off document that it closed. feedparser's loose parser hands
    back the item the cut falls in with whatever it had read, a title without link, date
    or text: stored, that is a ghost article, and once the feed is whole again the real
    item arrives beside it as a duplicate. Only a document without its root's end tag is
    taken as cut off, so one that merely forgets a tag mid-way keeps what feedparser saw."""
    if _ROOT_END.search(text[-512:]):
        return entries
    closed = len(_ITEM_END.findall(text))
    if closed >= len(entries):
        return entries
    if closed == 0:
        raise ParseError(f"the document ends inside its first item (truncated?): {why}")
    return entries[:closed]


def _entry_date(entry: Any, key: str, now: datetime) -> datetime | None:
    value = parse_date(entry.get(key), now=now)
    if value is not None:
        return value
    # Fall back to feedparser's reading only for forms we do not parse ourselves.
    raw = entry.get(key) or ""
    parsed = entry.get(f"{key}_parsed")
    if parsed and not re.search(r"[年月日]", raw):
        try:
            value = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
        except (OverflowError, ValueError):
            return None
        # feedparser makes something of what is not a date: "10000-01-01" becomes
        # 2010-12-01, an offset of -2500 is applied as 25 hours. A reading whose year the
        # string does not say, or that used an offset no zone has, is no reading.
        offset = _OFFSET.search(raw)
        if str(value.year) not in raw or (offset and int(offset.group(1)) > 14):
            return None
        return parse_date(value.isoformat(), now=now)
    return None


def _item(entry: Any, now: datetime, url: str) -> ParsedItem:
    content = ""
    base = None
    for part in entry.get("content") or ():
        if part.get("value"):
            content, base = part["value"], part.get("base")
            break
    summary = entry.get("summary") or ""
    if summary == content:
        summary = ""
    if entry.get("summary_detail", {}).get("type") == "text/plain" and summary:
        summary = _escape_text(summary)
    if not content:
        base = entry.get("summary_detail", {}).get("base")
    link = entry.get("link")
    if not link:
        link = next((x.get("href") for x in entry.get("links", ()) if x.get("href")), None)
    tags = tuple(t.get("term") or t.get("label") or "" for t in entry.get("tags") or ())
    return ParsedItem(
        guid=entry.get("id") or None,
        link=link,
        title=entry.get("title") or "",
        content_html=content,
        summary_html=summary,
        author=entry.get("author") or None,
        published=_entry_date(entry, "published", now) or _entry_date(entry, "updated", now),
        updated=_entry_date(entry, "updated", now),
        tags=tuple(t for t in tags if t),
        # feedparser reports the xml:base in effect, or the feed URL we gave it when there
        # is none; only a declared one may beat the item link as the content's base.
        base=base if base and base != url else None,
    )


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _parse_json(body: bytes, content_type: str | None, url: str, now: datetime,
                encoding: str | None = None) -> ParsedFeed:
    text, _encoding, warnings = decode(body, content_type, override=encoding)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise NotAFeed("JSON, but not a JSON Feed (no jsonfeed.org version)")
    raw_items = data.get("items")
    if not isinstance(raw_items, list):
        raise ParseError("JSON Feed 'items' is not a list")
    items: list[ParsedItem] = []
    for index, raw in enumerate(raw_items[:MAX_ITEMS]):
        if not isinstance(raw, dict):
            warnings += (f"item {index} is not an object; skipped",)
            continue
        items.append(_json_item(raw, now))
    return ParsedFeed(
        title=_string(data.get("title")) or "",
        link=_string(data.get("home_page_url")),
        items=tuple(items),
        warnings=warnings,
        language=language_tag(_string(data.get("language"))),
    )


def _string(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _json_item(raw: dict[str, Any], now: datetime) -> ParsedItem:
    content = _string(raw.get("content_html"))
    if content is None and _string(raw.get("content_text")):
        content = "<p>" + _escape_text(_string(raw.get("content_text")) or "") + "</p>"
    authors: list[Any] = raw["authors"] if isinstance(raw.get("authors"), list) else (
        [raw["author"]] if isinstance(raw.get("author"), dict) else []
    )
    author = next((_string(a.get("name")) for a in authors
                   if isinstance(a, dict) and _string(a.get("name"))), None)
    tags: list[Any] = raw["tags"] if isinstance(raw.get("tags"), list) else []
    published = parse_date(_string(raw.get("date_published")), now=now)
    return ParsedItem(
        guid=_string(raw.get("id")),
        link=_string(raw.get("url")) or _string(raw.get("external_url")),
        title=_escape_text(_string(raw.get("title")) or ""),
        content_html=content or "",
        summary_html=_escape_text(_string(raw.get("summary")) or ""),
        author=author,
        published=published,
        updated=parse_date(_string(raw.get("date_modified")), now=now),
        tags=tuple(t for t in (_string(x) for x in tags) if t),
    )
