"""The CPU-bound half of a crawl: fetched bytes → articles, run in worker processes.

parse → normalize (sanitize, plain text, keys) for a whole feed in one call, so one
round-trip to a worker carries one feed. The result is plain data, cheap to pickle.
"""

from __future__ import annotations

import resource
from dataclasses import replace
from datetime import datetime

from crawler.cleaners import clean
from crawler.errors import ParseError
from crawler.fingerprint import body_html, fingerprint
from crawler.normalize import normalize, plain_text, xml_safe
from crawler.parsers import parser_for
from crawler.parsers.feed import parse_feed
from crawler.parsers.page import parse_page
from crawler.parsers.ptt import parse_ptt_index, parse_ptt_post
from crawler.sanitize import sanitize_html
from crawler.script import detect_language, search_form
from crawler.types import Article, FeedBody


def articles_from_body(
    format_name: str, body: bytes, content_type: str | None, base_url: str, now: datetime,
    site: str | None = None, encoding: str | None = None,
) -> tuple[tuple[Article, ...], tuple[str, ...]]:
    """(articles, warnings) of a body; raises ParseError for a body that is not a feed."""
    found = feed_from_body(format_name, body, content_type, base_url, now, site, encoding)
    return found.articles, found.warnings


def feed_from_body(
    format_name: str, body: bytes, content_type: str | None, base_url: str, now: datetime,
    site: str | None = None, encoding: str | None = None,
) -> FeedBody:
    """The articles of a body, what was recovered from, and what the feed asks of pollers.
    ``encoding``: the source's ``encoding:`` override (format feed only; config checks)."""
    try:
        return _articles(format_name, body, content_type, base_url, now, site, encoding)
    except MemoryError as exc:
        raise ParseError(f"parsing needed more than {WORKER_MEMORY >> 20} MiB") from exc
    except RecursionError as exc:
        raise ParseError("the document is nested too deeply to parse") from exc


WORKER_MEMORY = 1536 << 20  #: address space a parse worker may use


def limit_worker_memory() -> None:
    """Pool initializer: a hostile document fails its own parse, not the machine."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > WORKER_MEMORY:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, hard))


def _articles(
    format_name: str, body: bytes, content_type: str | None, base_url: str, now: datetime,
    site: str | None, encoding: str | None = None,
) -> FeedBody:
    # Only the feed parser decodes one document itself; the config refuses `encoding:` for
    # the folder formats, so the registry's common signature stays as it is.
    parsed = (parse_feed(body, content_type, base_url, now, encoding=encoding) if encoding
              else parser_for(format_name)(body, content_type, base_url, now))
    articles: dict[str, Article] = {}
    for item in parsed.items:
        article = normalize(clean(item, site), base_url)
        # One identity, one article: the first occurrence in the document wins.
        articles.setdefault(article.item_key, article)
    return FeedBody(articles=tuple(with_fingerprint(a, parsed.language)
                                   for a in articles.values()),
                    warnings=parsed.warnings, hints=parsed.hints)


def with_fingerprint(article: Article, declared_language: str = "") -> Article:
    """The article with what stories and output rules compare, computed here once so the
    main process and every feed request do not."""
    plain = plain_text(body_html(article))
    language = declared_language or article.language or detect_language(
        f"{article.title}\n{plain}")
    return replace(article, fingerprint=fingerprint(article), language=language,
                   text_length=len(plain.strip()), search_text=search_form(plain))


def article_from_page(
    article: Article, body: bytes, content_type: str | None, url: str, now: datetime,
    site: str | None,
) -> Article:
    """A feed's item with the article from its own page instead of the feed's text, and
    the metadata found on the way; the item unchanged when the page has no article."""
    try:
        item = parse_page(body, content_type, url, now, site)
    except (MemoryError, RecursionError) as exc:
        raise ParseError(f"the page could not be parsed: {type(exc).__name__}") from exc
    html = sanitize_html(xml_safe(item.content_html), url)
    if not html:
        return article
    metadata = tuple(sorted({**dict(item.metadata), **dict(article.metadata)}.items()))
    return with_fingerprint(replace(article, content_html=html, metadata=metadata))


def ptt_index_urls(body: bytes, url: str) -> tuple[str, ...]:
    return parse_ptt_index(body, url)


def article_from_ptt_post(body: bytes, url: str, now: datetime,
                          site: str | None) -> Article:
    """A PTT post page → its article, cleaned and normalized like any other item."""
    try:
        return with_fingerprint(normalize(clean(parse_ptt_post(body, url, now), site), url))
    except (MemoryError, RecursionError) as exc:
        raise ParseError(f"the post could not be parsed: {type(exc).__name__}") from exc
