"""What the parse workers run, named here so the main process need not import it.

The daemon and `crawler crawl` only fetch and store; parsing (feedparser, BeautifulSoup,
nh3, trafilatura) happens in worker processes. Each function imports crawler.process on
first call, in the worker, so a round of 304s never pays for loading the parse stack.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.types import Article, FeedBody

PRELOAD = ["crawler.process"]  #: imported once by the forkserver, inherited by each worker


def feed_from_body(
    format_name: str, body: bytes, content_type: str | None, base_url: str, now: datetime,
    site: str | None = None, encoding: str | None = None,
) -> FeedBody:
    from crawler import process

    return process.feed_from_body(format_name, body, content_type, base_url, now, site,
                                  encoding)


def article_from_page(
    article: Article, body: bytes, content_type: str | None, url: str, now: datetime,
    site: str | None,
) -> Article:
    from crawler import process

    return process.article_from_page(article, body, content_type, url, now, site)


def ptt_index_urls(body: bytes, url: str) -> tuple[str, ...]:
    from crawler import process

    return process.ptt_index_urls(body, url)


def article_from_ptt_post(body: bytes, url: str, now: datetime, site: str | None) -> Article:
    from crawler import process

    return process.article_from_ptt_post(body, url, now, site)


def limit_worker_memory() -> None:
    from crawler import process

    process.limit_worker_memory()
