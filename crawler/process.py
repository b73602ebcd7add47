"""The CPU-bound half of a crawl: fetched bytes → articles, run in worker processes.

parse → normalize (sanitize, plain text, keys) for a whole feed in one call, so one
round-trip to a worker carries one feed. The result is plain data, cheap to pickle.
"""

from __future__ import annotations

from datetime import datetime

from crawler.normalize import normalize
from crawler.parsers import parser_for
from crawler.types import Article


def articles_from_body(
    format_name: str, body: bytes, content_type: str | None, base_url: str, now: datetime
) -> tuple[tuple[Article, ...], tuple[str, ...]]:
    """Return (articles, warnings); raises ParseError for a body that is not a feed."""
    parsed = parser_for(format_name)(body, content_type, base_url, now)
    articles: dict[str, Article] = {}
    for item in parsed.items:
        article = normalize(item, base_url)
        # One identity, one article: the first occurrence in the document wins.
        articles.setdefault(article.item_key, article)
    return tuple(articles.values()), parsed.warnings
