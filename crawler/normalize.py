"""ParsedItem → Article: sanitized HTML, plain-text title and summary, canonical URL, keys.

The keys decide identity. Within one source an item is its guid, else its canonical link,
else a hash of its content. Across sources an article is the same when the canonical URL
(tracking parameters and fragment removed) or the hash of the normalized text matches.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from crawler.dates import CHINA_TIME
from crawler.sanitize import is_tracking, safe_url, sanitize_html
from crawler.types import Article, Comment, ParsedItem

TITLE_MAX = 1000
MAX_COMMENTS = 2000
SUMMARY_MAX = 500
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
# Characters XML 1.0 cannot carry (and PostgreSQL text cannot hold U+0000).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def xml_safe(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)


def plain_text(markup: str) -> str:
    """Markup → one line of text; enough for titles, summaries and hashing."""
    text = html.unescape(_TAG.sub(" ", markup))
    return _SPACE.sub(" ", xml_safe(text)).strip()


def canonical_url(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not is_tracking(k)]
    netloc = parts.hostname.lower()
    if port and port not in (80, 443):
        netloc = f"{netloc}:{port}"
    path = parts.path or "/"
    return urlunsplit((parts.scheme, netloc, path, urlencode(query), ""))


DISTINCTIVE_CHARS = 40


def fold(text: str) -> str:
    """Text without case, width, spacing or punctuation differences."""
    # Punctuation goes first: once the fullwidth ，。「」 are out, Chinese text is almost
    # always NFKC already, and the check is ~400 times cheaper than normalizing.
    kept = _NOT_WORD.sub("", text)
    if not unicodedata.is_normalized("NFKC", kept):
        kept = _NOT_WORD.sub("", unicodedata.normalize("NFKC", kept))
    return kept.lower()


def content_hash(folded_title: str, folded_text: str) -> str:
    """Of folded text: the same story hashes alike whatever its markup, spacing or punctuation."""
    return hashlib.sha256(f"{folded_title}{folded_text}".encode()).hexdigest()


def normalize(item: ParsedItem, base_url: str) -> Article:
    title = _BIDI.sub("", plain_text(item.title))[:TITLE_MAX]
    link = safe_url(item.link, base_url) if item.link else None
    if link and not link.startswith(("http://", "https://")):
        link = None
    body = xml_safe(item.content_html or item.summary_html)
    # A declared xml:base is what the feed says its relative URLs mean (an Atom entry's
    # content may sit under /img/ while its link is an article page); one that is not a
    # valid http(s) URL is ignored rather than allowed to drop every relative link.
    declared = safe_url(item.base, base_url) if item.base else None
    if declared and not declared.startswith(("http://", "https://")):
        declared = None
    content = sanitize_html(body + render_comments(item.comments),
                            declared or link or base_url)
    text = plain_text(content)
    summary_source = item.summary_html if item.summary_html and item.content_html else content
    summary = plain_text(summary_source)[:SUMMARY_MAX]
    canonical = canonical_url(link)
    folded_text = fold(text)
    digest = content_hash(fold(title), folded_text)
    guid = _SPACE.sub(" ", item.guid).strip() if item.guid else ""
    item_key = f"guid:{guid}" if guid else (f"url:{canonical}" if canonical else f"hash:{digest}")
    return Article(
        item_key=item_key[:2000],
        canonical_url=canonical,
        content_hash=digest,
        title=title or (summary[:80] if summary else "(untitled)"),
        link=link,
        content_html=content,
        summary=summary,
        author=plain_text(item.author)[:200] if item.author else None,
        published=item.published,
        updated=item.updated,
        tags=tuple(dict.fromkeys(plain_text(t)[:100] for t in item.tags if plain_text(t)))[:20],
        # "form-action" and "formaction" fold alike; only a body of some length identifies.
        distinctive_text=len(folded_text) >= DISTINCTIVE_CHARS,
        metadata=tuple((k, plain_text(v)[:500]) for k, v in item.metadata),
        comments=tuple(replace(c, user=plain_text(c.user)[:100], text=plain_text(c.text)[:1000])
                       for c in item.comments[:MAX_COMMENTS]),
    )


def render_comments(comments: tuple[Comment, ...]) -> str:
    """Comments as a list under the article, so any feed reader shows them."""
    if not comments:
        return ""
    marks = {"push": "推", "boo": "噓", "neutral": "→"}
    rows = "".join(
        f"<li><strong>{marks.get(c.kind, '→')}</strong> {html.escape(c.user)}: "
        f"{html.escape(c.text)}"
        + (f" <small>{c.time.astimezone(CHINA_TIME):%m/%d %H:%M}</small>" if c.time else "")
        + "</li>"
        for c in comments[:MAX_COMMENTS])
    return f"{COMMENTS_HEADING}{len(comments)})</h3><ol>{rows}</ol>"


COMMENTS_HEADING = "<h3>推文 ("  #: where the comments start in an article's HTML
